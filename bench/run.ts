/**
 * `npm run bench`: holds Kirjava against the raw crypto library (Node, same WASM build)
 * and the bare browser (the same browser without the extension), every figure a ratio or a
 * difference against a baseline measured in the same run. Items 2, 3 and 4 run in Chromium
 * and in Firefox (BENCH_BROWSERS=chromium,firefox, the default, or one of them), on the same
 * bodies; the others in Chromium only. Prints a table and writes BENCHMARKS.md (or BENCH_OUT).
 * Runs per figure: BENCH_RUNS (default 7); the extensions from dist/chromium/ and dist/firefox/
 * (or BENCH_DIST, BENCH_DIST_FIREFOX).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { CryptoAccount } from '../src/crypto/account.ts';
import {
  type BenchBrowser,
  type BenchBrowsers,
  benchBrowserNames,
  extensionStorage,
  launchBenchBrowser,
  profiled,
  timedFetch,
  startupMarks,
  workerMemory,
} from './browser.ts';
import {
  CROSS_SIGNED_ROOMS,
  CROSS_SIGNED_SENDERS,
  HISTORY_ROOMS,
  ME,
  PLAIN_ROOM,
  SEND_ROOM,
  SYNC_ROOMS,
  type Corpus,
  fillerRoomKeys,
  makeCorpus,
  openSenders,
  plainSyncBody,
  syncBody,
} from './corpus.ts';
import { encryptKeyFile } from '../src/crypto/keys/key-file.ts';
import { UI_CHANNEL } from '../src/shared/ui.ts';
import { benchSynapseSends } from './synapse-send.ts';
import { bareLoop, benchSyncProcessor, openReceiver, receiveKeys } from './node-decrypt.ts';
import { startPantalaimon } from './pantalaimon.ts';
import { benchScale } from './scale.ts';
import { startBenchServer } from './server.ts';
import { differences, fmt, fmtSpread, paired, ratios, spread } from './stats.ts';

const RUNS = Number(process.env.BENCH_RUNS ?? 7);
/** Cheap figures (pass-through, sends) get more runs: the machine is shared and noisy. */
const CHEAP_RUNS = RUNS * 2 + 1;
/**
 * The 10 KB pass-through differs by a millisecond or two from runs that swing by ±5 ms
 * (one fetch takes 3–10 ms): its median needs many more pairs to settle.
 */
const SMALL_BODY_RUNS = RUNS * 8 + 1;
/** Cold starts per run (each a fresh event, paired with a warm sync of another fresh one). */
const COLD_RUNS = Math.max(3, Math.ceil(RUNS / 2) + 1);
/** Room keys of other rooms in the browser's store before item 2 (a long-used account's store). */
const FILLER_KEYS = Number(process.env.BENCH_FILLER_KEYS ?? 3000);
/** How long the bench server holds the long-poll /sync of item 4's second figure. */
const LONG_POLL_MS = 1000;
/**
 * BENCH_ONLY=4,5 runs only those items (while working on one figure); the corpus is
 * always built. The Latest run block is only rewritten by a full run.
 */
const ONLY = process.env.BENCH_ONLY?.split(',')
  .map((item) => item.trim())
  .filter(Boolean);
const want = (item: string) => !ONLY || ONLY.includes(item);
/** Item 8 (scale, 100,000 events: several minutes) runs only when asked for: BENCH_ONLY=8 or BENCH_SCALE=1. */
const wantScale = ONLY?.includes('8') || process.env.BENCH_SCALE === '1';
const repoRoot = resolve(import.meta.dirname, '..');
const started = new Date();
const loadBefore = loadavg();

interface Row {
  item: string;
  measure: string;
  baseline: string;
  result: string;
  target: string;
  met?: boolean;
}
const rows: Row[] = [];
const log = (...args: unknown[]) => console.log(`[bench ${(performance.now() / 1000).toFixed(0)}s]`, ...args);

/** A difference's median (min–max) with its sign. */
function signed(s: { median: number; min: number; max: number }) {
  const f = (v: number) => `${v < 0 ? '−' : '+'}${fmt(Math.abs(v), 1)}`;
  return `${f(s.median)} ms (${f(s.min)}–${f(s.max)})`;
}

