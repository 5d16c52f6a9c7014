/**
 * The decrypted-event cache's IndexedDB store (Dexie), one database per account next to
 * its crypto store. It holds sealed entries only: see src/crypto/receive/decrypted-cache.ts.
 */
import Dexie, { type Table } from 'dexie';
import type { SealedEntry, SealedStore } from '../crypto/receive/decrypted-cache.ts';

class CacheDatabase extends Dexie {
  entries!: Table<SealedEntry, string>;

  constructor(name: string) {
    super(name);
    this.version(1).stores({ entries: 'id, at' });
  }
}

/** The decrypted-event cache's SealedStore in IndexedDB: one Dexie database per account. */
export class DexieSealedStore implements SealedStore {
  private readonly db: CacheDatabase;

  constructor(name: string) {
    this.db = new CacheDatabase(name);
    // Open now, while the crypto library compiles: the first sync's lookups find it open.
    // A failure shows at the first lookup (Dexie reopens on use).
    this.db.open().catch(() => undefined);
  }

  getMany(ids: string[]) {
    return this.db.entries.bulkGet(ids);
  }

  async putMany(entries: SealedEntry[]) {
    await this.db.entries.bulkPut(entries);
  }

  count() {
    return this.db.entries.count();
  }

  async dropOldest(n: number) {
    const keys = await this.db.entries.orderBy('at').limit(n).primaryKeys();
    await this.db.entries.bulkDelete(keys);
  }

  ids() {
    return this.db.entries.toCollection().primaryKeys();
  }
}
