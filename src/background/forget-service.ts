/**
 * "Forget this account" (popup) and "Reset Kirjava" (options page): the user removes one
 * account, or everything Kirjava keeps, from this browser. UI requests only: the router
 * answers Kirjava's own pages and never a content script, so no web page can ask for either.
 */
import { databaseNames, deleteDatabase } from '../platform/databases.ts';
import { browser } from '../platform/ext.ts';
import { storage } from '../platform/storage.ts';
import type { AccountRegistry } from './accounts.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/** Registers the two requests; both run through the same wipe as a logout (AccountRegistry.forget). */
export function registerForgetService(registry: AccountRegistry): void {
  onUiRequest('account-forget', async ({ accountId }) => {
    await registry.forget(accountId);
    return { ok: true };
  });

  onUiRequest('kirjava-reset', async () => {
    await resetEverything(registry);
    return { ok: true };
  });
}

/**
 * Every account goes as "Forget this account" does; then whatever is left: settings, sharing
 * choices, the keyring with its lock, every IndexedDB database, both storage areas and the
 * send guard's rules.
 */
async function resetEverything(registry: AccountRegistry): Promise<void> {
  const failures: string[] = [];
  for (const id of await registry.ids()) {
    await registry.forget(id).catch((error) => failures.push(errorText(error)));
  }
  for (const name of await databaseNames()) {
    await deleteDatabase(name).catch((error) => failures.push(errorText(error)));
  }
  await storage.local.clear();
  await storage.session.clear();
  const dnr = browser.declarativeNetRequest;
  const session = (await dnr.getSessionRules()).map((rule) => rule.id);
  const dynamic = (await dnr.getDynamicRules()).map((rule) => rule.id);
  await dnr.updateSessionRules({ removeRuleIds: session });
  await dnr.updateDynamicRules({ removeRuleIds: dynamic });
  if (failures.length > 0) {
    log.warn('reset left something behind', { failures: failures.join('; ') });
    throw new Error(
      `Kirjava could not delete everything: ${failures.join('; ')}. Restart the browser and reset again.`,
    );
  }
}