function ms(values: number[]) {
  return fmtSpread(spread(values), 1, ' ms');
}

/** One browser of the run, with its own device of ME on the bench server. */
interface Side extends BenchBrowser {
  /** The access token of this browser's device. */
  token: string;
  deviceId: string;
  /** Events this browser's page got decrypted so far. */
  decrypted: number;
}

async function main() {
  const server = await startBenchServer();
  const { hs } = server;
  const receiver = await openReceiver(hs);
  const syncUrl = (name: string) => `${server.baseUrl}/_matrix/client/v3/sync?bench=${name}`;
  server.syncs.set('empty', () => syncBody({}));

  const sides: Side[] = [];
  try {
    for (const name of benchBrowserNames()) {
      log(`launching ${name} (with Kirjava, and plain)`);
      // Each browser is a device of its own: the corpus's room keys reach both.
      const deviceId = name === 'chromium' ? 'BROWSERDEV' : 'FIREFOXDEV';
      const token = hs.login(ME, deviceId);
      server.whoami.set(token, { user_id: ME, device_id: deviceId });
      const browser = await launchBenchBrowser(name, server.baseUrl, server.otherOriginUrl);
      sides.push(Object.assign(browser, { token, deviceId, decrypted: 0 }));
      // First authorized request: whoami, device keys upload.
      const first = await timedFetch(browser.kirjavaPage, syncUrl('empty'), token);
      if (first.status !== 200)
        throw new Error(`bench: first sync through Kirjava in ${name} answered ${first.status}`);
    }
    /** Items 3p and 5–8 measure Chromium only (CDP, pantalaimon, Synapse). */
    const cr = sides.find((side): side is Side & BenchBrowsers => side.name === 'chromium');
    const wantChromium = (item: string) => {
      if (!want(item)) return false;
      if (!cr) log(`${item}: Chromium only, and BENCH_BROWSERS has no chromium: skipped`);
      return cr !== undefined;
    };

    log('encrypting the corpus with real OlmMachines');
    const t0 = performance.now();
    const corpus = await makeCorpus(hs, {
      syncEvents: 1000,
      historyEvents: 500,
      batches: 9,
      // Item 2's bodies, then item 3p's (each decrypted once by pantalaimon and once by the page).
      fresh: (want('2') ? RUNS + 1 : 0) + (want('3p') ? RUNS + 1 : 0),
      singles: 1 + 4 * COLD_RUNS,
    });
    log(`corpus ready in ${fmt((performance.now() - t0) / 1000, 1)} s`);
    for (const [room, events] of corpus.histories) server.histories.set(room, events);
    await receiveKeys(hs, receiver);
    // Each browser's device gets its room keys the same way, in one sync.
    for (const side of sides) {
      server.syncs.set(`keys-${side.name}`, () => hs.syncFor(ME, side.deviceId));
      await timedFetch(side.kirjavaPage, syncUrl(`keys-${side.name}`), side.token);
    }
    await new Promise((r) => setTimeout(r, 500)); // outgoing requests after the keys sync

    const memoryBefore = cr && want('7') ? await workerMemory(cr.debugPort) : undefined;
    const storageBefore = new Map<string, number>();
    if (want('7'))
      for (const side of sides)
        if (side.name !== 'chromium') storageBefore.set(side.name, await extensionStorage(side.kirjava));

    // 1. The sync processor in Node vs a bare decryptRoomEvent loop.
    if (want('1')) {
      log('1. sync processor vs bare decrypt loop (Node)');
      const one = await benchSyncProcessor(receiver, corpus.syncTimeline, RUNS);
      const oneRatio = spread(ratios(one.subject, one.baseline));
      rows.push({
        item: '1',
        measure: `CryptoAccount.processSync, ${one.events} megolm events (${fmt(one.bytes / 1e6)} MB), Node`,
        baseline: `bare decryptRoomEvent loop ${ms(one.baseline)}`,
        result: `×${fmtSpread(oneRatio)} (${ms(one.subject)})`,
        target: '≤ 1.3',
        met: oneRatio.median <= 1.3,
      });
    }

    // 2. A body of the same shape end to end in each browser vs the bare loop. Every run (and
    // its baseline) decrypts events of its own the worker has never seen: with the same
    // events each time, the decrypted-event cache would answer from the second run on.
    // Once with senders who never cross-signed, once with cross-signed ones (as Element
    // users are), both over a store that already holds FILLER_KEYS room keys of other rooms.
    // Firefox decrypts the very bodies Chromium does (each browser's cache is its own).
    if (want('2')) {
      log(`2. ${FILLER_KEYS} room keys of other rooms into every store; cross-signed senders`);
      const filler = fillerRoomKeys(FILLER_KEYS);
      await receiver.machine.importExportedRoomKeys(filler, () => {});
      const file = await encryptKeyFile(filler, 'bench', 1000);
      for (const side of sides) {
        const options = await side.kirjava.openOptions();
        const imported = await options.evaluate(
          async ({ channel, file }) => {
            // No named inner functions: tsx would wrap them in a __name helper the page lacks.
            const { accounts } = await chrome.runtime.sendMessage({ channel, kind: 'accounts' });
            return chrome.runtime.sendMessage({
              channel,
              kind: 'keys-import',
              accountId: accounts[0].id,
              file,
              passphrase: 'bench',
            });
          },
          { channel: UI_CHANNEL, file },
        );
        await options.close();
        log(`   imported into ${side.name}:`, JSON.stringify(imported));
      }
      const crossSigned = await openSenders(hs, CROSS_SIGNED_SENDERS, true);
      for (const room of CROSS_SIGNED_ROOMS) {
        hs.setEncrypted(room);
        for (const user of [ME, ...CROSS_SIGNED_SENDERS]) hs.setMembership(room, user, 'join');
      }
      // Each browser's device learns the senders' identities (keys query) as a client does when it writes there.
      for (const side of sides) {
        const send = await timedFetch(
          side.kirjavaPage,
          `${server.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(CROSS_SIGNED_ROOMS[0]!)}` +
            `/send/m.room.message/x1-${side.name}`,
          side.token,
          { method: 'PUT', body: JSON.stringify({ msgtype: 'm.text', body: 'hello' }) },
        );
        if (send.status !== 200)
          throw new Error(`bench: send to the cross-signed senders from ${side.name} answered ${send.status}`);
      }
      const xCorpus = await makeCorpus(
        hs,
        { syncEvents: 1000, historyEvents: 0, batches: 0, fresh: RUNS + 1, singles: 0 },
        { senders: crossSigned, rooms: CROSS_SIGNED_ROOMS },
      );
      await receiveKeys(hs, receiver);
      for (const side of sides) {
        server.syncs.set(`xkeys-${side.name}`, () => hs.syncFor(ME, side.deviceId));
        await timedFetch(side.kirjavaPage, syncUrl(`xkeys-${side.name}`), side.token);
      }
      await new Promise((r) => setTimeout(r, 1500)); // outgoing requests, and the fast path's feed

      const endToEnd = async (fresh: Corpus['fresh'], name: string, senders: string) => {
        const events = Object.values(fresh[0]!).reduce((n, list) => n + list.length, 0);
        fresh.forEach((timeline, i) => {
          const body = syncBody(timeline, [], `${name}${i}`);
          server.syncs.set(`${name}${i}`, () => body);
        });
        for (const side of sides) {
          log(`2. end to end in ${side.label} vs bare loop, ${senders}`);
          let bareRun = 0;
          let pageRun = 0;
          const two = await paired(
            RUNS,
            () => bareLoop(receiver, fresh[bareRun++]!)(),
            async () => {
              const url = syncUrl(`${name}${pageRun++}`);
              // BENCH_PROFILE=1: the worker's CPU profile of the last run in Chromium (=all: of every run).
              const timed =
                process.env.BENCH_PROFILE &&
                cr &&
                side.name === 'chromium' &&
                (pageRun === RUNS || process.env.BENCH_PROFILE === 'all')
                  ? await profiled(
                      cr.debugPort,
                      () => timedFetch(side.kirjavaPage, url, side.token),
                      log,
                      `item 2's last run`,
                    )
                  : await timedFetch(side.kirjavaPage, url, side.token);
              if (timed.decrypted !== events)
                throw new Error(`bench: the ${side.name} page got ${timed.decrypted} of ${events} events decrypted`);
              side.decrypted += timed.decrypted;
              return timed.ms;
            },
          );
          const twoRatio = spread(ratios(two.subject, two.baseline));
          rows.push({
            item: '2',
            measure:
              `page fetch → decrypted body in the page, ${events} megolm events never seen before ` +
              `(new ones each run), ${senders}, ${FILLER_KEYS.toLocaleString('en')} other room keys ` +
              `in the store, ${side.label}`,
            baseline: `bare loop (Node) over the same events ${ms(two.baseline)}`,
            result: `×${fmtSpread(twoRatio)} (${ms(two.subject)})`,
            target: '≤ 1.3',
            met: twoRatio.median <= 1.3,
          });
        }
      };
      await endToEnd(corpus.fresh.slice(0, RUNS + 1), 'fresh', 'senders not cross-signed');
      await endToEnd(xCorpus.fresh, 'xfresh', 'cross-signed senders');
      xCorpus.close();
    }

    // 3p. pantalaimon side by side: the same never-seen bodies of 1,000 events, the same
    // megolm sessions, decrypted by pantalaimon in-process and by the page, pair by pair.
    if (wantChromium('3p') && cr) {
      const { kirjavaPage: page, token: browserToken } = cr;
      log('3p. pantalaimon side by side (installs it into .venv-pantalaimon the first time)');
      const bodies = corpus.fresh.slice(want('2') ? RUNS + 1 : 0);
      const pan = await startPantalaimon({ receiver, senders: corpus.senders, rooms: [...SYNC_ROOMS] });
      try {
        log(`   ${pan.version}; ${pan.sessions} megolm sessions imported`);
        const events = Object.values(bodies[0]!).reduce((n, list) => n + list.length, 0);
        bodies.forEach((timeline, i) => {
          const body = syncBody(timeline, [], `pan${i}`);
          server.syncs.set(`pan${i}`, () => body);
        });
        let panRun = 0;
        let pageRun = 0;
        const side = await paired(
          RUNS,
          async () => {
            const name = `pan${panRun++}`;
            const answer = await pan.decrypt(server.syncs.get(name)!());
            if (answer.decrypted !== events)
              throw new Error(`bench: pantalaimon decrypted ${answer.decrypted} of ${events} events`);
            return answer.ms;
          },
          async () => {
            const timed = await timedFetch(page, syncUrl(`pan${pageRun++}`), browserToken);
            if (timed.decrypted !== events)
              throw new Error(`bench: the page got ${timed.decrypted} of ${events} events decrypted`);
            cr.decrypted += timed.decrypted;
            return timed.ms;
          },
        );
        // Kirjava's events/s ÷ pantalaimon's = pantalaimon's time ÷ Kirjava's, pair by pair.
        const speedup = spread(ratios(side.baseline, side.subject));
        const perSecond = (values: number[]) => fmt(events / (spread(values).median / 1000), 0);
        rows.push({
          item: '3p',
          measure:
            `the same /sync body of ${events} megolm events never seen before (new ones each run, senders ` +
            'known and not cross-signed): Kirjava, page fetch → decrypted body in Chromium, vs pantalaimon ' +
            `in-process (json.loads + decrypt_sync_body + json.dumps; ${pan.version})`,
          baseline: `pantalaimon ${ms(side.baseline)}, ${perSecond(side.baseline)} events/s`,
          result:
            `${ms(side.subject)}, ${perSecond(side.subject)} events/s: ` +
            `×${fmtSpread(speedup)} pantalaimon's events/s`,
          target: '≥ 3',
          met: speedup.median >= 3,
        });
      } finally {
        pan.close();
      }
    }

    // 3. Pass-through of unencrypted syncs: with Kirjava vs the bare browser, in each browser.
    for (const [label, bytes, target] of want('3')
      ? ([
          ['10 KB', 10_000, 2],
          ['1 MB', 1_000_000, undefined],
          ['5 MB', 5_000_000, 40],
        ] as const)
      : []) {
      const body = plainSyncBody(bytes);
      server.syncs.set(`plain${bytes}`, () => body);
      const url = syncUrl(`plain${bytes}`);
      const pairs = bytes <= 10_000 ? SMALL_BODY_RUNS : CHEAP_RUNS;
      for (const side of sides) {
        log(`3. pass-through ${label}, ${side.label}`);
        const idleUrl = url.replace(server.baseUrl, side.idleBaseUrl);
        const idle = await paired(
          pairs,
          async () => (await timedFetch(side.idlePage, idleUrl, side.token)).ms,
          async () => (await timedFetch(side.kirjavaPage, url, side.token)).ms,
        );
        const bare = await paired(
          pairs,
          async () => (await timedFetch(side.plainPage, url, side.token)).ms,
          async () => (await timedFetch(side.kirjavaPage, url, side.token)).ms,
        );
        const added = spread(differences(idle.subject, idle.baseline));
        const addedBare = spread(differences(bare.subject, bare.baseline));
        rows.push({
          item: '3',
          measure:
            `unencrypted /sync of ${label} (${fmt(body.length / 1e6, 2)} MB), fetch + json() in the page` +
            (side.name === 'chromium' ? '' : `, ${side.label}`),
          baseline:
            `same ${side.label}, site not served ${ms(idle.baseline)}; ` +
            `${side.label} without the extension ${ms(bare.baseline)}`,
          result: `${signed(added)} vs not served; ${signed(addedBare)} vs no extension`,
          target: target === undefined ? '—' : `≤ +${target} ms`,
          met: target === undefined ? undefined : Math.max(added.median, addedBare.median) <= target,
        });
      }
    }

    // 6. History reload: /messages of 500 encrypted events, second fetch vs first.
    if (wantChromium('6') && cr) {
      const { kirjavaPage: page, token: browserToken } = cr;
      log('6. history reload');
      const firsts: number[] = [];
      const seconds: number[] = [];
      for (const room of HISTORY_ROOMS) {
        const url = `${server.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(room)}/messages?dir=b&limit=500`;
        const a = await timedFetch(page, url, browserToken);
        const again: number[] = [];
        for (let i = 0; i < Math.max(3, Math.ceil(RUNS / 2)); i++)
          again.push((await timedFetch(page, url, browserToken)).ms);
        if (a.decrypted !== 500) throw new Error(`bench: /messages decrypted ${a.decrypted} of 500`);
        cr.decrypted += 500 * (1 + again.length);
        firsts.push(a.ms);
        seconds.push(spread(again).median);
      }
      const sixRatio = spread(ratios(seconds, firsts));
      rows.push({
        item: '6',
        measure: `/messages of 500 encrypted events, second fetch vs first (${HISTORY_ROOMS.length} rooms)`,
        baseline: `first fetch ${ms(firsts)}`,
        result: `×${fmtSpread(sixRatio)} (${ms(seconds)})`,
        target: '≤ 0.1',
        met: sixRatio.median <= 0.1,
      });
    }

    // 5. Sends through the page: encrypted (sessions exist) vs plaintext into an unencrypted room.
    if (wantChromium('5') && cr) {
      const { kirjavaPage: page, token: browserToken } = cr;
      log('5. sends');
      const sendUrl = (room: string, txn: string) =>
        `${server.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(room)}/send/m.room.message/${txn}`;
      let txn = 0;
      const sendOnce = async (room: string) => {
        const timed = await timedFetch(page, sendUrl(room, `bench${txn++}`), browserToken, {
          method: 'PUT',
          body: JSON.stringify({ msgtype: 'm.text', body: 'Lunch at noon?' }),
        });
        if (timed.status !== 200) throw new Error(`bench: send into ${room} answered ${timed.status}`);
        return timed.ms;
      };
      await sendOnce(SEND_ROOM); // key claim + share for the room's devices
      const five = await paired(
        CHEAP_RUNS,
        () => sendOnce(PLAIN_ROOM),
        () => sendOnce(SEND_ROOM),
        2,
      );
      const fiveRatio = spread(ratios(five.subject, five.baseline));
      rows.push({
        item: '5',
        measure: 'bench server: encrypted send, sessions exist (room of 5 users, 6 devices)',
        baseline: `plaintext send, unencrypted room ${ms(five.baseline)}`,
        result: `×${fmtSpread(fiveRatio)} (${ms(five.subject)})`,
        target: '≤ 1.2',
        met: fiveRatio.median <= 1.2,
      });
      log('5. first send into rooms of 50 devices');
      const firstSends: number[] = [];
      const warmSends: number[] = [];
      for (let r = 0; r < 3; r++) {
        const room = `!crowd${r}:example.test`;
        hs.setEncrypted(room);
        hs.setMembership(room, ME, 'join');
        for (let u = 0; u < 10; u++) {
          const userId = `@crowd${r}_${u}:example.test`;
          hs.setMembership(room, userId, 'join');
          for (let d = 0; d < 5; d++) {
            const account = await CryptoAccount.open({
              baseUrl: hs.baseUrl,
              userId,
              deviceId: `D${d}`,
              accessToken: hs.login(userId, `D${d}`),
              fetchFn: hs.fetchFn,
            });
            await account.claimDevice();
            account.close();
          }
        }
        firstSends.push(await sendOnce(room));
        warmSends.push(await sendOnce(room));
      }
      rows.push({
        item: '5',
        measure: 'bench server: first send into a room with 50 other devices (keys query + claim + share; 3 rooms)',
        baseline: `next send into it ${ms(warmSends)}`,
        result: ms(firstSends),
        target: '—',
      });

      log('5. sends on Synapse');
      const synapse = await benchSynapseSends(cr.kirjava, page, CHEAP_RUNS);
      const synapseRatio = spread(ratios(synapse.steady.subject, synapse.steady.baseline));
      rows.push({
        item: '5',
        measure: 'Synapse: encrypted send from the page, sessions exist (2 users, 2 devices)',
        baseline: `plaintext send, unencrypted room, same page ${ms(synapse.steady.baseline)}`,
        result: `×${fmtSpread(synapseRatio)} (${ms(synapse.steady.subject)})`,
        target: '≤ 1.2',
        met: synapseRatio.median <= 1.2,
      });
      rows.push({
        item: '5',
        measure: `Synapse: first send into a room with ${synapse.devices} other devices (one sample)`,
        baseline: `next sends into it ${ms(synapse.nextCrowded)}`,
        result: `${fmt(synapse.firstCrowded, 1)} ms`,
        target: '—',
      });
    }

    // 7. Memory after 10,000 decrypted events. Chromium: the worker's heap and storage over CDP.
    // Firefox has no CDP: no heap figure; its storage from navigator.storage.estimate() in an
    // extension page (the event page's origin).
    if (want('7')) {
      log('7. memory after 10,000 decrypted events');
      corpus.batches.forEach((batch, i) => {
        const body = syncBody(batch, [], `b${i}`);
        server.syncs.set(`batch${i}`, () => body);
      });
      const mb = (bytes: number) => `${fmt(bytes / 2 ** 20, 1)} MiB`;
      for (const side of sides) {
        for (const i of corpus.batches.keys()) {
          const timed = await timedFetch(side.kirjavaPage, syncUrl(`batch${i}`), side.token);
          side.decrypted += timed.decrypted;
        }
        if (side === cr && memoryBefore) {
          const memoryAfter = await workerMemory(cr.debugPort);
          rows.push({
            item: '7',
            measure:
              `worker JS heap after ${cr.decrypted.toLocaleString('en')} decrypted events ` +
              `(${(1000 * (1 + corpus.batches.length + corpus.fresh.length) + 1500).toLocaleString('en')} distinct)`,
            baseline: `after account setup ${mb(memoryBefore.heapUsed)}`,
            result: `${mb(memoryAfter.heapUsed)} (+${mb(memoryAfter.heapUsed - memoryBefore.heapUsed)})`,
            target: '—',
          });
          rows.push({
            item: '7',
            measure: 'extension storage (navigator.storage.estimate in the worker; IndexedDB part)',
            baseline: `after account setup ${mb(memoryBefore.storageUsage)} (IDB ${mb(memoryBefore.idbUsage)})`,
            result: `${mb(memoryAfter.storageUsage)} (IDB ${mb(memoryAfter.idbUsage)})`,
            target: '—',
          });
        } else if (side !== cr) {
          const after = await extensionStorage(side.kirjava);
          rows.push({
            item: '7',
            measure: `event page JS heap after ${side.decrypted.toLocaleString('en')} decrypted events, ${side.label}`,
            baseline: 'n/a (no CDP in Firefox)',
            result: 'n/a (no CDP in Firefox)',
            target: '—',
          });
          rows.push({
            item: '7',
            measure: `extension storage (navigator.storage.estimate in an extension page), ${side.label}`,
            baseline: `after account setup ${mb(storageBefore.get(side.name) ?? NaN)}`,
            result: `${mb(after)} (no per-store breakdown in Firefox)`,
            target: '—',
          });
        }
      }
    }

    // 4. Cold start: worker stopped, then a /sync with one encrypted event. Each sync,
    // cold or warm, carries an event of its own (never seen: no decrypted-cache answer).
    // Firefox: its event page terminated as about:debugging does, then the same bodies.
    if (want('4')) {
      corpus.singles.forEach((event, i) => {
        const body = syncBody({ [SYNC_ROOMS[0]]: [event] }, [], `one${i}`);
        server.syncs.set(`single${i}`, () => body);
      });
      for (const side of sides) {
        log(`4. cold start, ${side.label}`);
        let single = 0;
        /** A sync with a new event; `hold`: a long-poll the server answers that much later (not counted). */
        const nextSingle = async (hold = 0) => {
          const url = `${syncUrl(`single${single++}`)}${hold ? `&hold=${hold}` : ''}`;
          const timed = await timedFetch(side.kirjavaPage, url, side.token);
          if (timed.decrypted !== 1) throw new Error(`bench: a cold-start sync in ${side.name} was not decrypted`);
          return timed.ms - hold;
        };
        /** Pairs of a sync with the worker running and one right after it was stopped. */
        const coldStarts = async (hold: number) => {
          const pairs = { warm: [] as number[], cold: [] as number[] };
          for (let i = 0; i < COLD_RUNS; i++) {
            pairs.warm.push(await nextSingle(hold));
            // Stopped until seen stopped: a message still on its way may start it again at once.
            await side.kirjava.stopWorker();
            for (let tries = 1; await side.kirjava.backgroundRunning(); tries++) {
              if (tries === 20) throw new Error(`bench: the ${side.name} background still runs after 20 stops`);
              await new Promise((r) => setTimeout(r, 100));
              await side.kirjava.stopWorker();
            }
            await new Promise((r) => setTimeout(r, 300));
            pairs.cold.push(await nextSingle(hold));
            if (side.name === 'chromium' && hold === 0) marks.push(await startupMarks((side as typeof cr)!.debugPort));
          }
          return pairs;
        };
        /** Per cold start (Chromium), ms since the worker started at each first-time step. */
        const marks: Record<string, number>[] = [];
        await nextSingle();
        const { warm, cold } = await coldStarts(0);
        // The same after a long-poll: the client's /sync waits on the server until an event
        // arrives (here 1 s), and the page hook has woken the worker when the request started.
        const polls = await coldStarts(LONG_POLL_MS);
        const coldSpread = spread(cold);
        const stopped = side.name === 'chromium' ? 'worker stopped' : 'event page terminated (as about:debugging does)';
        const running = side.name === 'chromium' ? 'worker running' : 'event page running';
        const which = side.name === 'chromium' ? '' : `, ${side.label}`;
        rows.push({
          item: '4',
          measure: `cold start: ${stopped}, then a /sync with one encrypted event (never seen before)${which}`,
          baseline: `a sync with another new event, ${running} ${ms(warm)}`,
          result: ms(cold),
          target: '≤ 150 ms',
          met: coldSpread.median <= 150,
        });
        if (marks.length > 0) {
          const steps = Object.keys(marks[0]).sort((a, b) => marks[0][a] - marks[0][b]);
          const at = steps.map((step) => `${step} ${ms(marks.map((m) => m[step] ?? NaN))}`);
          rows.push({
            item: '4',
            measure: 'cold start, where the time goes: each step first reached, ms since the worker started',
            baseline: '—',
            result: at.join('; '),
            target: '—',
          });
        }
        rows.push({
          item: '4',
          measure:
            `cold start during a long-poll: ${stopped}, then a /sync the server answers ` +
            `${LONG_POLL_MS / 1000} s later with one new encrypted event; ` +
            `from the answer to the decrypted body${which}`,
          baseline: `the same, ${running} ${ms(polls.warm)}`,
          result: ms(polls.cold),
          target: '≤ 150 ms',
          met: spread(polls.cold).median <= 150,
        });
      }
    }

    // 8. Scale: 200 rooms, an initial sync of 20,000 events, then to 100,000 (opt-in, last:
    // it fills the worker's cache and index).
    if (wantScale && cr) rows.push(...(await benchScale({ server, hs, browsers: cr, receiver, token: cr.token, log })));
    else if (wantScale) log('8: Chromium only, and BENCH_BROWSERS has no chromium: skipped');
    corpus.close();
  } finally {
    for (const side of sides) await side.close().catch((error) => console.error('bench: closing', side.name, error));
    receiver.close();
    await server.close();
  }
}

