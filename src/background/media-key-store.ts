/**
 * The keys of an account's encrypted files in the extension's IndexedDB (Dexie; one
 * database per account, next to the crypto store), so pictures still decrypt after the
 * worker restarts. Sealed at rest like the crypto store (sealWith): AES-GCM under a key
 * derived from the account's store key (from the keyring), bound to the mxc URI (which the
 * homeserver knows anyway), the record's key.
 */
import Dexie, { type Table } from 'dexie';
import { openWith, sealWith } from '../crypto/keyring/keyring-seal.ts';
import type { MediaKey, MediaKeyStore } from '../crypto/media/media-keys.ts';

interface SealedMediaKey {
  iv: Uint8Array<ArrayBuffer>;
  data: ArrayBuffer;
}

class MediaKeyDatabase extends Dexie {
  keys!: Table<SealedMediaKey, string>;

  constructor(name: string) {
    super(name);
    // IndexedDB version 1 (Dexie counts in tenths), as the databases made before Dexie.
    this.version(0.1).stores({ keys: '' });
  }
}

/**
 * An account's MediaKeyStore in IndexedDB, each key sealed under a key derived from the
 * account's store key and bound to its mxc URI.
 */
export class IndexedDbMediaKeyStore implements MediaKeyStore {
  private readonly db: MediaKeyDatabase;
  private key: Promise<CryptoKey> | undefined;
  /** Keys sealed and waiting for their write (see save). */
  private batch: { records: Map<string, SealedMediaKey>; written: Promise<void> } | undefined;

  constructor(
    name: string,
    private readonly passphrase: string,
  ) {
    // Dexie closes it when a logout deletes the database, and reopens it on use.
    this.db = new MediaKeyDatabase(name);
  }

  async load(mxc: string): Promise<MediaKey | undefined> {
    const record = await this.db.keys.get(mxc);
    if (!record) return undefined;
    const plaintext = await openWith(
      await this.cipherKey(),
      { iv: record.iv, data: new Uint8Array(record.data) },
      new TextEncoder().encode(mxc),
    );
    return JSON.parse(new TextDecoder().decode(plaintext)) as MediaKey;
  }

  /** Seals the key, then writes it with every other key saved in the same tick: one transaction. */
  async save(mxc: string, key: MediaKey): Promise<void> {
    const sealed = await sealWith(
      await this.cipherKey(),
      new TextEncoder().encode(JSON.stringify(key)),
      new TextEncoder().encode(mxc),
    );
    const data = sealed.data.buffer.slice(
      sealed.data.byteOffset,
      sealed.data.byteOffset + sealed.data.byteLength,
    ) as ArrayBuffer;
    if (!this.batch) {
      const records = new Map<string, SealedMediaKey>();
      const written = new Promise((resolve) => setTimeout(resolve, 0)).then(async () => {
        this.batch = undefined;
        await this.db.keys.bulkPut([...records.values()], [...records.keys()]);
      });
      this.batch = { records, written };
    }
    this.batch.records.set(mxc, { iv: sealed.iv as Uint8Array<ArrayBuffer>, data });
    await this.batch.written;
  }

  private cipherKey(): Promise<CryptoKey> {
    this.key ??= crypto.subtle
      .digest('SHA-256', new TextEncoder().encode(`kirjava media keys\0${this.passphrase}`))
      .then((raw) => crypto.subtle.importKey('raw', raw, { name: 'AES-GCM' }, false, ['encrypt', 'decrypt']));
    return this.key;
  }
}
