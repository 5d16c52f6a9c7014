/**
 * Site authorization prompts: when a page on a site the user has not allowed talks to a
 * configured homeserver, the popup asks "Allow <origin> to use encryption for <account>?"
 * and the toolbar badge shows that an answer is pending. The origin comes from the
 * browser's own record of the request (webRequest `initiator`), never from the page.
 * Until the user allows it, such a page's traffic is left untouched and the worker
 * answers none of its messages (page-requests.ts).
 */
import browser from 'webextension-polyfill';
import { SerialQueue } from '../crypto/core/serial-queue.js';
import type { SiteRequestView } from '../shared/messages.js';
import { updateSettings } from '../ui/settings-storage.js';
import type { AccountRegistry } from './accounts.js';
import { getSettings } from './settings.js';
import { onUiRequest } from './ui-router.js';

/** Pending prompts, in storage.session: they end with the browser session. */
const PENDING_KEY = 'site.pending';
/** Origins the user said no to, in storage.local: never asked again. */
const DENIED_KEY = 'site.denied';

const MATRIX_CLIENT_API = { urls: ['*://*/*_matrix/client/*'], types: ['xmlhttprequest' as const] };

const isWebOrigin = (origin: string | undefined): origin is string =>
  !!origin && (origin.startsWith('https://') || origin.startsWith('http://'));

export class SiteAccess {
  private readonly queue = new SerialQueue();

  constructor(private readonly registry: AccountRegistry) {
    chrome.webRequest.onBeforeSendHeaders.addListener(
      (details) => {
        this.observe(details).catch((error) => console.warn('Kirjava: site check failed', error));
        return undefined;
      },
      MATRIX_CLIENT_API,
      ['requestHeaders'],
    );
    onUiRequest('site-requests', async () => ({ requests: await this.pending() }));
    onUiRequest('site-decision', async ({ origin, allow }) => {
      await this.decide(origin, allow);
      return { ok: true };
    });
    void this.showBadge();
  }

  private async observe(details: chrome.webRequest.OnBeforeSendHeadersDetails): Promise<void> {
    const origin = details.initiator;
    if (!isWebOrigin(origin)) return;
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
      await browser.storage.session.set({ [PENDING_KEY]: next });
      await this.showBadge(next);
    });
  }

  private decide(origin: string, allow: boolean): Promise<void> {
    return this.queue.run(async () => {
      const pending = await this.pending();
      if (!pending.some((p) => p.origin === origin)) throw new Error(`${origin} is not waiting for an answer any more`);
      if (allow) {
        await updateSettings((settings) =>
          settings.allowedSites.includes(origin) ? settings : { ...settings, allowedSites: [...settings.allowedSites, origin] },
        );
      } else {
        await browser.storage.local.set({ [DENIED_KEY]: [...(await this.denied()), origin] });
      }
      const next = pending.filter((p) => p.origin !== origin);
      await browser.storage.session.set({ [PENDING_KEY]: next });
      await this.showBadge(next);
    });
  }

  private async pending(): Promise<SiteRequestView[]> {
    return ((await browser.storage.session.get(PENDING_KEY))[PENDING_KEY] as SiteRequestView[] | undefined) ?? [];
  }

  private async denied(): Promise<string[]> {
    return ((await browser.storage.local.get(DENIED_KEY))[DENIED_KEY] as string[] | undefined) ?? [];
  }

  private async showBadge(pending?: SiteRequestView[]): Promise<void> {
    const count = (pending ?? (await this.pending())).length;
    await chrome.action.setBadgeBackgroundColor({ color: '#8a5a00' });
    await chrome.action.setBadgeText({ text: count > 0 ? '?' : '' });
    await chrome.action.setTitle({ title: count > 0 ? `Kirjava: ${count} site(s) ask to use encryption` : 'Kirjava' });
  }
}