/** `binary --version`, or "unknown". */
function version(binary: string): string {
  try {
    return execFileSync(binary, ['--version'], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim();
  } catch {
    return `${binary}: unknown`;
  }
}

function machine(): string[] {
  const names = benchBrowserNames();
  const browsers = [
    ...(names.includes('chromium') ? [version('/usr/bin/chromium')] : []),
    ...(names.includes('firefox') ? [`${version('/usr/bin/firefox-esr')} (WebDriver BiDi)`] : []),
  ];
  const env = ['BENCH_ONLY', 'BENCH_BROWSERS']
    .filter((name) => process.env[name])
    .map((name) => `${name}=${process.env[name]} `)
    .join('');
  const wasm = JSON.parse(
    readFileSync(resolve(repoRoot, 'node_modules/@matrix-org/matrix-sdk-crypto-wasm/package.json'), 'utf8'),
  ).version;
  const loadAfter = loadavg();
  return [
    `- Date: ${started.toISOString()}`,
    `- Command: \`${env}npm run bench\` (BENCH_RUNS=${RUNS})`,
    `- Machine: ${cpus().length} cores (nproc), ${cpus()[0]?.model ?? 'unknown CPU'}`,
    `- ${browsers.join('; ')}; Node ${process.version}; matrix-sdk-crypto-wasm ${wasm}`,
    `- Load average (1/5/15 min) at start ${loadBefore.map((l) => l.toFixed(2)).join(' / ')}, ` +
      `at end ${loadAfter.map((l) => l.toFixed(2)).join(' / ')}: ` +
      `the machine is shared, so read ratios and differences, not absolute times`,
  ];
}

function table(): string[] {
  return [
    '| # | Measure | Baseline (same run) | Kirjava | Target |',
    '|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.item} | ${r.measure} | ${r.baseline} | ${r.result} | ` +
        `${r.target}${r.met === undefined ? '' : r.met ? ' ✅' : ' ❌'} |`,
    ),
  ];
}

