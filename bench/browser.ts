/**
 * The browsers of the benchmark, Chromium and Firefox: in each, one browser with Kirjava and
 * one plain (the bare browser), a page on the bench server's origin in each, timed from inside
 * the page. Chromium's extension service worker is reached over CDP for its heap and storage
 * figures; Firefox has no CDP (its storage is read with `navigator.storage.estimate()` in an
 * extension page, its heap not at all).
 */
import { chromium, firefox, type Browser, type Page } from 'playwright-core';
import { type BrowserName, CHROMIUM_FLAGS, type ExtensionBrowser, launchBrowser } from '../tests/fixtures/browser.ts';
import { freePort, poll } from '../tests/fixtures/net.ts';

export interface Timed {
  ms: number;
  status: number;
  /** Events that carry Kirjava's decryption report with decrypted: true. */
  decrypted: number;
  bytes: number;
}

/** Times `fetch` + `response.json()` in the page, as a client reads a response. */
export function timedFetch(
  page: Page,
  url: string,
  token: string,
  init: { method?: string; body?: string } = {},
): Promise<Timed> {
  return page.evaluate(
    async ({ url, token, init }) => {
      const start = performance.now();
      const response = await fetch(url, {
        method: init.method ?? 'GET',
        body: init.body,
        headers: { Authorization: `Bearer ${token}`, ...(init.body ? { 'Content-Type': 'application/json' } : {}) },
      });
      const json = await response.json();
      const ms = performance.now() - start;
      // No named inner functions: tsx would wrap them in a __name helper the page lacks.
      let decrypted = 0;
      const lists: any[][] = [json?.chunk ?? []];
      for (const room of Object.values<any>(json?.rooms?.join ?? {})) lists.push(room?.timeline?.events ?? []);
      for (const events of lists) {
        for (const e of events) if (e?.unsigned?.['io.kirjava.encryption']?.decrypted === true) decrypted++;
      }
      return { ms, status: response.status, decrypted, bytes: 0 };
    },
    { url, token, init },
  );
}

/**
 * One browser of the benchmark: Kirjava in it, a page the hook idles on, and the same browser
 * without the extension.
 */
export interface BenchBrowser {
  name: BrowserName;
  /** "Chromium" or "Firefox", for the table. */
  label: string;
  kirjava: ExtensionBrowser;
  kirjavaPage: Page;
  /** A page in the same browser on a site Kirjava does not serve: the hook idles. */
  idlePage: Page;
  /** `baseUrl` as the idle page reaches it, same-origin. */
  idleBaseUrl: string;
  plain: Browser;
  plainPage: Page;
  /** Chromium's remote debugging port (CDP: the worker's heap and storage); Firefox has no CDP. */
  debugPort?: number;
  close(): Promise<void>;
}

/** The Chromium side, reached over CDP for the worker's heap and storage (items 7 and 8). */
export type BenchBrowsers = BenchBrowser & { debugPort: number };

/** The browsers `BENCH_BROWSERS` names (default both: `BENCH_BROWSERS=firefox` for Firefox only). */
export function benchBrowserNames(): BrowserName[] {
  const named = (process.env.BENCH_BROWSERS ?? 'chromium,firefox')
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  const unknown = named.filter((name) => name !== 'chromium' && name !== 'firefox');
  if (unknown.length > 0 || named.length === 0)
    throw new Error(`BENCH_BROWSERS: chromium and/or firefox, not ${named}`);
  return [...new Set(named)] as BrowserName[];
}

/** Opens a page on `url`'s blank bench page. */
async function benchPage(open: () => Promise<Page>, url: string): Promise<Page> {
  const page = await open();
  await page.goto(`${url}/bench.html`);
  return page;
}

/**
 * Launches `name` with Kirjava (configured for the bench server), a page on the served site
 * and one on a site it does not serve, and the same browser without the extension. Chromium
 * gets a remote debugging port (CDP); Firefox is driven over WebDriver BiDi and has none.
 */
