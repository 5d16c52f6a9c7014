/**
 * Homeservers Kirjava does not handle: when a page talks to a Matrix homeserver that is not
 * in the options (`/_matrix/client/versions`, `/login`, `/sync`, a room send), the popup
 * says "<site> talks to <server>, which Kirjava does not handle — add it?" and the badge
 * shows that an answer waits. On an allowed site that is a client whose sends Kirjava cannot
 * encrypt (the hook refuses them, the send guard blocks what the hook cannot see); on a site
 * not allowed yet it is offered only while nothing is configured: the first setup. What is offered comes from
 * the browser's own record of the request (webRequest), never from the page; nothing is
 * added without the user's click.
 */
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { type WebRequest, browser, MATRIX_CLIENT_REQUESTS } from '../platform/ext.ts';
import { requestOrigin } from '../platform/origins.ts';
import { getSettings, storage, updateSettings, watchSettings } from '../platform/storage.ts';
import type { ServerOfferView, Settings } from '../shared/messages.ts';
import { setServersOffered } from './badge.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/**
 * The requests that show a page is a Matrix client of that server (spec: client-server API
 * `GET /versions`, `POST /login`, `GET /sync`, `PUT /rooms/{roomId}/send/{eventType}/{txnId}`).
 */
const CLIENT_REQUEST = /\/_matrix\/client\/(?:versions$|[^/]+\/(?:login$|sync$|rooms\/[^/]+\/send\/))/;

/** The base URL of the homeserver a client request goes to (everything before `/_matrix/`), if it is one. */
function clientRequestBase(url: string): string | undefined {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return undefined;
  }
  if (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') return undefined;
  const match = CLIENT_REQUEST.exec(parsed.pathname);
  if (!match) return undefined;
  return parsed.origin + parsed.pathname.slice(0, match.index);
}

const handled = (settings: Settings, homeserver: string) => settings.homeservers.includes(homeserver);
const pairOf = (offer: { origin: string; homeserver: string }) => `${offer.origin} ${offer.homeserver}`;

/** Starts watching for clients of unhandled homeservers; the popup's offers and the badge. */
export function registerServerOffers(): ServerOffers {
  return new ServerOffers();
}

/**
 * Notices pages that talk to a homeserver Kirjava does not handle, keeps them as offers for
 * the popup and the badge, and applies the user's answer.
 */
export class ServerOffers {
  private readonly queue = new SerialQueue();

  constructor() {
    browser.webRequest.onBeforeRequest.addListener((details) => {
      this.observe(details).catch((error) => log.warn('homeserver check failed', { error: errorText(error) }));
      return undefined;
    }, MATRIX_CLIENT_REQUESTS);
    onUiRequest('server-offers', async () => ({ offers: await this.offers() }));
    onUiRequest('server-offer-decision', async ({ origin, homeserver, accept }) => {
      await this.decide(origin, homeserver, accept);
      return { ok: true };
    });
    // Added in the options page meanwhile: the offer is answered.
    watchSettings((settings) => void this.keep((offer) => !handled(settings, offer.homeserver)));
    void this.keep(() => true);
  }

  private async observe(details: WebRequest.OnBeforeRequestDetailsType): Promise<void> {
    const origin = requestOrigin(details);
    if (!origin) return;
    const homeserver = clientRequestBase(details.url);
    if (!homeserver) return;
    if (handled(await getSettings(), homeserver)) return;
    await this.queue.run(async () => {
      // Read again, from storage, in the queue: an answer just before may have added it.
      const settings = await storage.local.get('settings');
      if (handled(settings, homeserver)) return;
      const offer: ServerOfferView = { origin, homeserver, siteAllowed: settings.allowedSites.includes(origin) };
      // A site not allowed is offered only on a first run: otherwise any page could put
      // "add <its server>?" in front of a user who set Kirjava up already.
      const firstRun = settings.homeservers.length === 0 && settings.allowedSites.length === 0;
      if (!offer.siteAllowed && !firstRun) return;
      if (!offer.siteAllowed && (await storage.local.get('site.denied')).includes(origin)) return;
      if ((await storage.local.get('server.dismissed')).includes(pairOf(offer))) return;
      const offers = await this.offers();
      if (offers.some((o) => pairOf(o) === pairOf(offer) && o.siteAllowed === offer.siteAllowed)) return;
      const next = [...offers.filter((o) => pairOf(o) !== pairOf(offer)), offer];
      await storage.session.set('server.offers', next);
      await setServersOffered(next.length);
      log.info('a page talks to a homeserver Kirjava does not handle', { origin, homeserver });
    });
  }

  private decide(origin: string, homeserver: string, accept: boolean): Promise<void> {
    return this.queue.run(async () => {
      const offer = (await this.offers()).find((o) => o.origin === origin && o.homeserver === homeserver);
      if (!offer) throw new Error(`${origin} is not waiting for an answer about ${homeserver} any more`);
      if (accept) {
        await updateSettings((settings) => ({
          homeservers: handled(settings, homeserver) ? settings.homeservers : [...settings.homeservers, homeserver],
          allowedSites: settings.allowedSites.includes(origin)
            ? settings.allowedSites
            : [...settings.allowedSites, origin],
        }));
      } else {
        await storage.local.update('server.dismissed', (dismissed) => [...dismissed, pairOf(offer)]);
      }
      await this.store((await this.offers()).filter((o) => pairOf(o) !== pairOf(offer)));
    });
  }

  /** Keeps the offers `wanted` says are still open. */
  private keep(wanted: (offer: ServerOfferView) => boolean): Promise<void> {
    return this.queue.run(async () => this.store((await this.offers()).filter(wanted)));
  }

  private async store(offers: ServerOfferView[]): Promise<void> {
    await storage.session.set('server.offers', offers);
    await setServersOffered(offers.length);
  }

  private offers(): Promise<ServerOfferView[]> {
    return storage.session.get('server.offers');
  }
}
