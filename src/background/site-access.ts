/**
 * Site authorization prompts: when a page on a site the user has not allowed talks to a
 * configured homeserver, the popup asks "Allow <origin> to use encryption for <account>?"
 * and the toolbar badge shows that an answer is pending. The origin comes from the
 * browser's own record of the request (webRequest's `initiator` or `originUrl`,
 * platform/origins.ts), never from the page. Until the user allows it, such a page's
 * traffic is left untouched and the worker answers none of its messages (page-requests.ts).
 */
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { type WebRequest, browser, MATRIX_CLIENT_REQUESTS } from '../platform/ext.ts';
import { requestOrigin } from '../platform/origins.ts';
import { getSettings, storage, updateSettings } from '../platform/storage.ts';
import type { SiteRequestView } from '../shared/messages.ts';
import type { AccountRegistry } from './accounts.ts';
import { setSitesWaiting } from './badge.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/** Starts the site prompts: the browser's record of requests, the popup's answers, the badge. */
export function registerSiteAccess(registry: AccountRegistry): SiteAccess {
  return new SiteAccess(registry);
}

/**
 * Notices pages on sites the user has not allowed that talk to a configured homeserver,
 * keeps them as requests for the popup and the badge, and applies the user's answer.
 */
export class SiteAccess {
  private readonly queue = new SerialQueue();

  constructor(private readonly registry: AccountRegistry) {
    browser.webRequest.onBeforeSendHeaders.addListener(
      (details) => {
        this.observe(details).catch((error) => log.warn('site check failed', { error: errorText(error) }));
        return undefined;
      },
      MATRIX_CLIENT_REQUESTS,
      ['requestHeaders'],
    );
    onUiRequest('site-requests', async () => ({ requests: await this.pending() }));
    onUiRequest('site-decision', async ({ origin, allow }) => {
      await this.decide(origin, allow);
      return { ok: true };
    });
    void this.showBadge();
  }

  private async observe(details: WebRequest.OnBeforeSendHeadersDetailsType): Promise<void> {
    const origin = requestOrigin(details);
    if (!origin) return;
    const settings = await getSettings();
    if (settings.allowedSites.includes(origin)) return;
    const homeserver = settings.homeservers.find((base) => details.url === base || details.url.startsWith(`${base}/`));
    if (!homeserver) return;
    const authorization = details.requestHeaders?.find((h) => h.name.toLowerCase() === 'authorization')?.value;
    const token = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
    await this.queue.run(async () => {
      const denied = await this.denied();
      const pending = await this.pending();
      if (denied.includes(origin)) return;
      const userId = (token && (await this.registry.userOfKnownToken(token))) || null;
      const existing = pending.find((p) => p.origin === origin);
      if (existing && (existing.userId || !userId)) return;
      const next = [...pending.filter((p) => p.origin !== origin), { origin, homeserver, userId }];
      await storage.session.set('site.pending', next);
      await setSitesWaiting(next.length);
    });
  }

  private decide(origin: string, allow: boolean): Promise<void> {
    return this.queue.run(async () => {
      const pending = await this.pending();
      if (!pending.some((p) => p.origin === origin)) throw new Error(`${origin} is not waiting for an answer any more`);
      if (allow) {
        await updateSettings((settings) =>
          settings.allowedSites.includes(origin)
            ? settings
            : { ...settings, allowedSites: [...settings.allowedSites, origin] },
        );
      } else {
        await storage.local.update('site.denied', (denied) => [...denied, origin]);
      }
      const next = pending.filter((p) => p.origin !== origin);
      await storage.session.set('site.pending', next);
      await setSitesWaiting(next.length);
    });
  }

  private pending(): Promise<SiteRequestView[]> {
    return storage.session.get('site.pending');
  }

  private denied(): Promise<string[]> {
    return storage.local.get('site.denied');
  }

  private async showBadge(): Promise<void> {
    await setSitesWaiting((await this.pending()).length);
  }
}