export async function launchBenchBrowser(
  name: BrowserName,
  baseUrl: string,
  idleBaseUrl: string,
): Promise<BenchBrowser> {
  const debugPort = name === 'chromium' ? await freePort() : undefined;
  const kirjava = await launchBrowser({
    browser: name,
    distDir: name === 'chromium' ? process.env.BENCH_DIST : process.env.BENCH_DIST_FIREFOX,
    extraArgs: debugPort === undefined ? [] : [`--remote-debugging-port=${debugPort}`],
  });
  try {
    await kirjava.configure(baseUrl, baseUrl);
    const kirjavaPage = await benchPage(() => kirjava.context.newPage(), baseUrl);
    const idlePage = await benchPage(() => kirjava.context.newPage(), idleBaseUrl);
    const plain =
      name === 'chromium'
        ? await chromium.launch({ executablePath: '/usr/bin/chromium', headless: true, args: CHROMIUM_FLAGS })
        : // `moz-firefox` drives Firefox over WebDriver BiDi, as the Kirjava Firefox is.
          await firefox.launch({ channel: 'moz-firefox', executablePath: '/usr/bin/firefox-esr', headless: true });
    const plainPage = await benchPage(() => plain.newPage(), baseUrl);
    return {
      name,
      label: name === 'chromium' ? 'Chromium' : 'Firefox',
      kirjava,
      kirjavaPage,
      idlePage,
      idleBaseUrl,
      plain,
      plainPage,
      debugPort,
      close: async () => {
        await plain.close().catch(() => {});
        await kirjava.close();
      },
    };
  } catch (error) {
    await kirjava.close().catch(() => {});
    throw error;
  }
}

/** A CDP session: `send` a command, get its result (rejects with the method and CDP's error). */
interface CdpSession {
  send(method: string, params?: object): Promise<any>;
  close(): void;
}

/** A CDP session on the extension's service worker target (Playwright cannot attach to it). */
async function workerSession(debugPort: number): Promise<CdpSession> {
  const wsUrl = await poll('the extension service worker target', async () => {
    const targets = (await (await fetch(`http://127.0.0.1:${debugPort}/json/list`)).json()) as {
      type: string;
      url: string;
      webSocketDebuggerUrl?: string;
    }[];
    return targets.find((t) => t.type === 'service_worker' && t.url.startsWith('chrome-extension://'))
      ?.webSocketDebuggerUrl;
  });
  const socket = new WebSocket(wsUrl);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let next = 0;
  const waiting = new Map<number, { method: string; resolve: (v: any) => void; reject: (e: Error) => void }>();
  socket.onmessage = (message) => {
    const data = JSON.parse(String(message.data));
    const call = waiting.get(data.id);
    if (!call) return;
    waiting.delete(data.id);
    if (data.error) call.reject(new Error(`${call.method}: ${data.error.message}`));
    else call.resolve(data.result);
  };
  return {
    send: (method, params = {}) =>
      new Promise((resolve, reject) => {
        waiting.set(++next, { method, resolve, reject });
        socket.send(JSON.stringify({ id: next, method, params }));
      }),
    close: () => socket.close(),
  };
}

/** Raw CDP calls on the extension's service worker target, one after the other. */
export async function workerCdp<T = any>(
  debugPort: number,
  calls: { method: string; params?: object }[],
): Promise<T[]> {
  const session = await workerSession(debugPort);
  try {
    const results: T[] = [];
    for (const call of calls) results.push((await session.send(call.method, call.params)) as T);
    return results;
  } finally {
    session.close();
  }
}

/** One node of a CDP CPU profile (`Profiler.Profile`). */
interface ProfileNode {
  id: number;
  hitCount?: number;
  callFrame: { functionName: string; url: string };
}

/**
 * Runs `during` with the service worker's CPU profiled (CDP `Profiler`, sampled every 0.5 ms)
 * and returns its result and the worker's sampled time per function (`name (file)`), in ms,
 * most first; `(idle)` is the worker waiting (on IndexedDB, the page, the network).
 */
