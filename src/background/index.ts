/**
 * Kirjava's service worker: the only place that holds key material, crypto machines and
 * access tokens. Listeners are registered synchronously at start (MV3 wakes the worker
 * for them); the WASM module loads lazily on the first request that needs it.
 *
 * Two objects are the worker's core (the send guard, the account registry); every service
 * around them is started here by its `register…(deps)`.
 */
import { browser } from '../platform/ext.ts';
import { logStorageProblemsTo } from '../platform/storage.ts';
import { AccountRegistry } from './accounts.ts';
import { registerAccountsService } from './accounts-service.ts';
import { toolbarIconsShown } from './badge.ts';
import { registerCoverageService } from './coverage.ts';
import { registerDiagnosticsService } from './diagnostics.ts';
import { registerForgetService } from './forget-service.ts';
import { registerHookConfigService } from './hook-config.ts';
import { keyring, registerLockService } from './keyring.ts';
import { registerKeysService } from './keys-service.ts';
import { registerPageService } from './page-service.ts';
import { registerSearchService } from './search-service.ts';
import { SendGuard, registerSendGuard } from './send-guard.ts';
import { registerServerOffers } from './server-offers.ts';
import { registerStorageHealthService } from './storage-health.ts';
import { decisionsFor, registerSharingService } from './sharing-service.ts';
import { registerRoomLabelsService } from './room-labels.ts';
import { registerSiteAccess } from './site-access.ts';
import { storageRestricted } from './storage-access.ts';
import { registerTabStatus } from './tab-status.ts';
import { registerUiRouter } from './ui-router.ts';
import { registerVerificationService } from './verification-service.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';
import { startupMark } from '../crypto/core/startup-marks.ts';

// Malformed stored values are warned about in the worker's log (the diagnostics page shows them).
logStorageProblemsTo(log);
// Content scripts must not read extension storage; before anything is written to it.
storageRestricted().catch((error) => log.error('could not restrict storage access', { error: errorText(error) }));
// Secrets older versions kept in storage.local move into the keyring now, not at first use.
keyring.ready().catch((error) => log.warn('keyring not ready', { error: errorText(error) }));
registerHookConfigService();

const guard = new SendGuard();
const registry = new AccountRegistry(guard, decisionsFor);
// Before any account opens: every decrypted event goes into the account's search index.
registerSearchService(registry);
registerStorageHealthService();
registerSendGuard(guard);
const coverage = registerCoverageService();
registerSiteAccess(registry);
registerServerOffers();
registerTabStatus();
// A listener makes Chromium start the worker with the browser, so the rules are back before
// any page (or its Service Worker) can send.
browser.runtime.onStartup.addListener(() => undefined);

// For DevTools (and the end-to-end tests): what this worker holds right now; no secrets.
(globalThis as { kirjavaStatus?: () => object }).kirjavaStatus = () => ({
  openAccounts: registry.openAccounts(),
  toolbarIcons: toolbarIconsShown(),
});

registerAccountsService(registry);
registerForgetService(registry);
registerKeysService(registry);
registerVerificationService(registry);
registerSharingService(registry);
registerRoomLabelsService(registry);
registerLockService();
registerDiagnosticsService(registry, coverage);
registerUiRouter();
registerPageService(registry, coverage);
startupMark('script');
