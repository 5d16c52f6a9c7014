import type { MediaKey, MediaKeyStore } from '../crypto/media/media-keys.js';

const STORE = 'keys';

function promised<T>(request: IDBRequest<T>): Promise<T> {
  return new Promise((resolve, reject) => {
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
}

/**
 * The keys of an account's encrypted files in the extension's IndexedDB (one database per
 * account, next to the crypto store), so pictures still decrypt after the worker restarts.
 * Encrypted at rest like the crypto store: AES-GCM under a key derived from the account's
 * store key (from the keyring). The mxc URI (which the homeserver knows anyway) is the record's key.
 */
export class IndexedDbMediaKeyStore implements MediaKeyStore {
  private db: Promise<IDBDatabase> | undefined;
  private key: Promise<CryptoKey> | undefined;

  constructor(
    private readonly name: string,
    private readonly passphrase: string,
  ) {}

  async load(mxc: string): Promise<MediaKey | undefined> {
    const db = await this.open();
    const record = (await promised(db.transaction(STORE).objectStore(STORE).get(mxc))) as
      | { iv: Uint8Array<ArrayBuffer>; data: ArrayBuffer }
      | undefined;
    if (!record) return undefined;
    const plaintext = await crypto.subtle.decrypt(
      { name: 'AES-GCM', iv: record.iv, additionalData: new TextEncoder().encode(mxc) },
      await this.cipherKey(),
      record.data,
    );
    return JSON.parse(new TextDecoder().decode(plaintext)) as MediaKey;
  }

  async save(mxc: string, key: MediaKey): Promise<void> {
    const iv = crypto.getRandomValues(new Uint8Array(12));
    const data = await crypto.subtle.encrypt(
      { name: 'AES-GCM', iv, additionalData: new TextEncoder().encode(mxc) },
      await this.cipherKey(),
      new TextEncoder().encode(JSON.stringify(key)),
    );
    const db = await this.open();
    const transaction = db.transaction(STORE, 'readwrite');
    transaction.objectStore(STORE).put({ iv, data }, mxc);
    await new Promise<void>((resolve, reject) => {
      transaction.oncomplete = () => resolve();
      transaction.onerror = () => reject(transaction.error);
    });
  }

  private open(): Promise<IDBDatabase> {
    this.db ??= new Promise((resolve, reject) => {
      const request = indexedDB.open(this.name, 1);
      request.onupgradeneeded = () => request.result.createObjectStore(STORE);
      request.onsuccess = () => {
        // A logout deletes the database: let go of it instead of blocking the deletion.
        request.result.onversionchange = () => {
          request.result.close();
          this.db = undefined;
        };
        resolve(request.result);
      };
      request.onerror = () => reject(request.error);
    });
    return this.db;
  }

  private cipherKey(): Promise<CryptoKey> {
    this.key ??= crypto.subtle
      .digest('SHA-256', new TextEncoder().encode(`kirjava media keys\0${this.passphrase}`))
      .then((raw) => crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']));
    return this.key;
  }
}
