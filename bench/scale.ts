/**
 * Item 8, the scale benchmark, opt-in (`BENCH_ONLY=8` or `BENCH_SCALE=1`): an account with
 * 200 encrypted rooms. First an initial sync of 200 rooms × 100 events (20,000 events,
 * each room's timeline `limited` with a `prev_batch` and its state, as Synapse sends an
 * initial sync): the time until the page has it decrypted. Then incremental syncs of
 * 5,000 new events each (their new room keys in the same sync's to-device events, as live
 * traffic brings them) until 100,000 events were decrypted: the worker's JS heap, the
 * extension's storage and the record counts of Kirjava's IndexedDB databases at 20,000,
 * 50,000 and 100,000, against the bounds (decrypted-event cache 20,000 entries, search
 * index 50,000 events per account, each checked every tenth of its bound: at most 1.1 ×; see
 * docs/architecture.md, "Where state lives").
 */
import { performance } from 'node:perf_hooks';
import type { CryptoAccount } from '../src/crypto/account.ts';
import type { FakeHomeserver } from '../tests/fixtures/fake-homeserver.ts';
import { type BenchBrowsers, profiled, timedFetch, workerCdp, workerMemory } from './browser.ts';
import { ME, openSenders, plaintexts } from './corpus.ts';
import { bareLoop, receiveKeys } from './node-decrypt.ts';
import type { BenchServer } from './server.ts';
import { fmt } from './stats.ts';

type Json = Record<string, any>;

const ROOMS = 200;
const INITIAL_PER_ROOM = 100;
const BATCH_PER_ROOM = 25;
const TOTAL = Number(process.env.BENCH_SCALE_TOTAL ?? 100_000);
const CHECKPOINTS = [...new Set([20_000, 50_000, 100_000, TOTAL])].filter((n) => n <= TOTAL);
/** The bounds as src/ states them (decrypted-cache.ts, search-index.ts), and what a store may reach (1.1 ×). */
const CACHE_BOUND = 20_000;
const INDEX_BOUND = 50_000;
const SENDERS = ['@sc0:example.test', '@sc1:example.test', '@sc2:example.test', '@sc3:example.test'];

interface Row {
  item: string;
  measure: string;
  baseline: string;
  result: string;
  target: string;
  met?: boolean;
}

interface Checkpoint {
  events: number;
  /** The heap right after the sync was answered, while the worker still writes its cache and index. */
  busyHeap: number;
  /** Seconds until those writes settled (record counts unchanged for two seconds). */
  settleSeconds: number;
  heapUsed: number;
  storageUsage: number;
  idbUsage: number;
  /** `database/object store` → its records */
  records: Record<string, number>;
}

