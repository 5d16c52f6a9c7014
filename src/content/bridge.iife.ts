/**
 * ISOLATED-world bridge between the page's hook and the service worker. It hands the hook
 * a private MessagePort, tells it which homeservers this page may use (none unless the
 * user allowed the page's site), and relays the hook's requests to the worker. The page
 * can see and forge everything on this path: the worker trusts none of it.
 */
import { askRuntime, browser } from '../platform/ext.ts';
import {
  BRIDGE_PORT_OFFER,
  type BridgeMessage,
  type BridgePortMessage,
  HOOK_CONFIG_CHANGED_CHANNEL,
  HOOK_CONFIG_CHANNEL,
  type HookConfig,
  type HookConfigRequest,
  PAGE_CHANNEL,
  type PageReply,
  type PageRequest,
  WATCH_PORT,
} from '../shared/page.ts';

const channel = new MessageChannel();
const port = channel.port1;
window.postMessage(BRIDGE_PORT_OFFER, '*', [channel.port2]);
const toHook = (message: BridgePortMessage) => port.postMessage(message);

/** The worker's HookConfig for this frame (extension storage is closed to content scripts). */
async function readConfig(): Promise<HookConfig> {
  const request: HookConfigRequest = { channel: HOOK_CONFIG_CHANNEL };
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const config = await askRuntime<HookConfig>(request);
      if (Array.isArray(config?.homeservers)) return config;
    } catch (error) {
      lastError = error; // a worker starting up; try again
    }
    await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
  }
  throw lastError ?? new Error('no configuration from the worker');
}

const postConfig = () =>
  readConfig().then(
    (config) => toHook({ type: 'config', config }),
    () => toHook({ type: 'config', config: { allowed: false, homeservers: [] } }),
  );
postConfig();
browser.runtime.onMessage.addListener((message: unknown) => {
  if ((message as { channel?: unknown } | null)?.channel === HOOK_CONFIG_CHANGED_CHANNEL) postConfig();
  return undefined;
});

/**
 * The worker may be stopped at any moment; sendMessage wakes it, so retry a few times. A
 * worker that does not serve this page stays silent (NoAnswerError, retried like a stopped one).
 */
async function askWorker(request: PageRequest): Promise<PageReply> {
  const message: BridgeMessage = { channel: PAGE_CHANNEL, request };
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      return await askRuntime<PageReply>(message);
    } catch (error) {
      lastError = error;
      await new Promise((resolve) => setTimeout(resolve, 100 * (attempt + 1)));
    }
  }
  return {
    ok: false,
    status: 503,
    errcode: 'M_UNKNOWN',
    error: `Kirjava's background worker did not answer: ${(lastError as Error)?.message ?? lastError}`,
  };
}

/**
 * Whether the worker runs: a port to it stays connected while it does (it does not keep
 * it running: Chromium still stops an idle worker, and the port then disconnects).
 */
let workerRunning = false;
function watchWorker(): void {
  try {
    const watch = browser.runtime.connect({ name: WATCH_PORT });
    workerRunning = true;
    watch.onDisconnect.addListener(() => {
      void browser.runtime.lastError; // a stopped worker is expected, not an error to report
      workerRunning = false;
    });
  } catch {
    workerRunning = false; // extension reloaded: nothing to wake
  }
}

/**
 * The page started a request the worker will have to answer (see PageRequest 'warm'):
 * if the worker is stopped, start it and have it open the account meanwhile. A running
 * worker hears nothing (no message per request).
 */
function warm(request: PageRequest): void {
  if (workerRunning) return;
  watchWorker();
  browser.runtime.sendMessage({ channel: PAGE_CHANNEL, request } satisfies BridgeMessage).catch(() => undefined);
}

port.onmessage = (event: MessageEvent) => {
  const data = (event.data ?? {}) as Partial<{ id: unknown; request: PageRequest; warm: PageRequest }>;
  if (data.warm?.kind === 'warm') return warm(data.warm);
  const { id, request } = data;
  if (typeof id !== 'number' || !request) return;
  askWorker(request).then((reply) => toHook({ type: 'reply', id, reply }));
};
