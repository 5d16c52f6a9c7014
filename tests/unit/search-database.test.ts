/**
 * The search index's IndexedDB layout (src/background/search/search-database.ts), on an in-memory
 * IndexedDB: words found across segments, whole segments evicted oldest first with their
 * word rows, an event written again or redacted, and the move from the first layout (words
 * as a multi-entry index) that loses nothing.
 */
import 'fake-indexeddb/auto';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import Dexie from 'dexie';
import { SegmentedSearchStore } from '../../src/background/search/search-database.ts';
import { type IndexRecord, SearchIndex } from '../../src/background/search/search-index.ts';
import { silentLog } from '../../src/crypto/core/log.ts';
import { StorageQuota } from '../../src/crypto/core/storage-quota.ts';
import { parseSearchRequest } from '../../src/search/request.ts';

const ROOM = '!room:example.test';
let databases = 0;
const freshName = () => `search-test-${++databases}`;

const record = (i: number, ts = i, terms = [`w${i}`, 'all', `mod${i % 3}`]): IndexRecord => ({
  id: `$e${i}`,
  room: ROOM,
  sender: '@alice:example.test',
  type: 'm.room.message',
  ts,
  terms,
  iv: new Uint8Array(12),
  data: new Uint8Array([i % 256]).buffer,
});

const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i);

/** Rows in one object store of the database `name`, read with IndexedDB itself. */
async function rowsIn(name: string, storeName: string): Promise<number> {
  const db = await new Promise<IDBDatabase>((resolve, reject) => {
    const request = indexedDB.open(name);
    request.onsuccess = () => resolve(request.result);
    request.onerror = () => reject(request.error);
  });
  try {
    return await new Promise<number>((resolve, reject) => {
      const request = db.transaction(storeName).objectStore(storeName).count();
      request.onsuccess = () => resolve(request.result);
      request.onerror = () => reject(request.error);
    });
  } finally {
    db.close();
  }
}

const sorted = (ids: string[]) => [...ids].sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)));
/** The ids of every event the store finds (all records hold the word `all`), in order. */
const everyId = async (store: SegmentedSearchStore) => sorted(await store.idsWithAnyTerm(['all']));
const idsFrom = (from: number, to: number) => range(from, to).map((n) => `$e${n}`);

describe('Search index in segments', () => {
  it('finds events by word across segments; evicting drops whole segments, oldest first, words too', async () => {
    const name = freshName();
    const store = await SegmentedSearchStore.open(name, 10);
    for (let i = 0; i < 100; i += 5) await store.putMany(range(i, i + 5).map((n) => record(n)));

    assert.deepEqual(await store.idsWithAnyTerm(['w42']), ['$e42']);
    assert.deepEqual(sorted(await store.idsWithAnyTerm(['w3', 'w97'])), ['$e3', '$e97']);
    assert.equal((await store.idsWithAnyTerm(['all'])).length, 100);
    assert.equal((await store.idsWithAnyTerm(['mod1'])).length, 33);
    assert.equal(await store.count(), 100);
    // Per batch of 5: its five own words, `all`, and the three `mod` words.
    assert.equal(await rowsIn(name, 'postings'), 20 * 9);

    await store.keepAtMost(50);
    assert.equal(await store.count(), 50);
    assert.deepEqual(await everyId(store), idsFrom(50, 100));
    assert.deepEqual(await store.idsWithAnyTerm(['w42']), []);
    assert.equal(await store.get('$e42'), undefined);
    assert.equal(await rowsIn(name, 'postings'), 10 * 9, 'the evicted segments left word rows behind');
    assert.equal(await rowsIn(name, 'segments'), 5);

    await store.keepAtMost(50);
    assert.equal(await store.count(), 50, 'a store within its bound lost events');
    store.close();
  });

  it('evicts the segment whose newest event is oldest, not the first written (history after the present)', async () => {
    const store = await SegmentedSearchStore.open(freshName(), 10);
    await store.putMany(range(100, 110).map((n) => record(n)));
    await store.putMany(range(0, 10).map((n) => record(n)));
    await store.putMany(range(110, 120).map((n) => record(n)));

    await store.keepAtMost(20);
    assert.deepEqual(await everyId(store), idsFrom(100, 120));
    store.close();
  });

  it('an event written again lives on in its newest segment; a redacted one is gone from reads at once', async () => {
    const store = await SegmentedSearchStore.open(freshName(), 10);
    await store.putMany(range(0, 10).map((n) => record(n)));
    await store.putMany([record(3, 1_000), ...range(10, 19).map((n) => record(n))]);
    await store.delete('$e15');

    assert.deepEqual(await store.getMany(['$e15', '$e16']).then((r) => r.map((x) => x?.id)), [undefined, '$e16']);
    await store.keepAtMost(10);
    assert.deepEqual(await store.idsWithAnyTerm(['w3']), ['$e3']);
    assert.equal((await store.get('$e3'))?.ts, 1_000);
    assert.equal(await store.get('$e4'), undefined);
    store.close();
  });

  it('a first-layout index (words in a multi-entry index) moves into segments by time, losing nothing', async () => {
    const name = freshName();
    const old = new Dexie(name);
    old.version(1).stores({ events: 'id, room, ts, *terms', rooms: 'room' });
    // Written in an order unlike event time, as history backfill and live syncs interleave.
    await old.table('events').bulkPut(range(0, 25).map((n) => record((n * 7) % 25)));
    await old.table('rooms').put({ room: ROOM, from: 't42', done: false });
    old.close();

    const store = await SegmentedSearchStore.open(name, 10);
    assert.equal(await store.count(), 25);
    assert.deepEqual(await store.idsWithAnyTerm(['w7']), ['$e7']);
    assert.equal((await store.idsWithAnyTerm(['all'])).length, 25);
    assert.deepEqual(await store.roomProgress(ROOM), { room: ROOM, from: 't42', done: false });
    assert.equal('terms' in ((await store.get('$e7')) ?? {}), false, 'the words stayed in the record');
    assert.equal(await rowsIn(name, 'segments'), 3);

    await store.keepAtMost(15);
    assert.deepEqual(await everyId(store), idsFrom(10, 25));
    store.close();
  });

  it('the search index over it keeps its bound, finds the newest events and no longer the oldest', async () => {
    const store = await SegmentedSearchStore.open(freshName(), 10);
    const keys = crypto.getRandomValues(new Uint8Array(64));
    const index = await SearchIndex.create(keys, store, new StorageQuota(silentLog), 50);
    for (let i = 0; i < 200; i++) {
      await index.add(ROOM, {
        event_id: `$e${i}`,
        sender: '@alice:example.test',
        type: 'm.room.message',
        origin_server_ts: 1_700_000_000_000 + i * 1000,
        content: { msgtype: 'm.text', body: `memo w${i}` },
      });
    }
    await index.flushed();
    const found = async (word: string) =>
      (await index.candidates(parseSearchRequest({ search_categories: { room_events: { search_term: word } } }))).map(
        (e) => e.event_id,
      );

    assert.ok((await store.count()) <= 55, `${await store.count()} events kept`);
    assert.deepEqual(await found('w199'), ['$e199']);
    assert.deepEqual(await found('w160'), ['$e160']);
    assert.deepEqual(await found('w10'), []);
    index.close();
  });
});
