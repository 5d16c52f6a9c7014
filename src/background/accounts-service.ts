/**
 * The popup's account requests: the account list, sites asking to use an account another
 * site logged in, and "Delete now" for a logged-out account's kept keys.
 */
import { getSettings } from '../platform/storage.ts';
import type { AccountView, Settings } from '../shared/messages.ts';
import type { AccountRegistry } from './accounts.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/** How often a running worker deletes the kept stores of accounts logged out LOGGED_OUT_KEEP_MS ago. */
const SWEEP_EVERY_MS = 60 * 60 * 1000;

/**
 * Answers the popup's account requests from `registry`: the account list, the sites asking
 * for an account and the user's answers, and "Delete now".
 */
export function registerAccountsService(registry: AccountRegistry): void {
  onUiRequest('accounts', async () => {
    const settings = await getSettings();
    return { accounts: (await registry.views()).map((view) => asServed(view, settings)) };
  });
  onUiRequest('account-site-requests', async () => ({ requests: await registry.sites.requests() }));
  onUiRequest('account-site-decision', async ({ accountId, origin, allow }) => {
    await registry.sites.decide(accountId, origin, allow);
    return { ok: true };
  });
  onUiRequest('account-delete-logged-out', async ({ accountId }) => {
    await registry.deleteLoggedOut(accountId);
    return { ok: true };
  });
  // Logged-out accounts whose keys were kept for a week are deleted when the worker starts, and
  // by a worker that keeps running (a client's traffic can keep it up for days) every hour.
  const sweep = () =>
    registry
      .sweepLoggedOut()
      .catch((error) => log.warn('could not delete logged-out accounts', { error: errorText(error) }));
  void sweep();
  setInterval(sweep, SWEEP_EVERY_MS);
}

/**
 * An account Kirjava no longer serves reads as such, never as "Encryption active": its
 * homeserver was removed from the options, or every site that used it was. Messages its
 * clients send into encrypted rooms are then blocked (open tabs until they are reloaded)
 * or go out unencrypted.
 */
function asServed(view: AccountView, settings: Settings): AccountView {
  if (view.state === 'logged-out') return view;
  if (!settings.homeservers.includes(view.baseUrl)) {
    return {
      ...view,
      state: 'not-served',
      error: `${view.baseUrl} is no longer a homeserver in Kirjava's options: nothing is encrypted for this account`,
    };
  }
  if (view.sites.length > 0 && !view.sites.some((site) => settings.allowedSites.includes(site))) {
    return {
      ...view,
      state: 'not-served',
      error:
        `${view.sites.join(', ')} ${view.sites.length > 1 ? 'are' : 'is'} no longer allowed in Kirjava's options: ` +
        'nothing is encrypted for this account',
    };
  }
  return view;
}