const mib = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`;

/** Record counts of every object store (`database/store`) of the extension's IndexedDB (in the worker, read-only). */
async function databaseRecords(debugPort: number): Promise<Record<string, number>> {
  const [result] = await workerCdp(debugPort, [
    {
      method: 'Runtime.evaluate',
      params: {
        expression: `(async () => {
          const out = {};
          for (const { name } of await indexedDB.databases()) {
            const db = await new Promise((resolve, reject) => {
              const open = indexedDB.open(name);
              open.onsuccess = () => resolve(open.result);
              open.onerror = () => reject(open.error);
            });
            const stores = [...db.objectStoreNames];
            if (stores.length) {
              const tx = db.transaction(stores, 'readonly');
              for (const store of stores) {
                out[name + '/' + store] = await new Promise((resolve, reject) => {
                  const count = tx.objectStore(store).count();
                  count.onsuccess = () => resolve(count.result);
                  count.onerror = () => reject(count.error);
                });
              }
            }
            db.close();
          }
          return JSON.stringify(out);
        })()`,
        awaitPromise: true,
        returnByValue: true,
      },
    },
  ]);
  if (result.exceptionDetails) throw new Error(`bench: counting records: ${JSON.stringify(result.exceptionDetails)}`);
  return JSON.parse(result.result.value);
}

const find = (records: Record<string, number>, test: (name: string) => boolean) =>
  Object.entries(records)
    .filter(([name]) => test(name))
    .reduce((n, [, count]) => n + count, 0);
const cacheRecords = (c: Checkpoint) => find(c.records, (name) => /-decrypted-events\//.test(name));
const indexRecords = (c: Checkpoint) => find(c.records, (name) => /^kirjava-search-[^/]+\/events$/.test(name));
const count = (n: number) => n.toLocaleString('en');
/** A search index's database name and a crypto store's prefix, shortened in the table. */
const SEARCH_DATABASE = /^kirjava-search-[0-9a-f]+/;
const CRYPTO_STORE = /^kirjava-[0-9a-f]{16}/;

/** How long a checkpoint waits at most for the worker's writes to settle. */
const SETTLE_MAX_MS = 400_000;

/**
 * The heap right after a sync, then, once the worker's writes after it (decrypted cache,
 * search index: one IndexedDB write per event, queued in memory) have settled (the record
 * counts unchanged over two seconds), the heap and storage again.
 */
async function checkpoint(debugPort: number, events: number): Promise<Checkpoint> {
  const busyHeap = (await workerMemory(debugPort)).heapUsed;
  const start = performance.now();
  let last = '';
  let same = 0;
  while (performance.now() - start < SETTLE_MAX_MS) {
    const now = JSON.stringify(await databaseRecords(debugPort));
    same = now === last ? same + 1 : 0;
    if (same >= 2) break;
    last = now;
    await new Promise((r) => setTimeout(r, 1000));
  }
  const settleSeconds = (performance.now() - start) / 1000;
  const memory = await workerMemory(debugPort);
  return { events, busyHeap, settleSeconds, ...memory, records: await databaseRecords(debugPort) };
}

export async function benchScale(options: {
  server: BenchServer;
  hs: FakeHomeserver;
  browsers: BenchBrowsers;
  receiver: CryptoAccount;
  token: string;
  log: (...args: unknown[]) => void;
}): Promise<Row[]> {
  const { server, hs, browsers, receiver, token, log } = options;
  const page = browsers.kirjavaPage;
  const rooms = Array.from({ length: ROOMS }, (_, i) => `!scale${i}:example.test`);
  const senders = await openSenders(hs, SENDERS);
  const members = [ME, ...SENDERS];
  for (const room of rooms) {
    hs.setEncrypted(room);
    for (const user of members) hs.setMembership(room, user, 'join');
  }
  let seed = 1000;
  let sent = 0;
  /** `perRoom` new events in every room, from the four senders in turn (the keys rotate every 100 messages). */
  const encryptBatch = async (perRoom: number) => {
    const timeline: Record<string, Json[]> = {};
    for (const [r, room] of rooms.entries()) {
      const events: Json[] = [];
      for (const [i, message] of plaintexts(perRoom, seed++).entries()) {
        const s = (r + i + sent) % senders.length;
        const decision = await senders[s]!.prepareSend(room, message.type, JSON.stringify(message.content));
        if (decision === 'passthrough') throw new Error(`bench scale: ${room} is not encrypted`);
        events.push(
          hs.event(room, SENDERS[s]!, 'm.room.encrypted', JSON.parse(decision.body), { unsigned: { age: 500 } }),
        );
      }
      timeline[room] = events;
    }
    sent += perRoom;
    return timeline;
  };
  const roomState = (room: string) => [
    hs.event(room, SENDERS[0]!, 'm.room.create', { room_version: '10', creator: SENDERS[0] }, { state_key: '' }),
    hs.event(room, SENDERS[0]!, 'm.room.encryption', { algorithm: 'm.megolm.v1.aes-sha2' }, { state_key: '' }),
    hs.event(room, SENDERS[0]!, 'm.room.history_visibility', { history_visibility: 'shared' }, { state_key: '' }),
    ...members.map((user) => hs.event(room, user, 'm.room.member', { membership: 'join' }, { state_key: user })),
  ];
  const syncOf = (timeline: Record<string, Json[]>, batch: string, initial: boolean, toDevice: Json[] = []) => {
    const join: Json = {};
    for (const [room, events] of Object.entries(timeline)) {
      join[room] = {
        state: { events: initial ? roomState(room) : [] },
        // An initial sync's timelines are the last N events of each room: limited, with a gap before them.
        timeline: { events, limited: initial, prev_batch: `p_${batch}_${room}` },
        ephemeral: { events: [] },
        account_data: { events: [] },
        unread_notifications: { notification_count: events.length, highlight_count: 0 },
        summary: initial ? { 'm.joined_member_count': members.length, 'm.invited_member_count': 0 } : {},
      };
    }
    return JSON.stringify({
      next_batch: batch,
      to_device: { events: toDevice },
      device_lists: { changed: [], left: [] },
      device_one_time_keys_count: { signed_curve25519: 50 },
      device_unused_fallback_key_types: ['signed_curve25519'],
      account_data: { events: [] },
      presence: { events: [] },
      rooms: { join },
    });
  };
  const syncUrl = (name: string) => `${server.baseUrl}/_matrix/client/v3/sync?bench=${name}`;
  const serve = (name: string, body: string) => server.syncs.set(name, () => body);
  const rows: Row[] = [];

  log(`8. scale: encrypting ${ROOMS} rooms × ${INITIAL_PER_ROOM} events`);
  let t = performance.now();
  const initialTimeline = await encryptBatch(INITIAL_PER_ROOM);
  log(`   encrypted in ${fmt((performance.now() - t) / 1000, 1)} s`);
  // The room keys reach the browser's device (and the Node receiver) before the client's
  // initial sync: the device was logged in when they were sent; the client starts afresh
  // (a reload without a cache, a new tab): the initial sync brings the rooms' last 100 events.
  serve('scale-keys', hs.syncFor(ME, 'BROWSERDEV'));
  const keys = await timedFetch(page, syncUrl('scale-keys'), token);
  if (keys.status !== 200) throw new Error(`bench scale: the keys sync answered ${keys.status}`);
  await receiveKeys(hs, receiver);
  await new Promise((r) => setTimeout(r, 3000)); // outgoing requests, and the fast path's copy of the keys
  const before = await checkpoint(browsers.debugPort, 0);

  const initialBody = syncOf(initialTimeline, 'scale0', true);
  serve('scale-initial', initialBody);
  const initialEvents = ROOMS * INITIAL_PER_ROOM;
  log(`8. initial sync (${fmt(initialBody.length / 1e6, 1)} MB): bare browser, Node bare loop, then Kirjava`);
  const plain = await timedFetch(browsers.plainPage, syncUrl('scale-initial'), token);
  const bare = await bareLoop(receiver, initialTimeline)();
  // BENCH_PROFILE=1: the worker's CPU profile of the initial sync, where its time goes.
  const fetchInitial = () => timedFetch(page, syncUrl('scale-initial'), token);
  const initial = process.env.BENCH_PROFILE
    ? await profiled(browsers.debugPort, fetchInitial, log, 'the initial sync')
    : await fetchInitial();
  if (initial.decrypted !== initialEvents)
    throw new Error(`bench scale: the page got ${initial.decrypted} of ${initialEvents} events decrypted`);
  log(`   Kirjava ${fmt(initial.ms, 0)} ms, bare browser ${fmt(plain.ms, 0)} ms, Node bare loop ${fmt(bare, 0)} ms`);
  rows.push({
    item: '8',
    measure:
      `initial sync of ${ROOMS} encrypted rooms × ${INITIAL_PER_ROOM} events (${initialEvents.toLocaleString('en')} ` +
      `never seen, ${fmt(initialBody.length / 1e6, 1)} MB, timelines limited, room state included; keys already ` +
      'received): page fetch → decrypted body in the page (one sample)',
    baseline:
      `Chromium without the extension, same body ${fmt(plain.ms, 0)} ms; ` +
      `bare decrypt loop (Node) over the same events ${fmt(bare, 0)} ms`,
    result:
      `${fmt(initial.ms, 0)} ms (×${fmt(initial.ms / bare)} of the bare loop; ` +
      `${fmt(initialEvents / (initial.ms / 1000), 0)} events/s)`,
    target: '—',
  });
  const points = [before, await checkpoint(browsers.debugPort, initialEvents)];
  log(`   checkpoint ${initialEvents}: ${JSON.stringify(points.at(-1))}`);

  let decrypted = initialEvents;
  const incremental: number[] = [];
  let encryptMs = 0;
  let n = 0;
  while (decrypted < TOTAL) {
    t = performance.now();
    const timeline = await encryptBatch(BATCH_PER_ROOM);
    encryptMs += performance.now() - t;
    const events = ROOMS * BATCH_PER_ROOM;
    const name = `scale-inc${n++}`;
    // New room keys (rotations) come in the same sync as the events they open, as live.
    serve(name, syncOf(timeline, name, false, JSON.parse(hs.syncFor(ME, 'BROWSERDEV')).to_device.events));
    const timed = await timedFetch(page, syncUrl(name), token);
    server.syncs.delete(name);
    if (timed.decrypted !== events)
      throw new Error(`bench scale: sync ${name}: ${timed.decrypted} of ${events} events decrypted`);
    incremental.push(timed.ms);
    decrypted += events;
    if (CHECKPOINTS.includes(decrypted)) {
      points.push(await checkpoint(browsers.debugPort, decrypted));
      log(`   checkpoint ${decrypted}: ${JSON.stringify(points.at(-1))}`);
    } else if (n % 4 === 0) log(`   ${decrypted.toLocaleString('en')} events decrypted`);
  }
  server.syncs.delete('scale-initial');
  senders.forEach((s) => s.close());
  // Chromium's IndexedDB (LevelDB) keeps deleted records on disk until it compacts, which it
  // does when a database's last connection closes: stop the worker, give it time, wake it.
  await browsers.kirjava.stopWorker();
  await new Promise((r) => setTimeout(r, 10_000));
  const woken = await timedFetch(page, syncUrl('empty'), token);
  if (woken.status !== 200) throw new Error(`bench scale: the wake-up sync answered ${woken.status}`);
  await new Promise((r) => setTimeout(r, 2000));
  const reopened = await workerMemory(browsers.debugPort);
  log(`   after a worker restart: ${JSON.stringify(reopened)}`);
  const sorted = [...incremental].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1]!;
  const batchEvents = ROOMS * BATCH_PER_ROOM;
  rows.push({
    item: '8',
    measure:
      `then ${incremental.length} incremental syncs of ${batchEvents.toLocaleString('en')} new events ` +
      `(${BATCH_PER_ROOM} in each of the ${ROOMS} rooms, new room keys in the same sync), to ` +
      `${decrypted.toLocaleString('en')} decrypted in total`,
    baseline: `(Node encrypted them in ${fmt(encryptMs / 1000, 1)} s)`,
    result:
      `${fmt(median, 0)} ms per sync (${fmt(sorted[0]!, 0)}–${fmt(sorted.at(-1)!, 0)}), ` +
      `${fmt(batchEvents / (median / 1000), 0)} events/s`,
    target: '—',
  });
  const at = (c: Checkpoint) => (c.events ? c.events.toLocaleString('en') : 'keys only');
  rows.push({
    item: '8',
    measure:
      `worker JS heap (after a GC) at ${CHECKPOINTS.map(count).join(' / ')} decrypted events: right after ` +
      'the last sync → once the cache and index writes it queued have settled (how long that took)',
    baseline: `before the initial sync ${mib(before.heapUsed)}`,
    result: points
      .slice(1)
      .map((c) => `${at(c)}: ${mib(c.busyHeap)} → ${mib(c.heapUsed)} (${fmt(c.settleSeconds, 0)} s)`)
      .join('; '),
    target: 'flat from 50,000 on',
    met: points.at(-1)!.heapUsed <= points.at(-2)!.heapUsed * 1.25,
  });
  rows.push({
    item: '8',
    measure: 'extension storage (navigator.storage.estimate; IndexedDB part) at the same points',
    baseline: `before the initial sync ${mib(before.storageUsage)} (IDB ${mib(before.idbUsage)})`,
    result: points
      .slice(1)
      .map((c) => `${at(c)}: ${mib(c.storageUsage)} (IDB ${mib(c.idbUsage)})`)
      .concat(
        `after a worker restart (databases closed: LevelDB compacts): ` +
          `${mib(reopened.storageUsage)} (IDB ${mib(reopened.idbUsage)})`,
      )
      .join('; '),
    target: '—',
  });
  const last = points.at(-1)!;
  rows.push({
    item: '8',
    measure:
      `records in the decrypted-event cache / search index databases (bounds ${CACHE_BOUND.toLocaleString('en')} / ` +
      `${INDEX_BOUND.toLocaleString('en')} per account, at most 1.1 × between checks)`,
    baseline: `before the initial sync ${count(cacheRecords(before))} / ${count(indexRecords(before))}`,
    result: points
      .slice(1)
      .map((c) => `${at(c)}: ${count(cacheRecords(c))} / ${count(indexRecords(c))}`)
      .join('; '),
    target: `≤ ${count(CACHE_BOUND * 1.1)} / ≤ ${count(INDEX_BOUND * 1.1)}`,
    met: points.every((c) => cacheRecords(c) <= CACHE_BOUND * 1.1 && indexRecords(c) <= INDEX_BOUND * 1.1),
  });
  rows.push({
    item: '8',
    measure: 'records of every non-empty object store of the extension at the end (`<store>`: the account)',
    baseline: '—',
    result: Object.entries(last.records)
      .filter(([, n]) => n > 0)
      .map(([name, n]) => `${name.replace(SEARCH_DATABASE, 'search').replace(CRYPTO_STORE, '<store>')}: ${count(n)}`)
      .join('; '),
    target: '—',
  });
  return rows;
}
