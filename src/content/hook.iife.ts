/**
 * MAIN-world hook, run at document_start before the page's own code: wraps `fetch` and
 * `XMLHttpRequest` so that the page's traffic to a configured homeserver passes through
 * Kirjava's worker (sync and history decrypted, sends into encrypted rooms encrypted).
 * On an allowed site, a room send to any other host is refused: it could not be
 * encrypted. Every other request goes straight to the browser's own implementation.
 *
 * No secret ever comes back through here: the worker returns decrypted events of the
 * page's own account and ciphertext for its sends, nothing else.
 */
import type { HookConfig, PageReply, PageRequest } from '../shared/messages.js';
import { MediaHook, type UploadProgress } from './media-hook.js';
import { mediaRouteOf } from './media-routes.js';
import { roomSendBase, routeOf, tokenOf } from './routes.js';
import { SyncSplice } from './sync-splice.js';

(() => {
  const nativeFetch = window.fetch.bind(window);
  /** How long a logout waits for the worker to back up the account's room keys. */
  const LOGOUT_BACKUP_WAIT_MS = 30_000;
  const NativeXHR = window.XMLHttpRequest;

  let port: MessagePort | undefined;
  let allowed = false;
  let homeservers: string[] = [];
  let configured!: () => void;
  const ready = new Promise<void>((resolve) => (configured = resolve));
  // If no bridge ever answers (extension reloading, page not allowed), stop waiting.
  setTimeout(() => configured(), 3000);

  let nextId = 1;
  const pending = new Map<number, (reply: PageReply) => void>();

  window.addEventListener('message', (event: MessageEvent) => {
    if (event.source !== window || port || event.data?.kirjava !== 'bridge-port' || !event.ports[0]) return;
    event.stopImmediatePropagation();
    port = event.ports[0];
    port.onmessage = (message: MessageEvent) => {
      const data = message.data as { type?: string; config?: HookConfig; id?: number; reply?: PageReply };
      if (data.type === 'config' && data.config) {
        allowed = data.config.allowed === true;
        homeservers = data.config.homeservers;
        configured();
      } else if (data.type === 'reply' && typeof data.id === 'number' && data.reply) {
        pending.get(data.id)?.(data.reply);
        pending.delete(data.id);
      }
    };
  });

  function ask(request: PageRequest): Promise<PageReply> {
    if (!port) {
      return Promise.resolve({ ok: false, status: 503, errcode: 'M_UNKNOWN', error: 'Kirjava is not ready' });
    }
    const id = nextId++;
    return new Promise((resolve) => {
      pending.set(id, resolve);
      port!.postMessage({ id, request });
    });
  }

  const media = new MediaHook({
    nativeFetch,
    NativeXHR,
    askKey: async (baseUrl, token, mxc) => {
      const reply = await ask({ kind: 'media-key', baseUrl, token, mxc });
      return reply.ok && 'media' in reply ? reply.media : null;
    },
  });

  const homeserverOf = (url: string) =>
    homeservers.find((base) => url === base || url.startsWith(`${base}/`));

  /** `url` parsed, when it is a Matrix API URL: only those are looked at. */
  const matrixUrlOf = (url: string): URL | undefined => {
    try {
      const parsed = new URL(url, location.href);
      return /\/_matrix\//i.test(parsed.pathname) ? parsed : undefined;
    } catch {
      return undefined;
    }
  };

  function errorResponse(reply: { status: number; errcode: string; error: string }): Response {
    return new Response(JSON.stringify({ errcode: reply.errcode, error: reply.error }), {
      status: reply.status,
      headers: { 'Content-Type': 'application/json' },
    });
  }

  /**
   * The answer to an allowed page's send to a host that is no configured homeserver
   * (another name of one, such as `localhost` or a CNAME, or another server): Kirjava
   * cannot encrypt it, so it never leaves the page. Undefined for anything else.
   */
  function refusedSend(method: string, url: URL): Response | undefined {
    const base = allowed ? roomSendBase(method, url) : undefined;
    if (base === undefined) return undefined;
    return errorResponse({
      status: 403,
      errcode: 'M_FORBIDDEN',
      error: `Kirjava does not handle ${url.host}: messages to it are not encrypted, so this one was not sent. Add ${base} as a homeserver in Kirjava's options if it is yours.`,
    });
  }

  /** A response with a replaced body, keeping status, headers and URL. */
  function withBody(original: Response, body: BodyInit): Response {
    const headers = new Headers(original.headers);
    headers.delete('content-length');
    headers.delete('content-encoding');
    const response = new Response(body, { status: original.status, statusText: original.statusText, headers });
    Object.defineProperty(response, 'url', { value: original.url });
    return response;
  }

  /** The page's request, carried out with Kirjava in the middle. */
  /** `upload`: for media uploads, the page's body Blob and an XHR's progress sink. */
  async function mediated(
    request: Request,
    baseUrl: string,
    upload: { progress?: UploadProgress; body?: Blob } = {},
  ): Promise<Response> {
    const token = tokenOf(request.headers.get('Authorization'), request.url);
    if (token) media.noteToken(baseUrl, token);
    const mediaRoute = mediaRouteOf(baseUrl, request.method, request.url);
    if (mediaRoute) return media.handle(mediaRoute, request, baseUrl, token, upload);
    const route = routeOf(baseUrl, request.method, request.url);
    // Anything not encrypted that names the page's (encrypted) uploads gets their plaintext.
    const inClear = () =>
      media.withPlaintextUploads(request).then(nativeFetch, (error: Error) =>
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
      if (!('send' in reply) || reply.send === 'passthrough') return inClear();
      // Same transaction id, so a retried send stays idempotent on the homeserver.
      const url = new URL(request.url);
      const txn = route.txnId === undefined ? '' : `/${encodeURIComponent(route.txnId)}`;
      url.pathname = url.pathname.slice(0, url.pathname.lastIndexOf(route.sendSegment)) + `/send/m.room.encrypted${txn}`;
      const headers = new Headers(request.headers);
      headers.set('Content-Type', 'application/json');
      return nativeFetch(url.href, { method: request.method, headers, body: reply.send.body, signal: request.signal, credentials: request.credentials });
    }

    if (route.kind === 'search') {
      const reply = await ask({ kind: 'search', baseUrl, token: token!, body: await request.clone().text(), nextBatch: route.nextBatch });
      if (!reply.ok) return errorResponse(reply);
      const body = 'body' in reply && typeof reply.body === 'string' ? reply.body : '{}';
      const response = new Response(body, { status: 200, headers: { 'Content-Type': 'application/json' } });
      Object.defineProperty(response, 'url', { value: request.url });
      return response;
    }

    if (route.kind === 'sync' || route.kind === 'events' || route.kind === 'notifications') {
      // A stopped worker starts (≈ 150–200 ms: the crypto library compiles, the account's
      // store opens) while the homeserver answers: during a long-poll, entirely.
      port?.postMessage({ warm: { kind: 'warm', baseUrl, token: token! } satisfies PageRequest });
    }
    if (route.kind === 'logout') {
      // While the token still works, the worker puts the account's room keys in the key
      // backup, so the logout loses no history. Bounded: a logout is never held up for long.
      const prepared = ask({ kind: 'logout-prepare', baseUrl, token: token! });
      await Promise.race([prepared, new Promise((resolve) => setTimeout(resolve, LOGOUT_BACKUP_WAIT_MS))]);
    }
    const response = await nativeFetch(request);
    if (route.kind === 'logout') {
      if (response.ok) await ask({ kind: 'logout', baseUrl, token: token!, all: route.all });
      return response;
    }
    if (!response.ok) return response;
    if (route.kind === 'sync') return mediatedSync(response, baseUrl, token!);
    const text = await response.text();
    let reply: PageReply;
    if (route.kind === 'login') reply = await ask({ kind: 'login', baseUrl, body: text });
    else if (route.kind === 'notifications') reply = await ask({ kind: 'notifications', baseUrl, token: token!, body: text });
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
  /**
   * Tokens whose last sync the worker answered: their syncs with nothing to wait for go
   * unawaited. A token's first sync always waits (the worker discovers the account and
   * uploads its device keys), and so does the next one after any failure.
   */
  const servedTokens = new Set<string>();
  /** Rooms this page has seen to be encrypted: their counts go to the worker (mentions). */
  const encryptedRooms = new Set<string>();

  async function mediatedSync(response: Response, baseUrl: string, token: string): Promise<Response> {
    const text = await response.clone().text();
    const splice = SyncSplice.of(text, encryptedRooms);
    if (!splice) {
      const reply = await ask({ kind: 'sync', baseUrl, token, body: text });
      if (!reply.ok) return errorResponse(reply);
      return withBody(response, 'body' in reply && typeof reply.body === 'string' ? reply.body : text);
    }
    if (splice.empty) return parsedResponse(response, splice.body);
    if (!splice.needsAnswer && servedTokens.has(token)) {
      // One-time key counts only: the machine gets them, nothing here waits for it.
      void ask({ kind: 'sync', baseUrl, token, body: splice.part }).then((reply) => reply.ok || servedTokens.delete(token));
      return parsedResponse(response, splice.body);
    }
    const reply = await ask({ kind: 'sync', baseUrl, token, body: splice.part });
    // Never hand over a sync whose keys were not processed: the client retries it.
    if (!reply.ok) {
      servedTokens.delete(token);
      return errorResponse(reply);
    }
    servedTokens.add(token);
    const merged = 'body' in reply && typeof reply.body === 'string' ? splice.merge(reply.body) : undefined;
    return merged ? parsedResponse(response, merged, text) : parsedResponse(response, splice.body);
  }

  /**
   * `original`, or (when `value` differs from the body) a response with `value` as its
   * body, whose `json()` hands over `value` itself instead of parsing the body again.
   * Read any other way, the body is `value` as JSON, serialized only if someone reads it
   * (the original text when `value` cannot be serialized: nothing decrypted).
   */
  function parsedResponse(original: Response, value: unknown, originalText?: string): Response {
    let response = original;
    if (originalText !== undefined) {
      void original.body?.cancel();
      const encoder = new TextEncoder();
      const body = new ReadableStream<Uint8Array>({
        pull(controller) {
          let json: string;
          try {
            json = JSON.stringify(value);
          } catch {
            json = originalText;
          }
          controller.enqueue(encoder.encode(json));
          controller.close();
        },
      });
      response = withBody(original, body);
    }
    const nativeJson = response.json;
    Object.defineProperty(response, 'json', {
      configurable: true,
      value(this: Response) {
        if (this !== response || response.bodyUsed) return nativeJson.call(this);
        void response.body?.cancel();
        return Promise.resolve(value);
      },
    });
    return response;
  }

  const urlOf = (input: RequestInfo | URL): string =>
    input instanceof Request ? input.url : input instanceof URL ? input.href : String(input);

  async function kirjavaFetch(input: RequestInfo | URL, init?: RequestInit): Promise<Response> {
    // Parsed first: the URL parser turns `\` into `/` and drops tabs and newlines.
    const url = matrixUrlOf(urlOf(input));
    if (!url) return nativeFetch(input, init);
    await ready;
    const baseUrl = homeserverOf(url.href);
    if (!baseUrl) {
      const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
      return refusedSend(method, url) ?? nativeFetch(input, init);
    }
    return mediated(new Request(input, init), baseUrl, { body: init?.body instanceof Blob ? init.body : undefined });
  }

  Object.defineProperty(window, 'fetch', { value: kirjavaFetch, writable: true, configurable: true, enumerable: true });

  /**
   * XMLHttpRequest for homeserver URLs is carried out with the mediated fetch above and
   * its result presented through the XHR interface; every other URL is the native XHR.
   */
  class KirjavaXHR extends NativeXHR {
    private method = 'GET';
    private url = '';
    private readonly requestHeaders = new Headers();
    private controller: AbortController | undefined;

    open(method: string, url: string | URL, async = true, user?: string | null, password?: string | null): void {
      this.method = method.toUpperCase();
      this.url = new URL(String(url), location.href).href;
      super.open(method, url, async, user, password);
    }

    setRequestHeader(name: string, value: string): void {
      this.requestHeaders.append(name, value);
      super.setRequestHeader(name, value);
    }

    send(body?: Document | XMLHttpRequestBodyInit | null): void {
      const url = matrixUrlOf(this.url);
      if (!url) return super.send(body);
      const controller = (this.controller = new AbortController());
      ready
        .then(() => {
          const baseUrl = homeserverOf(this.url);
          const refused = baseUrl ? undefined : refusedSend(this.method, url);
          if (refused) {
            this.dispatchEvent(new ProgressEvent('loadstart'));
            return this.complete(refused);
          }
          if (!baseUrl) return super.send(body);
          const hasBody = body !== undefined && body !== null && this.method !== 'GET' && this.method !== 'HEAD';
          const request = new Request(this.url, {
            method: this.method,
            headers: this.requestHeaders,
            body: hasBody ? (body as BodyInit) : undefined,
            signal: controller.signal,
            credentials: this.withCredentials ? 'include' : 'same-origin',
          });
          this.dispatchEvent(new ProgressEvent('loadstart'));
          const progress: UploadProgress = (loaded, total) =>
            this.upload.dispatchEvent(new ProgressEvent('progress', { lengthComputable: true, loaded, total }));
          return mediated(request, baseUrl, { progress, body: body instanceof Blob ? body : undefined }).then(
            (response) => this.complete(response),
            () => this.fail(controller.signal.aborted ? 'abort' : 'error'),
          );
        })
        .catch(() => this.fail('error'));
    }

    abort(): void {
      if (this.controller) this.controller.abort();
      else super.abort();
    }

    private define(values: Record<string, unknown>): void {
      for (const [name, value] of Object.entries(values)) {
        Object.defineProperty(this, name, { value, configurable: true });
      }
    }

    private async complete(response: Response): Promise<void> {
      const headerLines = [...response.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
      const type = this.responseType;
      // Media is binary: bytes for arraybuffer and blob. A sync's json() is the object the
      // hook already parsed: no second parse.
      let text = '';
      let parsed: unknown;
      if (type === 'arraybuffer') parsed = await response.arrayBuffer();
      else if (type === 'blob') parsed = await response.blob();
      else if (type === 'json') parsed = await response.json().catch(() => null);
      else parsed = text = await response.text();
      this.define({
        readyState: 4,
        status: response.status,
        statusText: response.statusText,
        responseURL: response.url || this.url,
        response: parsed,
        responseText: type === '' || type === 'text' ? text : undefined,
        getResponseHeader: (name: string) => response.headers.get(name),
        getAllResponseHeaders: () => (headerLines ? `${headerLines}\r\n` : ''),
      });
      for (const name of ['readystatechange', 'load', 'loadend']) {
        this.dispatchEvent(name === 'readystatechange' ? new Event(name) : new ProgressEvent(name));
      }
    }

    private fail(kind: 'error' | 'abort'): void {
      this.define({ readyState: 4, status: 0, statusText: '', response: null, responseText: '' });
      for (const name of ['readystatechange', kind, 'loadend']) {
        this.dispatchEvent(name === 'readystatechange' ? new Event(name) : new ProgressEvent(name));
      }
    }
  }

  Object.defineProperty(window, 'XMLHttpRequest', { value: KirjavaXHR, writable: true, configurable: true, enumerable: false });
})();
