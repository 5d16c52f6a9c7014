/**
 * Storage stays bounded and full storage does not stop reading: the search index keeps the
 * newest events up to its bound; when the browser refuses writes for lack of space, the index
 * and the decrypted-event cache stop growing while decryption goes on, what was stored before
 * still reads, and a send whose crypto store refuses its write fails instead of going out.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import Dexie from 'dexie';
import {
  type IndexRecord,
  type RoomProgress,
  type SearchStore,
  SearchIndex,
} from '../../src/background/search/search-index.ts';
import { silentLog } from '../../src/crypto/core/log.ts';
import { StorageQuota, isQuotaError } from '../../src/crypto/core/storage-quota.ts';
import { DecryptedEventCache, MemorySealedStore, type SealedEntry } from '../../src/crypto/receive/decrypted-cache.ts';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { parseSearchRequest } from '../../src/search/request.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';
import { aliceAndBobIn, closeOpenedAccounts, openAccount, readText, sendText } from '../fixtures/crypto-accounts.ts';

type Json = Record<string, any>;

const ROOM = '!secret:example.test';
const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';

afterEach(closeOpenedAccounts);

const quotaError = () => new DOMException('The quota has been exceeded.', 'QuotaExceededError');

/** A SearchStore in memory; `full` makes every put fail as a browser out of space does. */
class MemorySearchStore implements SearchStore {
  readonly events = new Map<string, IndexRecord>();
  readonly rooms = new Map<string, RoomProgress>();
  full = false;
  largest = 0;

  async putMany(records: IndexRecord[]) {
    if (this.full) throw quotaError();
    for (const record of records) this.events.set(record.id, record);
    this.largest = Math.max(this.largest, this.events.size);
  }
  async get(id: string) {
    return this.events.get(id);
  }
  async delete(id: string) {
    this.events.delete(id);
  }
  async getMany(ids: string[]) {
    return ids.map((id) => this.events.get(id));
  }
  async idsWithAnyTerm(terms: string[]) {
    return [...this.events.values()].filter((r) => r.terms.some((t) => terms.includes(t))).map((r) => r.id);
  }
  async count() {
    return this.events.size;
  }
  async keepAtMost(limit: number) {
    const oldest = [...this.events.values()].sort((a, b) => a.ts - b.ts);
    for (const r of oldest.slice(0, Math.max(0, oldest.length - limit))) this.events.delete(r.id);
  }
  async roomProgress(roomId: string) {
    return this.rooms.get(roomId);
  }
  async saveRoomProgress(progress: RoomProgress) {
    this.rooms.set(progress.room, progress);
  }
  close() {}
}

const message = (i: number) => ({
  event_id: `$e${i}`,
  sender: ALICE,
  type: 'm.room.message',
  origin_server_ts: 1_700_000_000_000 + i * 1000,
  content: { msgtype: 'm.text', body: `memo w${i}` },
});

const found = async (index: SearchIndex, word: string) =>
  (await index.candidates(parseSearchRequest({ search_categories: { room_events: { search_term: word } } }))).map(
    (e) => e.event_id,
  );

/** A clock the test moves, for StorageQuota's "try again later". */
function clock() {
  let now = 1_000;
  return { now: () => now, advance: (ms: number) => void (now += ms) };
}

async function givenIndex(limit: number, quota = new StorageQuota(silentLog)) {
  const store = new MemorySearchStore();
  const keys = crypto.getRandomValues(new Uint8Array(64));
  return { store, quota, index: await SearchIndex.create(keys, store, quota, limit) };
}

