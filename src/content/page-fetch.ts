/**
 * The page's fetch with Kirjava in the middle: requests to a configured homeserver go
 * through the worker (sync and history decrypted, sends into encrypted rooms encrypted,
 * search answered from the index, media decrypted by MediaHook); on an allowed site, a
 * room send to any other host is refused. Everything else is the browser's own fetch.
 */
import type { PageReply, PageRequest } from '../shared/page.ts';
import type { HookPort } from './hook-port.ts';
import type { MediaHook, UploadProgress } from './media-hook.ts';
import { mediaRouteOf } from './media-routes.ts';
import { errorResponse, parsedResponse, refusedSend, withBody } from './responses.ts';
import { canonicalSendUrl, matrixUrlOf, routeOf, tokenOf, withoutOnly } from './routes.ts';
import { SyncSplice } from './sync-splice.ts';

/** How long a logout waits for the worker to back up the account's room keys. */
const LOGOUT_BACKUP_WAIT_MS = 30_000;

/** What PageFetch needs from the hook: the browser's own fetch, the port to the worker, the media hook. */
export interface PageFetchDeps {
  nativeFetch: typeof fetch;
  port: HookPort;
  media: MediaHook;
  /** The page's URL, against which relative request URLs resolve. */
  pageUrl: () => string;
}

const urlOf = (input: RequestInfo | URL): string =>
  input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);

/**
 * The fetch the hook installs in the page: routes each homeserver request to the worker or the
 * media hook, refuses room sends to other hosts on an allowed site, and passes the rest on.
 */
export class PageFetch {
  /**
   * Tokens whose last sync the worker answered: their syncs with nothing to wait for go
   * unawaited. A token's first sync always waits (the worker discovers the account and
   * uploads its device keys), and so does the next one after any failure.
   */
  private readonly servedTokens = new Set<string>();
  /** Rooms this page has seen to be encrypted: their counts go to the worker (mentions). */
  private readonly encryptedRooms = new Set<string>();

  constructor(private readonly deps: PageFetchDeps) {}

  /** `url` parsed, when it is a Matrix API URL: only those are looked at. */
  matrixUrlOf(url: string): URL | undefined {
    return matrixUrlOf(url, this.deps.pageUrl());
  }

  /** The refusal of an allowed page's room send to a host that is no configured homeserver. */
  refusedSend(method: string, url: URL): Response | undefined {
    return refusedSend(this.deps.port.allowed, method, url);
  }

  /** The page's `fetch`. */
  readonly fetch = async (input: RequestInfo | URL, init?: RequestInit): Promise<Response> => {
    const { nativeFetch, port } = this.deps;
    // Parsed first: the URL parser turns `\` into `/` and drops tabs and newlines.
    const url = this.matrixUrlOf(urlOf(input));
    if (!url) return nativeFetch(input, init);
    await port.ready;
    const baseUrl = port.homeserverOf(url.href);
    if (!baseUrl) {
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
      return this.refusedSend(method, url) ?? nativeFetch(input, init);
    }
    return this.mediated(new Request(input, init), baseUrl, {
      body: init?.body instanceof Blob ? init.body : undefined,
    });
  };

