/**
 * ISOLATED-world bridge between the page's hook and the service worker. It hands the hook
 * a private MessagePort, tells it which homeservers this page may use (none unless the
 * user allowed the page's site), and relays the hook's requests to the worker. The page
 * can see and forge everything on this path: the worker trusts none of it.
 */
import {
  type BridgeMessage,
  HOOK_CONFIG_CHANGED_CHANNEL,
  HOOK_CONFIG_CHANNEL,
  type HookConfig,
  type HookConfigRequest,
  type PageReply,
  type PageRequest,
  WATCH_PORT,
} from '../shared/messages.js';

const channel = new MessageChannel();
const port = channel.port1;
window.postMessage({ kirjava: 'bridge-port' }, '*', [channel.port2]);

/** The worker's HookConfig for this frame (extension storage is closed to content scripts). */
async function readConfig(): Promise<HookConfig> {
  const request: HookConfigRequest = { channel: HOOK_CONFIG_CHANNEL };
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const config = (await chrome.runtime.sendMessage(request)) as HookConfig | undefined;
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
    (config) => port.postMessage({ type: 'config', config }),
    () => port.postMessage({ type: 'config', config: { allowed: false, homeservers: [] } satisfies HookConfig }),
  );
postConfig();
chrome.runtime.onMessage.addListener((message: unknown) => {
  if ((message as { channel?: unknown } | null)?.channel === HOOK_CONFIG_CHANGED_CHANNEL) postConfig();
  return false;
});

/** The worker may be stopped at any moment; sendMessage wakes it, so retry a few times. */
async function askWorker(request: PageRequest): Promise<PageReply> {
  const message: BridgeMessage = { channel: 'kirjava:page', request };
  let lastError: unknown;
  for (let attempt = 0; attempt < 4; attempt++) {
    try {
      const reply = (await chrome.runtime.sendMessage(message)) as PageReply | undefined;
      if (reply) return reply;
      return { ok: false, status: 403, errcode: 'M_FORBIDDEN', error: 'Kirjava does not serve this site' };
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
    const watch = chrome.runtime.connect({ name: WATCH_PORT });
    workerRunning = true;
    watch.onDisconnect.addListener(() => {
      void chrome.runtime.lastError; // a stopped worker is expected, not an error to report
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
  chrome.runtime.sendMessage({ channel: 'kirjava:page', request } satisfies BridgeMessage).catch(() => undefined);
}

port.onmessage = (event: MessageEvent) => {
  const { id, request, warm: warming } = (event.data ?? {}) as { id?: unknown; request?: PageRequest; warm?: PageRequest };
  if (warming?.kind === 'warm') return warm(warming);
  if (typeof id !== 'number' || !request) return;
  askWorker(request).then((reply) => port.postMessage({ type: 'reply', id, reply }));
};