describe('Search index bound', () => {
  it('keeps at most the bound (plus a tenth between checks), and the newest events stay searchable', async () => {
    const { store, index } = await givenIndex(100);
    // History backfill and live sync interleave: events do not arrive in time order.
    const order = Array.from({ length: 400 }, (_, i) => i).sort((a, b) => ((a * 7919) % 400) - ((b * 7919) % 400));
    for (const i of order) await index.add(ROOM, message(i));
    await index.flushed();

    assert.ok(store.largest <= 110, `the store held ${store.largest} events`);
    assert.ok(store.events.size <= 110, `${store.events.size} events kept`);
    for (const i of [399, 398, 350, 300]) assert.deepEqual(await found(index, `w${i}`), [`$e${i}`], `w${i}`);
    assert.deepEqual(await found(index, 'w0'), [], 'the oldest event was kept');
    // The newest 100 by event time are never evicted, whatever order they came in.
    const kept = new Set(await found(index, 'memo'));
    const newest = Array.from({ length: 100 }, (_, i) => `$e${300 + i}`);
    assert.deepEqual(
      newest.filter((id) => !kept.has(id)),
      [],
    );
  });

  it('writes wait while the account decrypts, then every waiting event is written and found', async () => {
    const { store, index } = await givenIndex(1_000);
    let finishSync!: () => void;
    const sync = new Promise<void>((resolve) => (finishSync = resolve));
    index.writeWhenQuiet(() => sync);
    const added = Array.from({ length: 1_200 }, (_, i) => index.add(ROOM, message(i)));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(store.events.size, 0, 'the index wrote while the sync was being decrypted');

    finishSync();
    await sync;
    await Promise.all(added);
    assert.equal(store.events.size, 1_000, 'not the newest 1,000 (the bound) kept');
    assert.deepEqual(await found(index, 'w1199'), ['$e1199']);
  });

  it('a search does not wait for quiet: it finds what waited to be written', async () => {
    const { store, index } = await givenIndex(1_000);
    index.writeWhenQuiet(() => new Promise(() => {}));
    for (let i = 0; i < 120; i++) void index.add(ROOM, message(i));
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(store.events.size, 0);
    assert.deepEqual(await found(index, 'w119'), ['$e119']);
    assert.equal(store.events.size, 120);
  });

  it('closed (the account logged out) while events wait for quiet, it writes none of them', async () => {
    const { store, index } = await givenIndex(1_000);
    let quiet!: () => void;
    index.writeWhenQuiet(() => new Promise<void>((resolve) => (quiet = resolve)));
    for (let i = 0; i < 50; i++) void index.add(ROOM, message(i));
    await new Promise((resolve) => setTimeout(resolve, 20));
    index.close();
    quiet();
    await index.flushed();
    await index.add(ROOM, message(99));
    assert.equal(store.events.size, 0, 'a closed index wrote: it would recreate a deleted database');
  });

  it('an index opened over its bound (one from before the bound existed) is trimmed at its first write', async () => {
    const { store, index } = await givenIndex(1_000);
    for (let i = 0; i < 1_500; i++) await index.add(ROOM, message(i));
    const reopened = await SearchIndex.create(
      crypto.getRandomValues(new Uint8Array(64)),
      store,
      new StorageQuota(silentLog),
      100,
    );
    await reopened.add(ROOM, message(1_500));
    assert.equal(store.events.size, 100);
    assert.ok(store.events.has('$e1500') && store.events.has('$e1401') && !store.events.has('$e1400'));
  });
});

