/**
 * `npm run soak`: a long afternoon of a user's browser in about ten minutes. Three Element-like
 * peers and two tabs of the plain client (one account, through Kirjava) write in three encrypted
 * rooms while the extension's worker is stopped at random, the browser is restarted and the
 * fault proxy in front of Synapse fails Kirjava's requests now and then. At the end: every
 * message that its sender was told went out has reached every other member exactly once,
 * decrypted; the server holds no plaintext; and the worker's heap and storage are reported.
 * Prints the figures and exits non-zero when anything was lost, duplicated or in clear.
 * SOAK_MESSAGES (default 2,100) and SOAK_MINUTES (default 8, the sending phase) tune it.
 */
import { randomInt } from 'node:crypto';
import { startFaultProxy, type Fault, type FaultProxy } from '../fixtures/fault-proxy.ts';
import type { Peer } from '../fixtures/peer.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import { MEGOLM, StoryBed } from '../fixtures/stories.ts';
import type { RegisteredUser } from '../fixtures/synapse.ts';

type Json = Record<string, any>;

const TARGET = Number(process.env.SOAK_MESSAGES ?? 2_100);
const SENDING_MS = Number(process.env.SOAK_MINUTES ?? 8) * 60_000;
const WORKER_STOPS = 20;
const RESTARTS = 2;

/** One message a sender was told went out (or was refused). */
interface Sent {
  roomId: string;
  body: string;
  sender: string;
  /** The event id the sender got back; undefined: the send was refused with an error. */
  eventId?: string;
}

const bed = new StoryBed();
let proxy: FaultProxy;
const log = (line: string) => console.log(`[soak ${new Date().toISOString().slice(11, 19)}] ${line}`);
const pause = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const faultMenu: Array<{ path: string; fault: Fault }> = [
  { path: '/keys/query', fault: { kind: 'server-error', status: 503 } },
  { path: '/keys/claim', fault: { kind: 'rate-limit', retryAfterMs: 1_500, via: 'body' } },
  { path: '/sendToDevice/', fault: { kind: 'server-error', status: 502 } },
  { path: '/sendToDevice/', fault: { kind: 'cut' } },
  { path: '/sync', fault: { kind: 'server-error', status: 503 } },
  { path: '/send/m.room.encrypted/', fault: { kind: 'cut' } },
  { path: '/send/m.room.encrypted/', fault: { kind: 'rate-limit', retryAfterMs: 1_000, via: 'header' } },
  { path: '/keys/upload', fault: { kind: 'reset' } },
];

/** The extension worker's JS heap (after a GC) and its origin's storage, through a page's CDP session. */
async function workerFigures(): Promise<{ heapUsed: number; storage: number; indexedDb: number }> {
  const context = bed.browser.context;
  const page = context.pages()[0] ?? (await context.newPage());
  const cdp = await context.newCDPSession(page);
  try {
    const { targetInfos } = (await cdp.send('Target.getTargets')) as { targetInfos: Json[] };
    const worker = targetInfos.find(
      (target) =>
        target.type === 'service_worker' && target.url.startsWith(`chrome-extension://${bed.browser.extensionId}/`),
    );
    if (!worker) throw new Error('the extension worker is not running');
    const { sessionId } = (await cdp.send('Target.attachToTarget', { targetId: worker.targetId, flatten: false })) as {
      sessionId: string;
    };
    const answers = new Map<number, (result: Json) => void>();
    cdp.on('Target.receivedMessageFromTarget', (event: Json) => {
      const message = JSON.parse(event.message) as Json;
      if (event.sessionId === sessionId && answers.has(message.id)) answers.get(message.id)!(message.result ?? {});
    });
    let next = 0;
    const call = (method: string, params: Json = {}) =>
      new Promise<Json>((done) => {
        const id = ++next;
        answers.set(id, done);
        void cdp.send('Target.sendMessageToTarget', { sessionId, message: JSON.stringify({ id, method, params }) });
      });
    await call('HeapProfiler.collectGarbage');
    const heap = await call('Runtime.getHeapUsage');
    const estimate = await call('Runtime.evaluate', {
      expression: 'navigator.storage.estimate().then((e) => JSON.stringify(e))',
      awaitPromise: true,
      returnByValue: true,
    });
    const storage = JSON.parse(estimate.result.value) as { usage: number; usageDetails?: { indexedDB?: number } };
    await cdp.send('Target.detachFromTarget', { sessionId });
    return { heapUsed: heap.usedSize, storage: storage.usage, indexedDb: storage.usageDetails?.indexedDB ?? NaN };
  } finally {
    await cdp.detach().catch(() => {});
  }
}

