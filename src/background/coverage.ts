/**
 * Finds clients Kirjava does not cover: an allowed site whose /sync to a configured
 * homeserver never came through the page hook (the client syncs from a Web Worker or its
 * Service Worker, where content scripts do not run). The browser reports every completed
 * /sync (webRequest, observing only); the hook reports the syncs it hands over. A sync the
 * hook did not report within a few seconds marks the site as not covered, and the popup
 * says so: there, encrypted messages stay unreadable and plaintext sends into encrypted
 * rooms are blocked by the send guard.
 */
import { type Runtime, browser, senderOrigin } from '../platform/ext.ts';
import { requestOrigin } from '../platform/origins.ts';
import { getSettings, storage } from '../platform/storage.ts';
import type { PageRequest, UncoveredClientView } from '../shared/messages.ts';
import { onUiRequest } from './ui-router.ts';
/** How long after a /sync completes the hook's report may still arrive (or came before). */
const REPORT_WINDOW_MS = 8_000;
/** The popup shows a site as not covered while such syncs were seen this recently. */
export const SHOW_FOR_MS = 10 * 60_000;

const SYNC_REQUESTS = { urls: ['*://*/*_matrix/client/*/sync*'], types: ['xmlhttprequest' as const] };

/** Starts watching the allowed sites' syncs; the page service reports the hook's to it. */
export function registerCoverageService(): ClientCoverage {
  return new ClientCoverage();
}

/**
 * Matches the syncs the browser saw complete against the ones the hook reported, per allowed
 * site, and answers the popup's `uncovered-clients` with the sites whose syncs bypassed the hook.
 */
export class ClientCoverage {
  /** Per origin, times at which the hook reported a sync (this worker lifetime). */
  private readonly reported = new Map<string, number[]>();
  /** Per origin, the hook's syncs the worker is still serving: counted or not once answered. */
  private readonly pending = new Map<string, Set<Promise<unknown>>>();

  constructor() {
    browser.webRequest.onCompleted.addListener((details) => {
      if (details.method === 'GET' && details.statusCode === 200)
        void this.syncCompleted(requestOrigin(details), details.url);
    }, SYNC_REQUESTS);
    onUiRequest('uncovered-clients', async () => ({ clients: await this.recentlyUncovered() }));
  }

  /** Allowed sites whose syncs bypassed the hook within the last SHOW_FOR_MS. */
  async recentlyUncovered(): Promise<UncoveredClientView[]> {
    const uncovered = await this.uncovered();
    const since = Date.now() - SHOW_FOR_MS;
    return Object.entries(uncovered)
      .filter(([, t]) => t >= since)
      .map(([origin, lastSeen]) => ({ origin, lastSeen }));
  }

  /**
   * The hook handed over a page request of an allowed site. A sync counts as covered only once
   * `served` resolves true: the worker answered it with the account's confirmed token. A page
   * that merely reports syncs (with a made-up token) covers nothing.
   */
  hookReported(request: PageRequest, sender: Runtime.MessageSender, served: Promise<boolean>): void {
    if (request?.kind !== 'sync') return;
    const origin = senderOrigin(sender);
    if (!origin) return;
    const at = Date.now();
    const pending = this.pending.get(origin) ?? new Set<Promise<unknown>>();
    this.pending.set(origin, pending);
    const counted = served
      .then((ok) => {
        if (!ok) return;
        const times = (this.reported.get(origin) ?? []).filter((t) => t > Date.now() - 2 * REPORT_WINDOW_MS);
        this.reported.set(origin, [...times, at]);
      })
      .catch(() => undefined)
      .finally(() => pending.delete(counted));
    pending.add(counted);
  }

  private async syncCompleted(origin: string | undefined, url: string): Promise<void> {
    if (!origin) return;
    const settings = await getSettings();
    if (!settings.allowedSites.includes(origin)) return;
    if (!settings.homeservers.some((base) => url.startsWith(`${base}/_matrix/client/`))) return;
    const completedAt = Date.now();
    await new Promise((resolve) => setTimeout(resolve, REPORT_WINDOW_MS));
    await Promise.all(this.pending.get(origin) ?? []); // a sync still being served decides first
    const times = this.reported.get(origin) ?? [];
    const index = times.findIndex((t) => t >= completedAt - REPORT_WINDOW_MS);
    if (index >= 0) {
      times.splice(index, 1); // each hook report accounts for one sync
      return;
    }
    await storage.session.update('coverage.uncovered', (uncovered) => ({ ...uncovered, [origin]: completedAt }));
  }

  private uncovered(): Promise<Record<string, number>> {
    return storage.session.get('coverage.uncovered');
  }
}
