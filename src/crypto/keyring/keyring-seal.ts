/**
 * The cryptography of Kirjava's keyring, with no storage and no browser API beyond
 * WebCrypto (so Node tests run it): secrets are sealed with AES-256-GCM under the vault
 * key, bound to their name (additional data), and the vault key is wrapped under a key
 * derived from the user's passphrase with PBKDF2-SHA-256 (OWASP's 2023 advice for it:
 * 600,000 iterations).
 */
import { KEYRING_SEAL_LABEL } from '../../shared/names.ts';

export const PBKDF2_ITERATIONS = 600_000;
/** No more than this from a stored record: a damaged count must not hang the worker. */
const MAX_ITERATIONS = 10_000_000;
export const MIN_PASSPHRASE_LENGTH = 8;
export const VAULT_KEY_BYTES = 32;
const SALT_BYTES = 16;
const IV_BYTES = 12;
const TAG_BYTES = 16;

/** AES-256-GCM ciphertext (with its tag) and the IV it was made with. */
export interface SealedBlob {
  iv: Uint8Array;
  data: Uint8Array;
}

/** How the vault key is kept: as is (no passphrase), or wrapped under the passphrase. */
export type VaultKeyRecord =
  | { kind: 'plain'; key: Uint8Array }
  | { kind: 'wrapped'; salt: Uint8Array; iterations: number; iv: Uint8Array; data: Uint8Array };

/** The passphrase does not open the vault key. */
export class WrongPassphraseError extends Error {
  constructor() {
    super('Wrong passphrase');
  }
}

/** The passphrase is too short to lock the keyring with. */
export class WeakPassphraseError extends Error {
  constructor() {
    super(`Choose a passphrase of at least ${MIN_PASSPHRASE_LENGTH} characters`);
  }
}

/** A stored entry does not decrypt or has the wrong shape; nothing is overwritten. */
export class KeyringDamagedError extends Error {}

const subtle = () => globalThis.crypto.subtle;
const bytes = (data: Uint8Array) => data as Uint8Array<ArrayBuffer>;
const label = (name: string) => new TextEncoder().encode(`${KEYRING_SEAL_LABEL}\0${name}`);

/** `length` random bytes from WebCrypto: vault keys, secrets, salts and IVs. */
export function randomBytes(length: number): Uint8Array {
  return globalThis.crypto.getRandomValues(new Uint8Array(length));
}

/** Refuses a passphrase too short to stand a guessing attack on a copied profile. */
export function checkPassphrase(passphrase: string): void {
  if (typeof passphrase !== 'string' || [...passphrase].length < MIN_PASSPHRASE_LENGTH) throw new WeakPassphraseError();
}

function aesKey(raw: Uint8Array, usages: KeyUsage[]): Promise<CryptoKey> {
  return subtle().importKey('raw', bytes(raw), 'AES-GCM', false, usages);
}

/**
 * Kirjava's one at-rest seal (keyring entries, the decrypted-event cache, media keys, the
 * search index): AES-256-GCM with a fresh 96-bit IV under `key`, bound to `additionalData`
 * when given (an entry moved under another name does not open).
 */
export async function sealWith(
  key: CryptoKey,
  plaintext: Uint8Array,
  additionalData?: Uint8Array,
): Promise<SealedBlob> {
  const iv = randomBytes(IV_BYTES);
  const params: AesGcmParams = { name: 'AES-GCM', iv: bytes(iv) };
  if (additionalData) params.additionalData = bytes(additionalData);
  return { iv, data: new Uint8Array(await subtle().encrypt(params, key, bytes(plaintext))) };
}

/** Opens what `sealWith` made; throws (WebCrypto's OperationError) when it does not open. */
export async function openWith(key: CryptoKey, blob: SealedBlob, additionalData?: Uint8Array): Promise<Uint8Array> {
  const params: AesGcmParams = { name: 'AES-GCM', iv: bytes(blob.iv) };
  if (additionalData) params.additionalData = bytes(additionalData);
  return new Uint8Array(await subtle().decrypt(params, key, bytes(blob.data)));
}

