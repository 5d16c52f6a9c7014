/**
 * Encrypted attachments (Matrix spec, client-server API, "Sending encrypted attachments"):
 * AES-256-CTR with a fresh key per file, the key as a JWK, a 128-bit IV whose low 64 bits
 * (the block counter) start at zero, and the SHA-256 of the ciphertext, all in an
 * `EncryptedFile` object (`v: "v2"`).
 *
 * WebCrypto (`globalThis.crypto.subtle`) and no extension API: the same code runs in the page's
 * hook, in the worker and in Node tests. Two forms: whole buffers (`encryptAttachment`,
 * `decryptAttachment`), and Blobs processed in 1 MiB chunks (`encryptBlob`, `openEncrypted`)
 * for the page, so that a large file never sits whole in its memory: CTR mode can start at
 * any block, and SHA-256 is computed incrementally (src/crypto/media/sha256.ts; WebCrypto only
 * hashes whole buffers).
 */
import type { EncryptedFile } from '../../shared/media.ts';
import { Sha256 } from './sha256.ts';

export type { EncryptedFile };

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

/**
 * Unpadded base64 of `bytes`, as the spec writes an EncryptedFile's `iv` and hash; converted in
 * slices, so a large buffer does not overflow the call stack.
 */
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

/** Encrypts one file held in memory; the caller uploads `ciphertext` and puts its mxc into `file.url`. */
export async function encryptAttachment(
  plaintext: ArrayBuffer | Uint8Array,
): Promise<{ ciphertext: Uint8Array; file: Omit<EncryptedFile, 'url'> }> {
  const { ciphertext, file } = await encryptBlob(new Blob([plaintext as BlobPart]));
  return { ciphertext: new Uint8Array(await ciphertext.arrayBuffer()), file };
}

/** A multiple of the AES block size: each chunk starts on a block boundary. */
export const CHUNK_BYTES = 1 << 20;

/** The CTR counter block `blocks` AES blocks after `iv`: the low 64 bits count, and wrap. */
function counterAt(iv: Uint8Array, blocks: number): Uint8Array<ArrayBuffer> {
  const counter = new Uint8Array(16);
  counter.set(iv);
  const view = new DataView(counter.buffer);
  view.setBigUint64(8, (view.getBigUint64(8) + BigInt(blocks)) & 0xffff_ffff_ffff_ffffn);
  return counter;
}

type FileCrypto = Pick<EncryptedFile, 'key' | 'iv' | 'hashes' | 'v'>;

/** The key, IV and expected hash of an EncryptedFile, or an AttachmentError saying what is wrong. */
function parseFile(file: FileCrypto): {
  raw: Uint8Array<ArrayBuffer>;
  iv: Uint8Array<ArrayBuffer>;
  expected: Uint8Array;
} {
  if (file.v !== undefined && file.v !== 'v2' && file.v !== 'v1') {
    throw new AttachmentError(
      `This file uses an unsupported encryption version (${String(file.v)}); the sender's app is too old or too ` +
        `new for Kirjava.`,
      'invalid',
    );
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
    throw new AttachmentError(
      'This file has no SHA-256 hash to check it against: Kirjava does not show unchecked files.',
      'invalid',
    );
  }
  return { raw, iv, expected };
}

function checkHash(actual: Uint8Array, expected: Uint8Array): void {
  if (actual.length !== expected.length || !actual.every((byte, i) => byte === expected[i])) {
    throw new AttachmentError(
      "This file was altered after it was sent (its SHA-256 does not match the sender's): Kirjava refuses to " +
        'show it. Ask the sender to send it again.',
      'hash',
    );
  }
}

/**
 * Encrypts a Blob chunk by chunk into a ciphertext Blob. The page holds one chunk at a time;
 * the ciphertext parts are handed to the browser's blob store, which keeps large ones on disk.
 */
export async function encryptBlob(plaintext: Blob): Promise<{ ciphertext: Blob; file: Omit<EncryptedFile, 'url'> }> {
  const raw = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const iv = new Uint8Array(16);
  globalThis.crypto.getRandomValues(iv.subarray(0, 8));
  const key = await subtle().importKey('raw', raw, { name: 'AES-CTR' }, false, ['encrypt']);
  const hash = new Sha256();
  const parts: Blob[] = [];
  for (let offset = 0; offset < plaintext.size; offset += CHUNK_BYTES) {
    const chunk = await plaintext.slice(offset, offset + CHUNK_BYTES).arrayBuffer();
    const encrypted = new Uint8Array(
      await subtle().encrypt({ name: 'AES-CTR', counter: counterAt(iv, offset / 16), length: 64 }, key, chunk),
    );
    hash.update(encrypted);
    parts.push(new Blob([encrypted]));
  }
  return {
    ciphertext: new Blob(parts, { type: 'application/octet-stream' }),
    file: {
      key: { kty: 'oct', key_ops: ['encrypt', 'decrypt'], alg: 'A256CTR', k: toBase64Url(raw), ext: true },
      iv: toBase64(iv),
      hashes: { sha256: toBase64(hash.digest()) },
      v: 'v2',
    },
  };
}

/**
 * Reads a ciphertext stream whole (into a Blob, hashing it on the way), checks its SHA-256,
 * and only then returns a stream that decrypts it chunk by chunk as it is read. A mismatch
 * throws before a single byte is available.
 */
export async function openEncrypted(
  body: ReadableStream<Uint8Array> | null,
  file: FileCrypto,
): Promise<{ plaintext: ReadableStream<Uint8Array>; size: number }> {
  const { raw, iv, expected } = parseFile(file);
  const key = await subtle().importKey('raw', raw, { name: 'AES-CTR' }, false, ['decrypt']);
  const hash = new Sha256();
  const parts: Blob[] = [];
  let pending: Uint8Array[] = [];
  let pendingBytes = 0;
  if (body) {
    const reader = body.getReader();
    for (let next = await reader.read(); !next.done; next = await reader.read()) {
      hash.update(next.value);
      pending.push(next.value);
      pendingBytes += next.value.length;
      if (pendingBytes >= CHUNK_BYTES) {
        parts.push(new Blob(pending as BlobPart[]));
        pending = [];
        pendingBytes = 0;
      }
    }
  }
  parts.push(new Blob(pending as BlobPart[]));
  checkHash(hash.digest(), expected);
  const ciphertext = new Blob(parts);
  let offset = 0;
  const plaintext = new ReadableStream<Uint8Array>({
    async pull(controller) {
      if (offset >= ciphertext.size) return controller.close();
      const chunk = await ciphertext.slice(offset, offset + CHUNK_BYTES).arrayBuffer();
      const counter = counterAt(iv, offset / 16);
      offset += chunk.byteLength;
      controller.enqueue(new Uint8Array(await subtle().decrypt({ name: 'AES-CTR', counter, length: 64 }, key, chunk)));
    },
  });
  return { plaintext, size: ciphertext.size };
}

/**
 * Checks the ciphertext's SHA-256 against `file.hashes.sha256`, then decrypts, for a file held
 * in memory. Nothing is returned unless the hash matches: a homeserver that alters the bytes
 * gets an error, never a plaintext of its choosing.
 */
export async function decryptAttachment(ciphertext: ArrayBuffer | Uint8Array, file: FileCrypto): Promise<Uint8Array> {
  const { plaintext } = await openEncrypted(new Blob([ciphertext as BlobPart]).stream(), file);
  return new Uint8Array(await new Response(plaintext).arrayBuffer());
}