/** Every event of the room as Synapse stores it, oldest first, read with `peer`'s token. */
async function storedEvents(peer: Peer, roomId: string): Promise<Json[]> {
  const events: Json[] = [];
  let from: string | undefined;
  for (;;) {
    const url =
      `${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=f&limit=1000` +
      (from ? `&from=${encodeURIComponent(from)}` : '');
    const response = await fetch(url, { headers: { Authorization: `Bearer ${peer.accessToken}` } });
    const page = (await response.json()) as { chunk: Json[]; end?: string };
    events.push(...page.chunk);
    if (!page.end || page.chunk.length === 0) return events;
    from = page.end;
  }
}

async function main(): Promise<void> {
  const started = Date.now();
  await bed.start({ homeserver: async (synapse) => (proxy = await startFaultProxy(synapse.baseUrl)) });
  const alice: RegisteredUser = await bed.newUser('alice');
  const peers = [await bed.givenPeer(), await bed.givenPeer(), await bed.givenPeer()];
  let tabs: PlainClient[] = [];
  const openTabs = async () => {
    tabs = [await bed.givenClientTab(), await bed.givenClientTab()];
    for (const tab of tabs)
      await tab.startWithToken(bed.homeserverUrl, alice.userId, alice.accessToken, alice.deviceId);
  };
  await openTabs();
  await peers[0]!.waitForDeviceKeys(alice.userId, alice.deviceId, 30_000);
  const rooms: string[] = [];
  for (const [i, owner] of peers.entries()) {
    const others = peers.filter((peer) => peer !== owner).map((peer) => peer.userId);
    const roomId = await owner.createEncryptedRoom([alice.userId, ...others]);
    for (const peer of peers) if (peer !== owner) await peer.joinRoom(roomId, 30_000);
    await tabs[0]!.joinRoom(roomId);
    for (const peer of peers) await peer.waitForMembership(roomId, alice.userId, 'join', 30_000);
    rooms.push(roomId);
    log(`room ${i + 1}: ${roomId}`);
  }

  // What each peer read: room → body → event ids, and whether each was decrypted.
  const read = peers.map(() => new Map<string, Map<string, Set<string>>>());
  const inClear: string[] = [];
  for (const [i, peer] of peers.entries()) {
    for (const roomId of rooms) {
      read[i]!.set(roomId, new Map());
      peer.onText(roomId, (text) => {
        if (!text.body.startsWith('soak ')) return;
        if (!text.decrypted) inClear.push(`${peer.userId} got "${text.body}" undecrypted`);
        const ids = read[i]!.get(roomId)!;
        if (!ids.has(text.body)) ids.set(text.body, new Set());
        ids.get(text.body)!.add(text.eventId);
      });
    }
  }

  const sent: Sent[] = [];
  const errors: string[] = [];
  let counter = 0;
  const sendingUntil = Date.now() + SENDING_MS;
  // Paced so that the target takes about the sending phase; never more than a quarter past it.
  const done = () => counter >= TARGET || Date.now() >= sendingUntil + SENDING_MS / 4;
  const gap = () => randomInt(Math.floor((5 * SENDING_MS) / TARGET / 2), Math.floor((15 * SENDING_MS) / TARGET / 2));
  let tabsPaused: Promise<void> | undefined;
  let tabSendsInFlight = 0;
  let tabSendsIdle: (() => void) | undefined;

  const peerLoop = async (peer: Peer, name: string) => {
    while (!done()) {
      const roomId = rooms[randomInt(rooms.length)]!;
      const body = `soak ${++counter} from ${name}`;
      try {
        sent.push({ roomId, body, sender: peer.userId, eventId: await peer.sendText(roomId, body) });
      } catch (error) {
        sent.push({ roomId, body, sender: peer.userId });
        errors.push(`${name}: ${(error as Error).message}`);
      }
      await pause(gap());
    }
  };
  const tabLoop = async (index: number) => {
    while (!done()) {
      if (tabsPaused) await tabsPaused;
      const tab = tabs[index]!;
      const roomId = rooms[randomInt(rooms.length)]!;
      const body = `soak ${++counter} from tab ${index + 1}`;
      tabSendsInFlight += 1;
      try {
        sent.push({ roomId, body, sender: alice.userId, eventId: await tab.sendText(roomId, body) });
      } catch (error) {
        sent.push({ roomId, body, sender: alice.userId });
        errors.push(`tab ${index + 1}: ${(error as Error).message.split('\n')[0]}`);
      } finally {
        tabSendsInFlight -= 1;
        if (tabSendsInFlight === 0) tabSendsIdle?.();
      }
      await pause(gap());
    }
  };

  let workerStops = 0;
  let restarts = 0;
  let faultsArmed = 0;
  const chaos = async () => {
    const restartAt = [SENDING_MS / 3, (2 * SENDING_MS) / 3].map((offset) => sendingUntil - SENDING_MS + offset);
    const stopEvery = SENDING_MS / (WORKER_STOPS + 6);
    while (!done() || workerStops < WORKER_STOPS || restarts < RESTARTS) {
      await pause(randomInt(Math.floor(stopEvery / 2), Math.floor(stopEvery * 1.5)));
      if (restarts < RESTARTS && Date.now() >= restartAt[restarts]!) {
        let resume!: () => void;
        tabsPaused = new Promise((resolve) => (resume = resolve));
        if (tabSendsInFlight > 0) await new Promise<void>((resolve) => (tabSendsIdle = resolve));
        tabSendsIdle = undefined;
        await Promise.allSettled(tabs.map((tab) => tab.close()));
        await bed.browser.restart();
        await openTabs();
        restarts += 1;
        log(`browser restarted (${restarts}); ${counter} messages so far`);
        tabsPaused = undefined;
        resume();
        continue;
      }
      await bed.browser.stopWorker();
      workerStops += 1;
      const { path, fault } = faultMenu[randomInt(faultMenu.length)]!;
      proxy.fail({ path, fault, times: randomInt(1, 3) });
      faultsArmed += 1;
      if (workerStops % 5 === 0) log(`worker stopped ${workerStops} times; ${counter} messages so far`);
    }
  };

  log(`sending: ${TARGET} messages, paced over about ${SENDING_MS / 60_000} minutes`);
  await Promise.all([...peers.map((peer, i) => peerLoop(peer, `peer ${i + 1}`)), tabLoop(0), tabLoop(1), chaos()]);
  proxy.clear();
  log(`sending done: ${sent.length} messages, ${workerStops} worker stops, ${restarts} restarts`);

  // Every delivered message reaches every peer but its sender; give the last ones time to arrive.
  const delivered = sent.filter((message) => message.eventId);
  const missingAt = () =>
    delivered.flatMap((message) =>
      peers
        .map((peer, i) => ({ peer, i }))
        .filter(({ peer }) => peer.userId !== message.sender)
        .filter(({ i }) => !read[i]!.get(message.roomId)!.has(message.body))
        .map(({ peer }) => `${peer.userId} never got "${message.body}"`),
    );
  for (let waited = 0; missingAt().length > 0 && waited < 120_000; waited += 2_000) await pause(2_000);
  const lostAtPeers = missingAt();
  const duplicatedAtPeers = read.flatMap((rooms) =>
    [...rooms.values()].flatMap((bodies) =>
      [...bodies].filter(([, ids]) => ids.size > 1).map(([body, ids]) => `"${body}" read ${ids.size} times`),
    ),
  );

  // The server: only ciphertext, and each message once (same event id the sender got).
  const plaintextOnServer: string[] = [];
  let storedMessages = 0;
  const storedIds = new Set<string>();
  for (const roomId of rooms) {
    for (const event of await storedEvents(peers[0]!, roomId)) {
      if (event.state_key !== undefined) continue;
      if (event.type === 'm.room.encrypted' && event.content?.algorithm === MEGOLM) {
        storedMessages += 1;
        storedIds.add(event.event_id);
      } else if (event.type !== 'm.room.encrypted' && event.content?.body !== undefined) {
        plaintextOnServer.push(`${event.type} from ${event.sender}: ${JSON.stringify(event.content).slice(0, 80)}`);
      }
      if (/soak \d+ from/.test(JSON.stringify(event.content ?? {}))) plaintextOnServer.push(event.event_id);
    }
  }

  // Kirjava's reading: a fresh tab scrolls each room back and must read every message, once.
  const reader = await bed.givenClientTab();
  await reader.startWithToken(bed.homeserverUrl, alice.userId, alice.accessToken, alice.deviceId, {
    initialSyncLimit: 1,
  });
  const unreadable: string[] = [];
  const lostAtKirjava: string[] = [];
  const duplicatedAtKirjava: string[] = [];
  for (const roomId of rooms) {
    const expected = delivered.filter((message) => message.roomId === roomId);
    let timeline = await reader.scrollback(roomId, 1_000);
    for (let more = 0, before = 0; more < 20 && timeline.length > before; more++) {
      before = timeline.length;
      timeline = await reader.scrollback(roomId, 1_000);
    }
    const bodies = new Map<string, number>();
    for (const entry of timeline) {
      if (entry.type === 'm.room.encrypted') unreadable.push(`${roomId} ${entry.eventId}`);
      if (entry.body?.startsWith('soak ')) bodies.set(entry.body, (bodies.get(entry.body) ?? 0) + 1);
    }
    for (const message of expected) {
      const seen = bodies.get(message.body) ?? 0;
      if (seen === 0) lostAtKirjava.push(`"${message.body}"`);
      if (seen > 1) duplicatedAtKirjava.push(`"${message.body}" ${seen} times`);
    }
  }
  const figures = await workerFigures().catch((error: Error) => {
    log(`worker figures unavailable: ${error.message}`);
    return { heapUsed: NaN, storage: NaN, indexedDb: NaN };
  });

  const byTabs = delivered.filter((message) => message.sender === alice.userId).length;
  const report = {
    minutes: ((Date.now() - started) / 60_000).toFixed(1),
    messages: sent.length,
    delivered: delivered.length,
    fromTabs: byTabs,
    fromPeers: delivered.length - byTabs,
    refusedWithError: sent.length - delivered.length,
    refusedButArrived: sent.filter(
      (message) => !message.eventId && read.some((rooms) => rooms.get(message.roomId)!.has(message.body)),
    ).length,
    onServer: storedMessages,
    workerStops,
    restarts,
    faultsArmed,
    lost: lostAtPeers.length + lostAtKirjava.length,
    duplicated: duplicatedAtPeers.length + duplicatedAtKirjava.length,
    plaintextOnServer: plaintextOnServer.length + inClear.length,
    undecryptableAtKirjava: unreadable.length,
    workerHeapMB: (figures.heapUsed / 1e6).toFixed(1),
    storageMB: (figures.storage / 1e6).toFixed(1),
    indexedDbMB: (figures.indexedDb / 1e6).toFixed(1),
  };
  console.log(JSON.stringify(report, null, 2));
  for (const line of [
    ...lostAtPeers,
    ...lostAtKirjava.map((m) => `Kirjava never read ${m}`),
    ...duplicatedAtPeers,
    ...duplicatedAtKirjava,
    ...plaintextOnServer,
    ...inClear,
    ...unreadable.map((m) => `undecryptable at Kirjava: ${m}`),
    ...errors.map((m) => `refused: ${m}`),
  ].slice(0, 60)) {
    log(line);
  }
  await bed.cleanUp();
  await bed.stop();
  const failed =
    report.lost + report.duplicated + report.plaintextOnServer + report.undecryptableAtKirjava > 0 ||
    delivered.length < 2_000 ||
    workerStops < WORKER_STOPS ||
    restarts < RESTARTS;
  process.exit(failed ? 1 : 0);
}

await main();