main()
  .then(() => {
    const lines = [
      `Figures: median (min–max) of ${RUNS} paired runs (pass-through and sends: ` +
        `${CHEAP_RUNS}; 10 KB pass-through: ${SMALL_BODY_RUNS}) unless the row says otherwise.`,
      '',
      ...table(),
    ];
    console.log(['', ...machine(), '', ...lines].join('\n'));
    if (ONLY) {
      console.log(`\nBENCH_ONLY=${ONLY.join(',')}: a partial run, BENCHMARKS.md left as it is`);
      process.exit(0);
    }
    const path = resolve(repoRoot, process.env.BENCH_OUT ?? 'BENCHMARKS.md');
    const latest = [
      '<!-- bench:latest -->',
      '## Latest run',
      '',
      ...machine(),
      '',
      ...lines,
      '<!-- /bench:latest -->',
    ].join('\n');
    let doc: string;
    try {
      doc = readFileSync(path, 'utf8');
    } catch {
      doc = '# Kirjava benchmarks\n\n<!-- bench:latest -->\n<!-- /bench:latest -->\n';
    }
    doc = doc.replace(/<!-- bench:latest -->[\s\S]*<!-- \/bench:latest -->/, latest);
    writeFileSync(path, doc);
    console.log(`\nwrote ${path}`);
    process.exit(0);
  })
  .catch((error) => {
    console.error(error);
    process.exit(1);
  });