describe('Full storage', () => {
  it('recognises the ways the browser and Dexie report a refused write', () => {
    assert.ok(isQuotaError(quotaError()));
    assert.ok(isQuotaError(new Dexie.QuotaExceededError('full')));
    assert.ok(isQuotaError(new Dexie.AbortError('Transaction aborted', quotaError())));
    assert.ok(isQuotaError(new Dexie.DatabaseClosedError(quotaError())));
    assert.ok(isQuotaError(new Dexie.BulkError('1 of 2 operations failed', { 1: quotaError() })));
    assert.ok(isQuotaError(new Error('IndexedDB error: QuotaExceededError: the quota has been exceeded')));
    assert.ok(!isQuotaError(new Dexie.ConstraintError('Key already exists')));
    assert.ok(!isQuotaError(new TypeError('x is undefined')));
  });

  it('the search index stops growing, what it holds still reads, and it grows again once there is space', async () => {
    const time = clock();
    const { store, quota, index } = await givenIndex(1_000, new StorageQuota(silentLog, 60_000, time.now));
    for (let i = 0; i < 5; i++) await index.add(ROOM, message(i));
    const before = new Map(store.events);

    store.full = true;
    for (let i = 5; i < 10; i++) await index.add(ROOM, message(i)); // resolves: not the caller's failure
    assert.deepEqual(quota.status(), { full: true, since: 1_000 });
    assert.deepEqual(store.events, before, 'nothing stored before changed');
    assert.deepEqual(await found(index, 'w3'), ['$e3']);
    assert.deepEqual(await found(index, 'w7'), []);

    store.full = false; // the user freed space
    await index.add(ROOM, message(10));
    assert.equal(store.events.has('$e10'), false, 'tried again before a minute passed');
    time.advance(60_000);
    await index.add(ROOM, message(11));
    assert.deepEqual(await found(index, 'w11'), ['$e11']);
    assert.deepEqual(quota.status(), { full: false });
  });

  it('decryption goes on when the decrypted-event cache cannot write; what it held still reads', async () => {
    const hs = new FakeHomeserver();
    const store = new RefusingSealedStore();
    const quota = new StorageQuota(silentLog);
    const cache = await DecryptedEventCache.create('the account store passphrase', store, undefined, silentLog, quota);
    const alice = await openAccount(hs, ALICE, 'ALICEDEV', { claim: true });
    const bob = await openAccount(hs, BOB, 'BOBDEV', { claim: true, decryptedCache: cache });
    hs.setEncrypted(ROOM);
    hs.setMembership(ROOM, ALICE, 'join');
    hs.setMembership(ROOM, BOB, 'join');
    const events: Json[] = [];
    for (let i = 0; i < 6; i++) events.push(await sendText(hs, alice, ROOM, `Secret number ${i}`));
    await bob.processSync(hs.syncFor(BOB, 'BOBDEV'));
    const load = async (chunk: Json[]) =>
      JSON.parse(await bob.processHistory(ROOM, JSON.stringify({ chunk }))).chunk as Json[];

    await load(events.slice(0, 3));
    await cache.flush();
    assert.equal(store.entries.size, 3);
    const before = new Map(store.entries);

    store.full = true;
    const late = await load(events.slice(3));
    await cache.flush(); // does not throw
    assert.deepEqual(
      late.map((e) => e.content.body),
      ['Secret number 3', 'Secret number 4', 'Secret number 5'],
    );
    assert.equal(quota.status().full, true);
    assert.deepEqual(store.entries, before, 'nothing stored before changed');

    // A fresh cache over the same store (the worker restarted): the old entries open.
    const restarted = await DecryptedEventCache.create('the account store passphrase', store);
    const id = DecryptedEventCache.idOf(ROOM, events[1]!)!;
    assert.equal((await restarted.get(id))?.content.body, 'Secret number 1');
    const again = await load(events.slice(0, 3));
    assert.ok(again.every((e) => e.unsigned[ENCRYPTION_INFO_KEY].cached === true));
  });

  it('a send whose crypto store refuses the write fails, never in clear; what came before still reads', async () => {
    const { hs, alice, bob } = await aliceAndBobIn(ROOM);
    const before = await sendText(hs, alice, ROOM, 'before the disk filled up');

    const machine = alice.machine as unknown as Record<string, unknown>;
    const encrypt = machine.encryptRoomEvent;
    machine.encryptRoomEvent = async () => {
      throw quotaError();
    };
    await assert.rejects(
      alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'lost?' })),
      (error: Error) => isQuotaError(error),
    );
    delete machine.encryptRoomEvent;
    assert.equal(machine.encryptRoomEvent, encrypt);

    assert.equal(await readText(hs, bob, ROOM, before), 'before the disk filled up');
    const after = await sendText(hs, alice, ROOM, 'after space was freed');
    assert.equal(await readText(hs, bob, ROOM, after), 'after space was freed');
  });
});

/** The cache's store in memory; `full` makes writes fail as a browser out of space does (Dexie's BulkError). */
class RefusingSealedStore extends MemorySealedStore {
  full = false;

  override async putMany(entries: SealedEntry[]) {
    if (this.full) throw new Dexie.BulkError('bulkPut(): 1 of 1 operations failed', [quotaError()]);
    await super.putMany(entries);
  }
}
