/**
 * Chromium sides of the benchmark: one browser with Kirjava, one plain (the bare browser),
 * a page on the bench server's origin in each, timed from inside the page, and the
 * extension's service worker reached over CDP for its heap and storage figures.
 */
import { chromium, type Browser, type Page } from 'playwright-core';
import { CHROMIUM_FLAGS, type ExtensionBrowser, launchBrowser } from '../tests/fixtures/browser.ts';
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

export interface BenchBrowsers {
  kirjava: ExtensionBrowser;
  kirjavaPage: Page;
  /** A page in the same Chromium on a site Kirjava does not serve: the hook idles. */
  idlePage: Page;
  /** `baseUrl` as the idle page reaches it, same-origin. */
  idleBaseUrl: string;
  plain: Browser;
  plainPage: Page;
  debugPort: number;
  close(): Promise<void>;
}

export async function launchBrowsers(baseUrl: string, idleBaseUrl: string): Promise<BenchBrowsers> {
  const debugPort = await freePort();
  const kirjava = await launchBrowser({
    distDir: process.env.BENCH_DIST,
    extraArgs: [`--remote-debugging-port=${debugPort}`],
  });
  await kirjava.configure(baseUrl, baseUrl);
  const kirjavaPage = await kirjava.context.newPage();
  await kirjavaPage.goto(`${baseUrl}/bench.html`);
  const idlePage = await kirjava.context.newPage();
  await idlePage.goto(`${idleBaseUrl}/bench.html`);
  const plain = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: CHROMIUM_FLAGS,
  });
  const plainPage = await plain.newPage();
  await plainPage.goto(`${baseUrl}/bench.html`);
  return {
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
}

/** A raw CDP call on the extension's service worker target (Playwright cannot attach to it). */
export async function workerCdp<T = any>(
  debugPort: number,
  calls: { method: string; params?: object }[],
): Promise<T[]> {
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
  try {
    const results: T[] = [];
    for (const [id, call] of calls.entries()) {
      const result = await new Promise<T>((resolve, reject) => {
        socket.onmessage = (message) => {
          const data = JSON.parse(String(message.data));
          if (data.id !== id + 1) return;
          if (data.error) reject(new Error(`${call.method}: ${data.error.message}`));
          else resolve(data.result as T);
        };
        socket.send(JSON.stringify({ id: id + 1, method: call.method, params: call.params ?? {} }));
      });
      results.push(result);
    }
    return results;
  } finally {
    socket.close();
  }
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
