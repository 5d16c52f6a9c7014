/**
 * FNV-1a, 32 bits: a fast hash that is no secret and no proof, for telling values apart in
 * memory (the decrypted cache's index of stored ids, the toolbar icon's digest).
 */

/** The hash of nothing: where every FNV-1a hash starts. */
export const FNV1A_START = 0x811c9dc5;

/** `hash` with one more unit (a char code, a byte) folded in; `>>> 0` of the last gives the unsigned hash. */
export const fnv1a = (hash: number, unit: number): number => Math.imul(hash ^ unit, 0x01000193);
