/**
 * Kirjava's `io.kirjava.*` names: fields it adds to what the client sees, events it sends,
 * and the labels its at-rest keys and seals are bound to. One constant each; the stored
 * data depends on the labels, so they never change.
 */

/** Namespaced field under a decrypted event's `unsigned` that tells a smarter client how it was decrypted. */
export const ENCRYPTION_INFO_KEY = 'io.kirjava.encryption';

/** Top-level field of the hook's /sync part for the worker, listing every joined room of the sync. */
export const JOINED_ROOMS_KEY = 'io.kirjava.joined_rooms';

/** To-device type Kirjava sends to its own device to end the client's long-poll. */
export const WAKE_EVENT = 'io.kirjava.wake';

/** HKDF info of the decrypted-event cache's sealing key. */
export const DECRYPTED_CACHE_KEY_INFO = 'io.kirjava.decrypted-event-cache';

/** Additional-data prefix of the keyring's sealed entries (`io.kirjava.keyring\0<name>`). */
export const KEYRING_SEAL_LABEL = 'io.kirjava.keyring';
