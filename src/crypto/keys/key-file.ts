/**
 * Key files in the format Element writes and reads ("Export E2E room keys"):
 *
 *   -----BEGIN MEGOLM SESSION DATA-----
 *   base64( 0x01 | salt[16] | iv[16] | rounds[u32 BE] | AES-256-CTR(json) | HMAC-SHA-256 )
 *   -----END MEGOLM SESSION DATA-----
 *
 * PBKDF2-SHA-512(passphrase, salt, rounds) gives 64 bytes: the AES key, then the HMAC key;
 * the HMAC covers every byte before it. The JSON is an array of exported room keys (Matrix
 * spec "Key exports"). Done with WebCrypto rather than the machine's synchronous helpers
 * so a 500 000-round derivation does not block the worker, and so each failure can say what
 * the user can do about it.
 */

const HEADER = '-----BEGIN MEGOLM SESSION DATA-----';
const FOOTER = '-----END MEGOLM SESSION DATA-----';
const VERSION = 1;
/** What Element uses; fewer makes a guessed passphrase cheaper. */
export const DEFAULT_ROUNDS = 500_000;
const HMAC_LENGTH = 32;
const PREFIX_LENGTH = 1 + 16 + 16 + 4;

/** A key file that cannot be read; the message says what the user can do. */
export class KeyFileError extends Error {
  constructor(
    readonly reason: 'not-a-key-file' | 'truncated' | 'corrupt' | 'wrong-passphrase' | 'empty-passphrase',
    message: string,
  ) {
    super(message);
    this.name = 'KeyFileError';
  }
}

const subtle = () => globalThis.crypto.subtle;

async function deriveKeys(passphrase: string, salt: Uint8Array, rounds: number) {
  const base = await subtle().importKey('raw', new TextEncoder().encode(passphrase), 'PBKDF2', false, ['deriveBits']);
  const bits = new Uint8Array(
    await subtle().deriveBits(
      { name: 'PBKDF2', salt: salt as BufferSource, iterations: rounds, hash: 'SHA-512' },
      base,
      512,
    ),
  );
  const aes = await subtle().importKey('raw', bits.slice(0, 32), 'AES-CTR', false, ['encrypt', 'decrypt']);
  const hmac = await subtle().importKey('raw', bits.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, [
    'sign',
    'verify',
  ]);
  return { aes, hmac };
}

/** Decrypts a key file's text; returns the JSON array of exported room keys as text. */
export async function decryptKeyFile(text: string, passphrase: string): Promise<string> {
  if (!passphrase) throw new KeyFileError('empty-passphrase', 'Enter the passphrase this key file was exported with');
  const body = armoredBody(text);
  let data: Uint8Array;
  try {
    data = fromBase64(body);
  } catch {
    throw new KeyFileError('corrupt', 'This key file is damaged (it is not valid base64): export it again');
  }
  if (data.length === 0 || data[0] !== VERSION) {
    throw new KeyFileError('corrupt', 'This key file is damaged or from an unknown version: export it again');
  }
  if (data.length < PREFIX_LENGTH + HMAC_LENGTH) {
    throw new KeyFileError('truncated', 'This key file is incomplete (cut short): copy or download it again');
  }
  const salt = data.subarray(1, 17);
  const iv = data.subarray(17, 33);
  const rounds = new DataView(data.buffer, data.byteOffset + 33, 4).getUint32(0);
  if (rounds === 0) throw new KeyFileError('corrupt', 'This key file is damaged: export it again');
  const ciphertext = data.subarray(PREFIX_LENGTH, data.length - HMAC_LENGTH);
  const mac = data.subarray(data.length - HMAC_LENGTH);
  const keys = await deriveKeys(passphrase, salt, rounds);
  const signed = data.subarray(0, data.length - HMAC_LENGTH);
  if (!(await subtle().verify('HMAC', keys.hmac, mac as BufferSource, signed as BufferSource))) {
    throw new KeyFileError(
      'wrong-passphrase',
      'Wrong passphrase for this key file (or the file was altered): nothing was imported',
    );
  }
  const plaintext = await subtle().decrypt(
    { name: 'AES-CTR', counter: iv as BufferSource, length: 64 },
    keys.aes,
    ciphertext as BufferSource,
  );
  const json = new TextDecoder().decode(plaintext);
  try {
    if (!Array.isArray(JSON.parse(json))) throw new Error('not an array');
  } catch {
    throw new KeyFileError('corrupt', 'This key file decrypted but holds no room keys: export it again');
  }
  return json;
}

/** Encrypts a JSON array of exported room keys into a key file's text. */
export async function encryptKeyFile(json: string, passphrase: string, rounds = DEFAULT_ROUNDS): Promise<string> {
  if (!passphrase) throw new KeyFileError('empty-passphrase', 'Choose a passphrase to protect the exported keys');
  const salt = globalThis.crypto.getRandomValues(new Uint8Array(16));
  const iv = globalThis.crypto.getRandomValues(new Uint8Array(16));
  // Clear bit 63 so the 64-bit counter never wraps, as Element does.
  iv[8] &= 0x7f;
  const keys = await deriveKeys(passphrase, salt, rounds);
  const ciphertext = new Uint8Array(
    await subtle().encrypt({ name: 'AES-CTR', counter: iv, length: 64 }, keys.aes, new TextEncoder().encode(json)),
  );
  const data = new Uint8Array(PREFIX_LENGTH + ciphertext.length + HMAC_LENGTH);
  data[0] = VERSION;
  data.set(salt, 1);
  data.set(iv, 17);
  new DataView(data.buffer).setUint32(33, rounds);
  data.set(ciphertext, PREFIX_LENGTH);
  const mac = new Uint8Array(
    await subtle().sign('HMAC', keys.hmac, data.subarray(0, PREFIX_LENGTH + ciphertext.length)),
  );
  data.set(mac, PREFIX_LENGTH + ciphertext.length);
  const base64 = toBase64(data);
  const lines: string[] = [];
  for (let i = 0; i < base64.length; i += 96) lines.push(base64.slice(i, i + 96));
  return `${HEADER}\n${lines.join('\n')}\n${FOOTER}\n`;
}

/** The base64 between the header and footer lines, whitespace removed. */
function armoredBody(text: string): string {
  const start = text.indexOf(HEADER);
  if (start < 0) {
    throw new KeyFileError(
      'not-a-key-file',
      'This is not a Matrix key file: pick the file your Matrix client exported (it starts with -----BEGIN ' +
        'MEGOLM SESSION DATA-----)',
    );
  }
  const end = text.indexOf(FOOTER, start + HEADER.length);
  if (end < 0) {
    throw new KeyFileError('truncated', 'This key file is incomplete (cut short): copy or download it again');
  }
  return text.slice(start + HEADER.length, end).replace(/\s+/g, '');
}

function fromBase64(text: string): Uint8Array {
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(text)) throw new Error('not base64');
  const binary = atob(text);
  const out = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i++) out[i] = binary.charCodeAt(i);
  return out;
}

function toBase64(data: Uint8Array): string {
  let binary = '';
  for (let i = 0; i < data.length; i += 0x8000) binary += String.fromCharCode(...data.subarray(i, i + 0x8000));
  return btoa(binary);
}
