/**
 * The search index's IndexedDB store (Dexie): one database per account, named by a hash of
 * the account id, holding sealed events and hashed words only (src/background/search-index.ts).
 */
import Dexie, { type Table } from 'dexie';
import { secretNames } from '../crypto/keyring/keyring.ts';
import type { StorageQuota } from '../crypto/core/storage-quota.ts';
import { keyring } from './keyring.ts';
import { type IndexRecord, type RoomProgress, type SearchStore, SearchIndex } from './search-index.ts';

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** One database per account, named by a hash of the account id. */
const databaseName = async (accountId: string) => `kirjava-search-${(await sha256Hex(accountId)).slice(0, 16)}`;

/** Oldest events deleted per transaction when the index is trimmed to its bound. */
const DROP_CHUNK = 5_000;

class SearchDatabase extends Dexie {
  events!: Table<IndexRecord, string>;
  rooms!: Table<RoomProgress, string>;

  constructor(name: string) {
    super(name);
    this.version(1).stores({ events: 'id, room, ts, *terms', rooms: 'room' });
  }
}

/** The search index's SearchStore in IndexedDB. */
class DexieSearchStore implements SearchStore {
  constructor(private readonly db: SearchDatabase) {}

  async putMany(records: IndexRecord[]) {
    await this.db.events.bulkPut(records);
  }

  get(id: string) {
    return this.db.events.get(id);
  }

  delete(id: string) {
    return this.db.events.delete(id);
  }

  getMany(ids: string[]) {
    return this.db.events.bulkGet(ids);
  }

  idsWithAnyTerm(terms: string[]) {
    return this.db.events.where('terms').anyOf(terms).primaryKeys();
  }

  count() {
    return this.db.events.count();
  }

  async dropOldest(n: number) {
    for (let left = n; left > 0;) {
      const keys = await this.db.events.orderBy('ts').limit(Math.min(left, DROP_CHUNK)).primaryKeys();
      if (keys.length === 0) return;
      await this.db.events.bulkDelete(keys);
      left -= keys.length;
    }
  }

  roomProgress(roomId: string) {
    return this.db.rooms.get(roomId);
  }

  async saveRoomProgress(progress: RoomProgress) {
    await this.db.rooms.put(progress);
  }

  close() {
    this.db.close();
  }
}

/** Opens the index of the account `accountId` (see AccountView.id), creating its keys. */
export async function openSearchIndex(accountId: string, quota: StorageQuota): Promise<SearchIndex> {
  const keys = await keyring.secret(secretNames.search(accountId), 64);
  const db = new SearchDatabase(await databaseName(accountId));
  await db.open();
  return SearchIndex.create(keys, new DexieSearchStore(db), quota);
}

/** Deletes the index of `accountId` and its keys (the account logged out). */
export async function destroySearchIndex(accountId: string): Promise<void> {
  await Dexie.delete(await databaseName(accountId));
  await keyring.forget(secretNames.search(accountId));
}
