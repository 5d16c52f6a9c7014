/**
 * The decrypted-event cache: Bob loads the same history twice; the second time comes from the
 * cache (sealed at rest, bounded), and an envelope that is not the one decrypted is not served
 * from it.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { DecryptedEventCache, MemorySealedStore } from '../../src/crypto/receive/decrypted-cache.ts';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';
import { closeOpenedAccounts, openAccount } from '../fixtures/crypto-accounts.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';

/** Waits until `done()` holds (the writes run on timers; a loaded machine runs them late), at most 10 s. */
async function until(done: () => boolean, what: string): Promise<void> {
  for (const start = Date.now(); !done(); await new Promise((resolve) => setTimeout(resolve, 10))) {
    if (Date.now() - start > 10_000) assert.fail(`not within 10 s: ${what}`);
  }
}

afterEach(closeOpenedAccounts);

async function givenHistory(count: number, limit?: number) {
  const hs = new FakeHomeserver();
  const store = new MemorySealedStore();
  const cache = await DecryptedEventCache.create('the account store passphrase', store, limit);
  const alice = await openAccount(hs, ALICE, 'ALICEDEV', { claim: true });
  const bob = await openAccount(hs, BOB, 'BOBDEV', { claim: true, decryptedCache: cache });
  hs.setEncrypted(ROOM);
  hs.setMembership(ROOM, ALICE, 'join');
  hs.setMembership(ROOM, BOB, 'join');
  const chunk: Json[] = [];
  for (let i = 0; i < count; i++) {
    const decision = await alice.prepareSend(
      ROOM,
      'm.room.message',
      JSON.stringify({ msgtype: 'm.text', body: `Secret number ${i}` }),
    );
    if (decision === 'passthrough') throw new Error('sent in the clear');
    chunk.push(hs.event(ROOM, ALICE, 'm.room.encrypted', JSON.parse(decision.body)));
  }
  // Bob receives the room key with a sync.
  await bob.processSync(hs.syncFor(BOB, 'BOBDEV'));
  const load = async (events: Json[]) => {
    const started = performance.now();
    const body = JSON.parse(await bob.processHistory(ROOM, JSON.stringify({ chunk: events })));
    return { events: body.chunk as Json[], ms: performance.now() - started };
  };
  return { store, cache, chunk, load };
}

