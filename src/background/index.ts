/**
 * Kirjava's service worker: the only place that holds key material, crypto machines and
 * access tokens. Listeners are registered synchronously at start (MV3 wakes the worker
 * for them); the WASM module loads lazily on the first request that needs it.
 */
import browser, { type Runtime } from 'webextension-polyfill';
import type { BridgeMessage, UiRequest } from '../shared/messages.js';
import { AccountRegistry } from './accounts.js';
import { registerKeysService } from './keys-service.js';
import { failure, handlePageRequest, isServed } from './page-requests.js';
import { searchServiceFor } from './search-service.js';
import { handleUiRequest, onUiRequest } from './ui-router.js';
import { registerVerificationService } from './verification-service.js';
import { registerSharingService } from './sharing-service.js';

const registry = new AccountRegistry();
// Before any account opens: every decrypted event goes into the account's search index.
searchServiceFor(registry);

onUiRequest('accounts', async () => ({ accounts: await registry.views() }));
registerKeysService(registry);
registerVerificationService(registry);
registerSharingService(registry);

/** The popup and options pages (also when opened in a tab); never a content script. */
const isOwnPage = (sender: Runtime.MessageSender) =>
  sender.id === browser.runtime.id && (sender.url ?? '').startsWith(browser.runtime.getURL(''));

browser.runtime.onMessage.addListener((message: unknown, sender: Runtime.MessageSender) => {
  if (sender.id !== browser.runtime.id) return undefined;
  const channel = (message as { channel?: unknown } | null)?.channel;
  if (channel === 'kirjava:page') {
    const { request } = message as BridgeMessage;
    return isServed(request, sender).then((served) =>
      served ? handlePageRequest(registry, request).catch(failure) : undefined,
    );
  }
  if (channel === 'kirjava:ui' && isOwnPage(sender)) return handleUiRequest(message as UiRequest);
  return undefined;
});
