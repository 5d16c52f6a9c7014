/**
 * Secret storage, Matrix spec "Secret storage" with `m.secret_storage.v1.aes-hmac-sha2`:
 * secrets (cross-signing private keys, the key-backup key) live encrypted in the user's
 * account data under a key the user holds as a recovery key or derives from a passphrase.
 * Pure WebCrypto, so it runs in the worker and in Node tests alike.
 */

export const AES_HMAC_SHA2 = 'm.secret_storage.v1.aes-hmac-sha2';

/** `m.secret_storage.key.<id>` account data. */
export interface SecretStorageKeyDescription {
  algorithm?: string;
  name?: string;
  iv?: string;
  mac?: string;
  passphrase?: { algorithm?: string; salt?: string; iterations?: number; bits?: number };
}

/** One key's encryption of a secret, under `encrypted.<key id>` in the secret's account data. */
export interface EncryptedSecret {
  iv: string;
  ciphertext: string;
  mac: string;
}

/** The user's input did not unlock secret storage; the message says what to do. */
export class SecretStorageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SecretStorageError';
  }
}

const subtle = () => globalThis.crypto.subtle;
const BASE58 = '123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz';
/** Recovery keys start with these two bytes (spec "Key representation"). */
const RECOVERY_KEY_PREFIX = [0x8b, 0x01];

/** Decodes a recovery key ("EsTc 5rr1 ..."); undefined when the text is not one. */
export function decodeRecoveryKey(text: string): Uint8Array | undefined {
  const compact = text.replace(/\s+/g, '');
  if (compact.length === 0 || [...compact].some((c) => !BASE58.includes(c))) return undefined;
  let value = 0n;
  for (const c of compact) value = value * 58n + BigInt(BASE58.indexOf(c));
  const bytes: number[] = [];
  while (value > 0n) {
    bytes.unshift(Number(value & 0xffn));
    value >>= 8n;
  }
  for (const c of compact) {
    if (c !== '1') break;
    bytes.unshift(0);
  }
  if (bytes.length !== 2 + 32 + 1) return undefined;
  if (bytes[0] !== RECOVERY_KEY_PREFIX[0] || bytes[1] !== RECOVERY_KEY_PREFIX[1]) return undefined;
  let parity = 0;
  for (const byte of bytes) parity ^= byte;
  if (parity !== 0) return undefined;
  return new Uint8Array(bytes.slice(2, 34));
}

/** Encodes a 32-byte key as a recovery key, in groups of four as clients show it. */
export function encodeRecoveryKey(key: Uint8Array): string {
  const bytes = [...RECOVERY_KEY_PREFIX, ...key];
  bytes.push(bytes.reduce((a, b) => a ^ b, 0));
  let value = 0n;
  for (const byte of bytes) value = (value << 8n) | BigInt(byte);
  let out = '';
  while (value > 0n) {
    out = BASE58[Number(value % 58n)] + out;
    value /= 58n;
  }
  for (const byte of bytes) {
    if (byte !== 0) break;
    out = '1' + out;
  }
  return out.match(/.{1,4}/g)!.join(' ');
}

/** The secret-storage key a passphrase stands for (PBKDF2-SHA-512, spec "m.pbkdf2"). */
export async function keyFromPassphrase(
  passphrase: string,
  description: SecretStorageKeyDescription,
): Promise<Uint8Array> {
  const info = description.passphrase;
  if (info?.algorithm !== 'm.pbkdf2' || typeof info.salt !== 'string' || typeof info.iterations !== 'number') {
    throw new SecretStorageError(
      'This account has no recovery passphrase, only a recovery key: enter the recovery key',
    );
  }
  const base = await subtle().importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveBits']);
  const bits = await subtle().deriveBits(
    { name: 'PBKDF2', salt: new TextEncoder().encode(info.salt), iterations: info.iterations, hash: 'SHA-512' },
    base,
    info.bits ?? 256,
  );
  return new Uint8Array(bits);
}