describe('Decrypted-event cache', () => {
  it('history loaded a second time comes from the cache, with the same plaintext', async () => {
    const { cache, chunk, load } = await givenHistory(200);
    const first = await load(chunk);
    await cache.flush();
    const second = await load(chunk);

    assert.deepEqual(
      second.events.map((e) => e.content.body),
      chunk.map((_, i) => `Secret number ${i}`),
    );
    assert.ok(first.events.every((e) => e.unsigned[ENCRYPTION_INFO_KEY].cached === undefined));
    assert.ok(second.events.every((e) => e.unsigned[ENCRYPTION_INFO_KEY].cached === true));
    assert.deepEqual(
      second.events.map((e) => e.event_id),
      chunk.map((e) => e.event_id),
    );
    console.log(`  200 events: decrypted in ${first.ms.toFixed(0)} ms, from the cache in ${second.ms.toFixed(0)} ms`);
  });

  it('entries are sealed at rest: no plaintext in the store', async () => {
    const { store, cache, chunk, load } = await givenHistory(3);
    await load(chunk);
    await cache.flush();
    assert.equal(store.entries.size, 3);
    for (const entry of store.entries.values()) {
      assert.ok(!Buffer.from(entry.data).toString('latin1').includes('Secret number'));
      assert.ok(!entry.id.includes('Secret'));
    }
  });

  it(
    "an envelope that is not the one decrypted (another event's " +
      'ciphertext under this id) is not served from the cache',
    async () => {
      const { cache, chunk, load } = await givenHistory(2);
      await load(chunk);
      await cache.flush();
      const forged = { ...chunk[0], content: { ...chunk[0]!.content, ciphertext: chunk[1]!.content.ciphertext } };
      const [event] = (await load([forged])).events;
      assert.notEqual(event!.unsigned[ENCRYPTION_INFO_KEY].cached, true);
      assert.notEqual(event!.content.body, 'Secret number 0');
    },
  );

  it('writes wait until the account has answered: the store is written after the body went back', async () => {
    const store = new MemorySealedStore();
    const cache = await DecryptedEventCache.create('a passphrase', store);
    let release!: () => void;
    const quiet = new Promise<void>((resolve) => (release = resolve));
    cache.writeWhenQuiet(() => quiet);
    const entry = (i: number) => ({
      type: 'm.room.message',
      content: { body: `Secret ${i}` },
      info: { decrypted: true },
    });
    const id = (i: number) => `${ROOM}|$e${i}|${ALICE}|100|${'x'.repeat(86)}`;
    for (let i = 0; i < 3; i++) cache.put(id(i), entry(i));
    await new Promise((resolve) => setTimeout(resolve, 120));
    assert.equal(store.entries.size, 0, 'written while the account was answering');
    assert.deepEqual((await cache.get(id(1)))?.content, { body: 'Secret 1' }, 'not readable meanwhile');

    release();
    await until(() => store.entries.size === 3, 'the three entries written once the account is quiet');
  });

  it('a long answer (an initial sync) does not hold every decryption in memory: past 2,000 it writes', async () => {
    const store = new MemorySealedStore();
    const cache = await DecryptedEventCache.create('a passphrase', store);
    cache.writeWhenQuiet(() => new Promise(() => {}));
    for (let i = 0; i < 2_000; i++) {
      cache.put(`${ROOM}|$e${i}|${ALICE}|100|${'x'.repeat(86)}`, { type: 'm.room.message', content: {}, info: {} });
    }
    await until(() => store.entries.size === 2_000, 'the 2,000 entries written while the answer goes on');
  });

  it('knowing which ids its store holds, a miss reads nothing; entries stored before and after are found', async () => {
    const store = new MemorySealedStore();
    const before = await DecryptedEventCache.create('a passphrase', store);
    const id = (i: number) => `${ROOM}|$e${i}|${ALICE}|100|${'x'.repeat(86)}`;
    const value = (i: number) => ({ type: 'm.room.message', content: { body: `Secret ${i}` }, info: {} });
    before.put(id(1), value(1));
    await before.flush();

    const reads: number[] = [];
    const getMany = store.getMany.bind(store);
    store.getMany = (ids: string[]) => (reads.push(ids.length), getMany(ids));
    const cache = await DecryptedEventCache.create('a passphrase', store);
    await cache.learnStoredIds(0);
    assert.equal(await cache.get(id(2)), undefined);
    assert.deepEqual(reads, [], 'a miss read the store');
    assert.deepEqual((await cache.get(id(1)))?.content, { body: 'Secret 1' });
    assert.deepEqual(reads, [1]);

    cache.put(id(3), value(3));
    await cache.flush();
    const fresh = await DecryptedEventCache.create('a passphrase', store);
    await fresh.learnStoredIds(0);
    assert.deepEqual((await fresh.get(id(3)))?.content, { body: 'Secret 3' });
  });

  it('closed (the account logged out) while writes wait for quiet, it writes and reads nothing more', async () => {
    const store = new MemorySealedStore();
    const cache = await DecryptedEventCache.create('a passphrase', store);
    let quiet!: () => void;
    cache.writeWhenQuiet(() => new Promise<void>((resolve) => (quiet = resolve)));
    const id = `${ROOM}|$e1|${ALICE}|100|${'x'.repeat(86)}`;
    cache.put(id, { type: 'm.room.message', content: { body: 'Secret' }, info: {} });
    await new Promise((resolve) => setTimeout(resolve, 80));
    cache.close();
    quiet();
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(store.entries.size, 0, 'a closed cache wrote: it would recreate a deleted database');
    assert.equal(await cache.get(id), undefined);
  });

  it("the account's idle() settles only after the body it was decrypting went back", async () => {
    const { chunk } = await givenHistory(20);
    const order: string[] = [];
    const account = await openAccount(new FakeHomeserver(), BOB, 'BOBDEV2');
    await account.idle();
    const answered = account.processHistory(ROOM, JSON.stringify({ chunk })).then(() => order.push('answered'));
    const idle = account.idle().then(() => order.push('idle'));
    await Promise.all([answered, idle]);
    assert.deepEqual(order, ['answered', 'idle']);
  });

  it('is bounded: the oldest entries go', async () => {
    const { store, cache, chunk, load } = await givenHistory(25, 10);
    for (const event of chunk) {
      await load([event]);
      await cache.flush();
    }
    assert.ok(store.entries.size <= 10, `${store.entries.size} entries kept`);
    const kept = [...store.entries.keys()].map((id) => id.split('|')[1]);
    assert.ok(kept.includes(chunk.at(-1)!.event_id), 'the newest entry was dropped');
  });
});