  /**
   * The page's request, carried out with Kirjava in the middle. `upload`: for media
   * uploads, the page's body Blob and an XHR's progress sink.
   */
  async mediated(
    request: Request,
    baseUrl: string,
    upload: { progress?: UploadProgress; body?: Blob } = {},
  ): Promise<Response> {
    const { nativeFetch, port, media } = this.deps;
    const ask = (pageRequest: PageRequest) => port.ask(pageRequest);
    const token = tokenOf(request.headers.get('Authorization'), request.url);
    if (token) media.noteToken(baseUrl, token);
    const mediaRoute = mediaRouteOf(baseUrl, request.method, request.url);
    if (mediaRoute) return media.handle(mediaRoute, request, baseUrl, token, upload);
    const route = routeOf(baseUrl, request.method, request.url);
    // Anything not encrypted that names the page's (encrypted) uploads gets their plaintext.
    const inClear = (original = request) =>
      media
        .withPlaintextUploads(original)
        .then(nativeFetch, (error: Error) =>
          errorResponse({ status: 502, errcode: 'M_UNKNOWN', error: error.message }),
        );
    if (!route || (route.kind !== 'login' && !token)) return inClear();

    if (route.kind === 'send') {
      const body = await request.clone().text();
      const reply = await ask({
        kind: 'send',
        baseUrl,
        token: token!,
        roomId: route.roomId,
        eventType: route.eventType,
        txnId: route.txnId,
        // The page's uploads become `file` with their keys, should the room be encrypted.
        body: media.encryptedContent(body) ?? body,
      });
      if (!reply.ok) return errorResponse(reply);
      if (!('send' in reply) || reply.send === 'passthrough') {
        // In the one spelling of the room id the guard's allow rule for an unencrypted room knows.
        const canonical = canonicalSendUrl(request.url);
        if (canonical === request.url) return inClear();
        return inClear(
          new Request(canonical, {
            method: request.method,
            headers: request.headers,
            body,
            signal: request.signal,
            credentials: request.credentials,
            mode: request.mode,
            cache: request.cache,
            redirect: request.redirect,
            keepalive: request.keepalive,
          }),
        );
      }
      // Same transaction id, so a retried send stays idempotent on the homeserver.
      const url = new URL(request.url);
      const txn = route.txnId === undefined ? '' : `/${encodeURIComponent(route.txnId)}`;
      url.pathname =
        url.pathname.slice(0, url.pathname.lastIndexOf(route.sendSegment)) + `/send/m.room.encrypted${txn}`;
      const headers = new Headers(request.headers);
      headers.set('Content-Type', 'application/json');
      return nativeFetch(url.href, {
        method: request.method,
        headers,
        body: reply.send.body,
        signal: request.signal,
        credentials: request.credentials,
      });
    }

    if (route.kind === 'search') {
      const reply = await ask({
        kind: 'search',
        baseUrl,
        token: token!,
        body: await request.clone().text(),
        nextBatch: route.nextBatch,
      });
      if (!reply.ok) return errorResponse(reply);
      const body = 'body' in reply && typeof reply.body === 'string' ? reply.body : '{}';
      const response = new Response(body, { status: 200, headers: { 'Content-Type': 'application/json' } });
      Object.defineProperty(response, 'url', { value: request.url });
      return response;
    }

    if (route.kind === 'sync' || route.kind === 'events' || route.kind === 'notifications') {
      // A stopped worker starts (≈ 150–200 ms: the crypto library compiles, the account's
      // store opens) while the homeserver answers: during a long-poll, entirely.
      port.warm({ kind: 'warm', baseUrl, token: token! });
    }
    if (route.kind === 'logout') {
      // While the token still works, the worker puts the account's room keys in the key
      // backup, so the logout loses no history. Bounded: a logout is never held up for long.
      const prepared = ask({ kind: 'logout-prepare', baseUrl, token: token! });
      await Promise.race([prepared, new Promise((resolve) => setTimeout(resolve, LOGOUT_BACKUP_WAIT_MS))]);
    }
    // `only=highlight` is answered here from the full list: the server cannot see a mention
    // inside an encrypted message, so its own filtered list would leave those out.
    const response = await nativeFetch(
      route.kind === 'notifications' && route.onlyHighlight ? new Request(withoutOnly(request.url), request) : request,
    );
    if (route.kind === 'logout') {
      if (response.ok) await ask({ kind: 'logout', baseUrl, token: token!, all: route.all });
      return response;
    }
    if (!response.ok) return response;
    if (route.kind === 'sync') return this.mediatedSync(response, baseUrl, token!);
    const text = await response.text();
    let reply: PageReply;
    if (route.kind === 'login') reply = await ask({ kind: 'login', baseUrl, body: text });
    else if (route.kind === 'notifications')
      reply = await ask({
        kind: 'notifications',
        baseUrl,
        token: token!,
        body: text,
        onlyHighlight: route.onlyHighlight,
      });
    else reply = await ask({ kind: 'events', baseUrl, token: token!, roomId: route.roomId, body: text });
    if (!reply.ok) {
      // Never hand over a sync whose keys were not processed: the client retries it.
      return route.kind === 'login' ? withBody(response, text) : errorResponse(reply);
    }
    return withBody(response, 'body' in reply && typeof reply.body === 'string' ? reply.body : text);
  }

  /**
   * A /sync response: only the part the worker needs crosses the port (SyncSplice), and
   * the decrypted events are put back here. The body is parsed once, here: the page's
   * `json()` gets that object (parsedResponse). A body that is not a JSON object goes
   * to the worker whole, as before.
   */
  private async mediatedSync(response: Response, baseUrl: string, token: string): Promise<Response> {
    const { port } = this.deps;
    const text = await response.clone().text();
    const splice = SyncSplice.of(text, this.encryptedRooms);
    if (!splice) {
      const reply = await port.ask({ kind: 'sync', baseUrl, token, body: text });
      if (!reply.ok) return errorResponse(reply);
      return withBody(response, 'body' in reply && typeof reply.body === 'string' ? reply.body : text);
    }
    if (splice.empty) return parsedResponse(response, splice.body);
    if (!splice.needsAnswer && this.servedTokens.has(token)) {
      // One-time key counts only: the machine gets them, nothing here waits for it.
      void port
        .ask({ kind: 'sync', baseUrl, token, body: splice.part })
        .then((reply) => reply.ok || this.servedTokens.delete(token));
      return parsedResponse(response, splice.body);
    }
    const reply = await port.ask({ kind: 'sync', baseUrl, token, body: splice.part });
    // Never hand over a sync whose keys were not processed: the client retries it.
    if (!reply.ok) {
      this.servedTokens.delete(token);
      return errorResponse(reply);
    }
    this.servedTokens.add(token);
    const merged = 'body' in reply && typeof reply.body === 'string' ? splice.merge(reply.body) : undefined;
    return merged ? parsedResponse(response, merged, text) : parsedResponse(response, splice.body);
  }
}
