/**
 * Encrypted attachments (Matrix spec, client-server API, "Sending encrypted attachments"):
 * AES-256-CTR with a fresh key per file, the key as a JWK, a 128-bit IV whose low 64 bits
 * (the block counter) start at zero, and the SHA-256 of the ciphertext, all in an
 * `EncryptedFile` object (`v: "v2"`).
 *
 * WebCrypto only (`globalThis.crypto.subtle`), no `chrome.*`: the same code runs in the
 * page's hook, in the worker and in Node tests. WebCrypto has neither incremental SHA-256
 * nor streaming AES, so one file is held whole: see `decryptAttachment` for the bound.
 */

/** The JSON Web Key of an attachment (spec: JWK), always A256CTR. */
export interface AttachmentJwk {
  kty: 'oct';
  key_ops: string[];
  alg: 'A256CTR';
  /** The 256-bit key, unpadded base64url. */
  k: string;
  ext: true;
}

/** The spec's `EncryptedFile`: where the ciphertext is and how to decrypt and check it. */
export interface EncryptedFile {
  /** The mxc URI of the ciphertext. */
  url: string;
  key: AttachmentJwk;
  /** 16 bytes, unpadded base64. */
  iv: string;
  /** `sha256`: SHA-256 of the ciphertext, unpadded base64. */
  hashes: Record<string, string>;
  v: string;
}

/** The file could not be decrypted; the message says why and what the user can do. */
export class AttachmentError extends Error {
  constructor(
    message: string,
    /** `hash` when the bytes are not what the sender encrypted (tampered or corrupt). */
    readonly reason: 'hash' | 'invalid',
  ) {
    super(message);
    this.name = 'AttachmentError';
  }
}

const subtle = () => globalThis.crypto.subtle;

export function toBase64(bytes: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary).replace(/=+$/, '');
}

/** Decodes standard or url-safe base64, padded or not; undefined when it is not base64. */
export function fromBase64(text: string): Uint8Array<ArrayBuffer> | undefined {
  const standard = text.replace(/-/g, '+').replace(/_/g, '/').replace(/=+$/, '');
  if (!/^[A-Za-z0-9+/]*$/.test(standard) || standard.length % 4 === 1) return undefined;
  const binary = atob(standard + '='.repeat((4 - (standard.length % 4)) % 4));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
  return bytes;
}

const toBase64Url = (bytes: Uint8Array) => toBase64(bytes).replace(/\+/g, '-').replace(/\//g, '_');

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Whether `value` has the shape of an EncryptedFile Kirjava can decrypt (not whether it decrypts). */
export function isEncryptedFile(value: unknown): value is EncryptedFile {
  if (!isRecord(value) || !isRecord(value.key) || !isRecord(value.hashes)) return false;
  return (
    typeof value.url === 'string' &&
    value.url.startsWith('mxc://') &&
    typeof value.iv === 'string' &&
    typeof value.key.k === 'string' &&
    typeof value.hashes.sha256 === 'string'
  );
}

/** Encrypts one file; the caller uploads `ciphertext` and puts its mxc URI into `file.url`. */
export async function encryptAttachment(
  plaintext: ArrayBuffer | Uint8Array,
): Promise<{ ciphertext: Uint8Array; file: Omit<EncryptedFile, 'url'> }> {
  const raw = globalThis.crypto.getRandomValues(new Uint8Array(32));
  // Random high 64 bits, zero counter: a file never wraps the counter (2^64 blocks).
  const iv = new Uint8Array(16);
  globalThis.crypto.getRandomValues(iv.subarray(0, 8));
  const key = await subtle().importKey('raw', raw, { name: 'AES-CTR' }, false, ['encrypt']);
  const ciphertext = new Uint8Array(
    await subtle().encrypt({ name: 'AES-CTR', counter: iv, length: 64 }, key, plaintext as BufferSource),
  );
  const sha256 = new Uint8Array(await subtle().digest('SHA-256', ciphertext));
  return {
    ciphertext,
    file: {
      key: { kty: 'oct', key_ops: ['encrypt', 'decrypt'], alg: 'A256CTR', k: toBase64Url(raw), ext: true },
      iv: toBase64(iv),
      hashes: { sha256: toBase64(sha256) },
      v: 'v2',
    },
  };
}

/**
 * Checks the ciphertext's SHA-256 against `file.hashes.sha256`, then decrypts. Nothing is
 * returned unless the hash matches: a homeserver that alters the bytes gets an error, never
 * a plaintext of its choosing.
 *
 * Memory: the ciphertext and the plaintext are both held whole (2 × the file's size) until
 * the caller drops the ciphertext.
 */
export async function decryptAttachment(
  ciphertext: ArrayBuffer | Uint8Array,
  file: Pick<EncryptedFile, 'key' | 'iv' | 'hashes' | 'v'>,
): Promise<Uint8Array> {
  if (file.v !== undefined && file.v !== 'v2' && file.v !== 'v1') {
    throw new AttachmentError(`This file uses an unsupported encryption version (${String(file.v)}); the sender's app is too old or too new for Kirjava.`, 'invalid');
  }
  const raw = typeof file.key?.k === 'string' ? fromBase64(file.key.k) : undefined;
  if (!raw || raw.length !== 32 || (file.key.alg !== undefined && file.key.alg !== 'A256CTR')) {
    throw new AttachmentError("This file's key is malformed: it cannot be decrypted.", 'invalid');
  }
  const iv = typeof file.iv === 'string' ? fromBase64(file.iv) : undefined;
  if (!iv || iv.length !== 16) {
    throw new AttachmentError("This file's IV is malformed: it cannot be decrypted.", 'invalid');
  }
  const expected = typeof file.hashes?.sha256 === 'string' ? fromBase64(file.hashes.sha256) : undefined;
  if (!expected || expected.length !== 32) {
    throw new AttachmentError('This file has no SHA-256 hash to check it against: Kirjava does not show unchecked files.', 'invalid');
  }
  const actual = new Uint8Array(await subtle().digest('SHA-256', ciphertext as BufferSource));
  if (!actual.every((byte, i) => byte === expected[i])) {
    throw new AttachmentError(
      'This file was altered after it was sent (its SHA-256 does not match the sender\'s): Kirjava refuses to show it. Ask the sender to send it again.',
      'hash',
    );
  }
  const key = await subtle().importKey('raw', raw, { name: 'AES-CTR' }, false, ['decrypt']);
  return new Uint8Array(await subtle().decrypt({ name: 'AES-CTR', counter: iv, length: 64 }, key, ciphertext as BufferSource));
}
