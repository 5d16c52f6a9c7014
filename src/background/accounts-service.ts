/**
 * The popup's account requests: the account list, sites asking to use an account another
 * site logged in, and "Delete now" for a logged-out account's kept keys.
 */
import type { AccountRegistry } from './accounts.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/**
 * Answers the popup's account requests from `registry`: the account list, the sites asking
 * for an account and the user's answers, and "Delete now".
 */
export function registerAccountsService(registry: AccountRegistry): void {
  onUiRequest('accounts', async () => ({ accounts: await registry.views() }));
  onUiRequest('account-site-requests', async () => ({ requests: await registry.sites.requests() }));
  onUiRequest('account-site-decision', async ({ accountId, origin, allow }) => {
    await registry.sites.decide(accountId, origin, allow);
    return { ok: true };
  });
  onUiRequest('account-delete-logged-out', async ({ accountId }) => {
    await registry.deleteLoggedOut(accountId);
    return { ok: true };
  });
  // Logged-out accounts whose keys were kept for a week are deleted at the next worker start.
  registry
    .sweepLoggedOut()
    .catch((error) => log.warn('could not delete logged-out accounts', { error: errorText(error) }));
}
