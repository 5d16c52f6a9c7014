/**
 * Encrypted attachments as the Matrix spec defines them (client-server API, "Sending
 * encrypted attachments"), and what Kirjava keeps of one: the crypto code makes and checks
 * them, the worker stores their keys, the page hook decrypts downloads with them.
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

/** What Kirjava knows about one encrypted file: its key and how to label the plaintext. */
export interface MediaKey {
  file: EncryptedFile;
  /** The plaintext's content type from the event (`info.mimetype`), when it gave one. */
  mimetype?: string;
}