async function deriveKeys(key: Uint8Array, name: string) {
  const base = await subtle().importKey('raw', key as BufferSource, 'HKDF', false, ['deriveBits']);
  const bits = new Uint8Array(
    await subtle().deriveBits(
      { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info: new TextEncoder().encode(name) },
      base,
      512,
    ),
  );
  return {
    aes: await subtle().importKey('raw', bits.slice(0, 32), 'AES-CTR', false, ['encrypt', 'decrypt']),
    hmac: await subtle().importKey('raw', bits.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']),
  };
}

/** Encrypts `secret` under `key` for the account-data entry `name`. */
export async function encryptSecret(
  key: Uint8Array,
  name: string,
  secret: string,
  iv?: Uint8Array,
): Promise<EncryptedSecret> {
  const counter = iv ?? globalThis.crypto.getRandomValues(new Uint8Array(16));
  if (!iv) counter[8] &= 0x7f;
  const keys = await deriveKeys(key, name);
  const ciphertext = new Uint8Array(
    await subtle().encrypt(
      { name: 'AES-CTR', counter: counter as BufferSource, length: 64 },
      keys.aes,
      new TextEncoder().encode(secret),
    ),
  );
  const mac = new Uint8Array(await subtle().sign('HMAC', keys.hmac, ciphertext));
  return { iv: toBase64(counter), ciphertext: toBase64(ciphertext), mac: toBase64(mac) };
}

/** Decrypts one secret; throws SecretStorageError when the MAC does not match. */
export async function decryptSecret(key: Uint8Array, name: string, encrypted: EncryptedSecret): Promise<string> {
  const keys = await deriveKeys(key, name);
  const ciphertext = fromBase64(encrypted.ciphertext);
  const mac = new Uint8Array(await subtle().sign('HMAC', keys.hmac, ciphertext as BufferSource));
  if (toBase64(mac).replace(/=+$/, '') !== encrypted.mac.replace(/=+$/, '')) {
    throw new SecretStorageError(
      `The secret ${name} does not match your recovery key: it may have been changed by another client`,
    );
  }
  const plaintext = await subtle().decrypt(
    { name: 'AES-CTR', counter: fromBase64(encrypted.iv) as BufferSource, length: 64 },
    keys.aes,
    ciphertext as BufferSource,
  );
  return new TextDecoder().decode(plaintext);
}

/** Whether `key` is the key the description was made for (its MAC of 32 zero bytes). */
export async function checkKey(key: Uint8Array, description: SecretStorageKeyDescription): Promise<boolean> {
  if (description.algorithm !== AES_HMAC_SHA2 || !description.iv || !description.mac) return false;
  const check = await encryptSecret(key, '', String.fromCharCode(...new Uint8Array(32)), fromBase64(description.iv));
  return check.mac.replace(/=+$/, '') === description.mac.replace(/=+$/, '');
}

/** A new secret-storage key: its id, the key itself, and the description that goes to account data. */
export interface NewSecretStorageKey {
  keyId: string;
  key: Uint8Array;
  /** `m.secret_storage.key.<keyId>`: algorithm, and the `iv` and `mac` that let a client check a key. */
  description: SecretStorageKeyDescription;
}

const KEY_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';

/**
 * Makes a random secret-storage key (shown to the user as a recovery key) with its key
 * description: the MAC of 32 zero bytes under the key, which `checkKey` verifies (spec
 * "Key storage", `m.secret_storage.v1.aes-hmac-sha2`).
 */
export async function createSecretStorageKey(): Promise<NewSecretStorageKey> {
  const key = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const keyId = [...globalThis.crypto.getRandomValues(new Uint8Array(32))]
    .map((byte) => KEY_ID_ALPHABET[byte % KEY_ID_ALPHABET.length])
    .join('');
  const check = await encryptSecret(key, '', String.fromCharCode(...new Uint8Array(32)));
  return { keyId, key, description: { algorithm: AES_HMAC_SHA2, iv: check.iv, mac: check.mac } };
}

/**
 * The secret-storage key the user typed: a recovery key when the text decodes as one,
 * else a passphrase. Throws with a clear message when it does not match the description.
 */
export async function unlockKey(input: string, description: SecretStorageKeyDescription): Promise<Uint8Array> {
  const text = input.trim();
  if (!text) throw new SecretStorageError('Enter your recovery key or your recovery passphrase');
  const recoveryKey = decodeRecoveryKey(text);
  if (recoveryKey && (await checkKey(recoveryKey, description))) return recoveryKey;
  if (description.passphrase) {
    const derived = await keyFromPassphrase(input, description);
    if (await checkKey(derived, description)) return derived;
  }
  throw new SecretStorageError(
    recoveryKey || !description.passphrase
      ? 'That is not the recovery key of this account: check it and try again (nothing was changed)'
      : 'Wrong recovery key or passphrase for this account: check it and try again (nothing was changed)',
  );
}

/** Bytes of base64 text, padded or not, standard or URL-safe alphabet. */
export function fromBase64(text: string): Uint8Array {
  const normalized = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  const binary = atob(normalized + '='.repeat((4 - (normalized.length % 4)) % 4));
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** Padded standard base64 of `data`. */
export function toBase64(data: Uint8Array): string {
  let binary = '';
  for (const byte of data) binary += String.fromCharCode(byte);
  return btoa(binary);
}