async function workerProfile<T>(
  debugPort: number,
  during: () => Promise<T>,
): Promise<{ result: T; totalMs: number; selfMs: [string, number][]; timeline: string[] }> {
  const session = await workerSession(debugPort);
  const send = session.send;
  try {
    await send('Profiler.enable');
    await send('Profiler.setSamplingInterval', { interval: 500 });
    await send('Profiler.start');
    const result = await during();
    const { profile } = (await send('Profiler.stop')) as {
      profile: { nodes: ProfileNode[]; startTime: number; endTime: number; samples: number[]; timeDeltas: number[] };
    };
    const totalMs = (profile.endTime - profile.startTime) / 1000;
    const msPerSample = totalMs / Math.max(1, profile.samples.length);
    const byName = new Map<string, number>();
    for (const node of profile.nodes) {
      if (!node.hitCount) continue;
      const file = node.callFrame.url.split('/').pop() || '';
      const name = `${node.callFrame.functionName || '(anonymous)'}${file ? ` (${file})` : ''}`;
      byName.set(name, (byName.get(name) ?? 0) + node.hitCount * msPerSample);
    }
    // A timeline in 50 ms slices: how busy the worker was, and its busiest function in each.
    const nameOf = new Map(profile.nodes.map((n) => [n.id, n.callFrame.functionName || '(anonymous)']));
    const slices: { busy: number; all: number; top: Map<string, number> }[] = [];
    let at = 0;
    profile.samples.forEach((id, i) => {
      at += (profile.timeDeltas[i] ?? 0) / 1000;
      const slice = (slices[Math.floor(at / 50)] ??= { busy: 0, all: 0, top: new Map() });
      const name = nameOf.get(id)!;
      slice.all += 1;
      if (name === '(idle)') return;
      slice.busy += 1;
      slice.top.set(name, (slice.top.get(name) ?? 0) + 1);
    });
    const timeline = [...slices].map((slice, i) => {
      if (!slice) return `${i * 50} ms: -`;
      const top = [...slice.top].sort((a, b) => b[1] - a[1])[0]?.[0] ?? '';
      return `${i * 50} ms: ${Math.round((100 * slice.busy) / slice.all)}% busy, ${top.slice(0, 60)}`;
    });
    return { result, totalMs, selfMs: [...byName].sort((a, b) => b[1] - a[1]), timeline };
  } finally {
    session.close();
  }
}

/** Runs `during` under workerProfile and logs the worker's 30 largest self times. */
export async function profiled<T>(
  debugPort: number,
  during: () => Promise<T>,
  log: (...args: unknown[]) => void,
  what: string,
): Promise<T> {
  const { result, totalMs, selfMs, timeline } = await workerProfile(debugPort, during);
  log(`   worker profile of ${what}, ${totalMs.toFixed(0)} ms sampled; self time, most first:`);
  for (const [name, ms] of selfMs.slice(0, 30)) log(`     ${ms.toFixed(0).padStart(7)} ms  ${name}`);
  if (timeline.length <= 100) log(`   timeline:\n     ${timeline.join('\n     ')}`);
  return result;
}

/** The worker's JS heap (after a GC) and the extension origin's storage use. */
export async function workerMemory(
  debugPort: number,
): Promise<{ heapUsed: number; heapTotal: number; storageUsage: number; idbUsage: number }> {
  const [, heap, storage] = await workerCdp(debugPort, [
    { method: 'HeapProfiler.collectGarbage' },
    { method: 'Runtime.getHeapUsage' },
    {
      method: 'Runtime.evaluate',
      params: {
        expression: 'navigator.storage.estimate().then((e) => JSON.stringify(e))',
        awaitPromise: true,
        returnByValue: true,
      },
    },
  ]);
  const estimate = JSON.parse(storage.result.value) as { usage: number; usageDetails?: { indexedDB?: number } };
  return {
    heapUsed: heap.usedSize,
    heapTotal: heap.totalSize,
    storageUsage: estimate.usage,
    idbUsage: estimate.usageDetails?.indexedDB ?? NaN,
  };
}

/**
 * The extension origin's storage use in Firefox (`navigator.storage.estimate()` in an extension
 * page, the same origin as the event page): Firefox reports no per-store breakdown and no heap.
 */
export async function extensionStorage(kirjava: ExtensionBrowser): Promise<number> {
  return kirjava.inExtension(async () => (await navigator.storage.estimate()).usage ?? NaN);
}

/**
 * The worker's startup marks (src/crypto/core/startup-marks.ts): for each step its worker
 * reached, ms since that worker started.
 */
export async function startupMarks(debugPort: number): Promise<Record<string, number>> {
  const expression =
    "JSON.stringify(performance.getEntriesByType('mark').filter((m) => m.name.startsWith('kirjava:'))" +
    '.map((m) => [m.name.slice(8), m.startTime]))';
  const [answer] = await workerCdp(debugPort, [
    { method: 'Runtime.evaluate', params: { expression, returnByValue: true } },
  ]);
  return Object.fromEntries(JSON.parse(answer.result.value) as [string, number][]);
}
