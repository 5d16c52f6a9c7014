/**
 * Kirjava's service worker: the only place that holds key material, crypto machines and
 * access tokens. Listeners are registered synchronously at start (MV3 wakes the worker
 * for them); the WASM module loads lazily on the first request that needs it.
 */
import browser, { type Runtime } from 'webextension-polyfill';
import { type BridgeMessage, type MatrixErrorReply, type UiRequest, WATCH_PORT } from '../shared/messages.js';
import { AccountRegistry } from './accounts.js';
import { registerKeysService } from './keys-service.js';
import { failure, handlePageRequest, servedOrigin } from './page-requests.js';
import { searchServiceFor } from './search-service.js';
import { ClientCoverage } from './coverage.js';
import { SendGuard, watchSettingsForGuard } from './send-guard.js';
import { SiteAccess } from './site-access.js';
import { handleUiRequest, onUiRequest } from './ui-router.js';
import { registerVerificationService } from './verification-service.js';
import { registerSharingService } from './sharing-service.js';
import { KeyringLockedError } from '../crypto/keyring/keyring.js';
import { keyring, registerLockService } from './keyring.js';
import { storageRestricted } from './storage-access.js';
import { serveHookConfig } from './hook-config.js';

// Content scripts must not read extension storage; before anything is written to it.
storageRestricted().catch((error) => console.error('Kirjava: could not restrict storage access', error));
// Secrets older versions kept in storage.local move into the keyring now, not at first use.
keyring.ready().catch((error) => console.warn('Kirjava: keyring not ready', error));
serveHookConfig();

const guard = new SendGuard();
const registry = new AccountRegistry(guard);
// Before any account opens: every decrypted event goes into the account's search index.
searchServiceFor(registry);
// Session rules do not survive a browser restart; install at every worker start.
guard.install().catch((error) => console.error('Kirjava: could not install the send guard', error));
watchSettingsForGuard(guard);
const coverage = new ClientCoverage();
new SiteAccess(registry);
// A listener makes Chromium start the worker with the browser, so the rules are back before
// any page (or its Service Worker) can send.
browser.runtime.onStartup.addListener(() => undefined);

// For DevTools (and the end-to-end tests): what this worker holds right now; no secrets.
(globalThis as { kirjavaStatus?: () => object }).kirjavaStatus = () => ({ openAccounts: registry.openAccounts() });

onUiRequest('accounts', async () => ({ accounts: await registry.views() }));
onUiRequest('account-site-requests', async () => ({ requests: await registry.siteRequests() }));
onUiRequest('account-site-decision', async ({ accountId, origin, allow }) => {
  await registry.decideSite(accountId, origin, allow);
  return { ok: true };
});
onUiRequest('account-delete-logged-out', async ({ accountId }) => {
  await registry.deleteLoggedOut(accountId);
  return { ok: true };
});
// Logged-out accounts whose keys were kept for a week are deleted at the next worker start.
registry.sweepLoggedOut().catch((error) => console.warn('Kirjava: could not delete logged-out accounts', error));
registerKeysService(registry);
registerVerificationService(registry);
registerSharingService(registry);
registerLockService();

/** The popup and options pages (also when opened in a tab); never a content script. */
const isOwnPage = (sender: Runtime.MessageSender) =>
  sender.id === browser.runtime.id && (sender.url ?? '').startsWith(browser.runtime.getURL(''));

browser.runtime.onMessage.addListener((message: unknown, sender: Runtime.MessageSender) => {
  if (sender.id !== browser.runtime.id) return undefined;
  const channel = (message as { channel?: unknown } | null)?.channel;
  if (channel === 'kirjava:ui' && isOwnPage(sender)) return handleUiRequest(message as UiRequest);
  return undefined;
});

/** What the client gets while Kirjava is locked: an error it retries, never plaintext. */
const lockedReply = (error: KeyringLockedError): MatrixErrorReply => ({ ok: false, status: 503, errcode: 'M_UNKNOWN', error: error.message });

/**
 * The bridges' watch ports (they tell the page hook whether the worker runs; see
 * bridge.iife.ts). Closed after WATCH_IDLE_MS without page requests, before Chromium would
 * stop an idle worker (30 s): an open port must never be what keeps the worker running.
 * The page's next request then wakes it (or finds it still running) and reconnects.
 */
const WATCH_IDLE_MS = 20_000;
const watchPorts = new Set<chrome.runtime.Port>();
let watchIdle: ReturnType<typeof setTimeout> | undefined;
function pageActivity(): void {
  clearTimeout(watchIdle);
  watchIdle = setTimeout(() => {
    for (const port of watchPorts) port.disconnect();
    watchPorts.clear();
  }, WATCH_IDLE_MS);
}
chrome.runtime.onConnect.addListener((port) => {
  if (port.name !== WATCH_PORT || port.sender?.id !== chrome.runtime.id) {
    port.disconnect();
    return;
  }
  watchPorts.add(port);
  port.onDisconnect.addListener(() => watchPorts.delete(port));
  pageActivity();
});

// Page requests use the native API: a page the user did not allow gets no reply at all,
// not even an empty one (sendResponse is never called; the sender sees the port close).
chrome.runtime.onMessage.addListener((message: unknown, sender, sendResponse) => {
  if (sender.id !== chrome.runtime.id || (message as { channel?: unknown } | null)?.channel !== 'kirjava:page') {
    return false;
  }
  const { request } = message as BridgeMessage;
  pageActivity();
  servedOrigin(request, sender as Runtime.MessageSender).then(
    (origin) => {
      if (!origin) return;
      coverage.hookReported(request, sender);
      // Locked, every account stays closed (a logout still wipes: it needs no secret).
      const opened = request.kind === 'logout' ? Promise.resolve() : keyring.unlocked();
      void opened
        .then(() => handlePageRequest(registry, request, origin))
        .catch((error) => (error instanceof KeyringLockedError ? lockedReply(error) : failure(error)))
        .then(sendResponse);
    },
    () => undefined,
  );
  return true;
});