/** Seals `plaintext` under `key` for the entry `name` (it opens only under that name). */
export async function seal(key: Uint8Array, name: string, plaintext: Uint8Array): Promise<SealedBlob> {
  return sealWith(await aesKey(key, ['encrypt']), plaintext, label(name));
}

/** Opens what `seal` made for `name`; a damaged or swapped entry throws KeyringDamagedError. */
export async function open(key: Uint8Array, name: string, blob: SealedBlob): Promise<Uint8Array> {
  if (!isBytes(blob?.iv, IV_BYTES) || !isBytes(blob?.data) || blob.data.length < TAG_BYTES) {
    throw new KeyringDamagedError(`Kirjava's keyring entry ${name} is damaged (wrong shape)`);
  }
  try {
    return await openWith(await aesKey(key, ['decrypt']), blob, label(name));
  } catch {
    throw new KeyringDamagedError(`Kirjava's keyring entry ${name} is damaged: it does not decrypt`);
  }
}

async function passphraseKey(
  passphrase: string,
  salt: Uint8Array,
  iterations: number,
  usages: KeyUsage[],
): Promise<CryptoKey> {
  const base = await subtle().importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveKey']);
  return subtle().deriveKey(
    { name: 'PBKDF2', hash: 'SHA-256', salt: bytes(salt), iterations },
    base,
    { name: 'AES-GCM', length: 256 },
    false,
    usages,
  );
}

/** The vault key wrapped under `passphrase` (a fresh salt each time). */
export async function wrapVaultKey(
  vaultKey: Uint8Array,
  passphrase: string,
  iterations = PBKDF2_ITERATIONS,
): Promise<VaultKeyRecord & { kind: 'wrapped' }> {
  checkPassphrase(passphrase);
  const salt = randomBytes(SALT_BYTES);
  const iv = randomBytes(IV_BYTES);
  const key = await passphraseKey(passphrase, salt, iterations, ['encrypt']);
  const data = await subtle().encrypt(
    { name: 'AES-GCM', iv: bytes(iv), additionalData: label('vault') },
    key,
    bytes(vaultKey),
  );
  return { kind: 'wrapped', salt, iterations, iv, data: new Uint8Array(data) };
}

/** The vault key of `record`; WrongPassphraseError when the passphrase does not open it. */
export async function unwrapVaultKey(record: VaultKeyRecord, passphrase: string): Promise<Uint8Array> {
  checkVaultRecord(record);
  if (record.kind === 'plain') return record.key;
  const key = await passphraseKey(String(passphrase), record.salt, record.iterations, ['decrypt']);
  let vaultKey: Uint8Array;
  try {
    vaultKey = new Uint8Array(
      await subtle().decrypt(
        { name: 'AES-GCM', iv: bytes(record.iv), additionalData: label('vault') },
        key,
        bytes(record.data),
      ),
    );
  } catch {
    // AES-GCM cannot tell a wrong passphrase from a damaged record of the right shape.
    throw new WrongPassphraseError();
  }
  if (vaultKey.length !== VAULT_KEY_BYTES) {
    throw new KeyringDamagedError("Kirjava's keyring is damaged: the vault key has the wrong length");
  }
  return vaultKey;
}

/** Throws KeyringDamagedError unless `record` has the shape `wrapVaultKey` or a plain vault key has. */
export function checkVaultRecord(record: VaultKeyRecord): void {
  const fine =
    record?.kind === 'plain'
      ? isBytes(record.key, VAULT_KEY_BYTES)
      : record?.kind === 'wrapped' &&
        isBytes(record.salt, SALT_BYTES) &&
        isBytes(record.iv, IV_BYTES) &&
        isBytes(record.data, VAULT_KEY_BYTES + TAG_BYTES) &&
        Number.isInteger(record.iterations) &&
        record.iterations >= 1 &&
        record.iterations <= MAX_ITERATIONS;
  if (!fine) throw new KeyringDamagedError("Kirjava's keyring is damaged: its vault key record has the wrong shape");
}

function isBytes(value: unknown, length?: number): value is Uint8Array {
  return value instanceof Uint8Array && (length === undefined || value.length === length);
}
