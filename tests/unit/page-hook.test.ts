/**
 * The page hook's parts, loaded in Node: the Responses it hands the page (Matrix errors,
 * replaced bodies, a sync whose `json()` is the object already parsed, refused sends), and
 * its port to the bridge (the first port offer only, the frame's configuration, replies
 * matched to their requests whatever order they come back in).
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { HookPort, type OfferSource } from '../../src/content/hook-port.ts';
import { errorResponse, parsedResponse, refusedSend, withBody } from '../../src/content/responses.ts';
import type { MediaHook } from '../../src/content/media-hook.ts';
import { PageFetch } from '../../src/content/page-fetch.ts';
import { matrixUrlOf } from '../../src/content/routes.ts';
import type { HookPortMessage, PageReply, PageRequest } from '../../src/shared/page.ts';

const BASE = 'https://matrix.example.org';

describe('The hook’s responses', () => {
  it('a Matrix error carries errcode and error as JSON, with the status', async () => {
    const response = errorResponse({ status: 503, errcode: 'M_UNKNOWN', error: 'Kirjava is locked' });
    assert.equal(response.status, 503);
    assert.equal(response.headers.get('content-type'), 'application/json');
    assert.deepEqual(await response.json(), { errcode: 'M_UNKNOWN', error: 'Kirjava is locked' });
  });

  it('a replaced body keeps status, headers and URL, but drops the original length and encoding', async () => {
    const original = new Response('{"chunk":["ciphertext"]}', {
      status: 200,
      statusText: 'OK',
      headers: {
        'Content-Type': 'application/json',
        'Content-Length': '24',
        'Content-Encoding': 'gzip',
        'X-Kept': 'yes',
      },
    });
    Object.defineProperty(original, 'url', { value: `${BASE}/_matrix/client/v3/rooms/!r/messages` });
    const replaced = withBody(original, '{"chunk":["plaintext"]}');
    assert.equal(replaced.status, 200);
    assert.equal(replaced.url, original.url);
    assert.equal(replaced.headers.get('x-kept'), 'yes');
    assert.equal(replaced.headers.get('content-length'), null);
    assert.equal(replaced.headers.get('content-encoding'), null);
    assert.equal(await replaced.text(), '{"chunk":["plaintext"]}');
  });

  it('a spliced sync hands the page the parsed object from json(), and its JSON to any other reader', async () => {
    const merged = {
      next_batch: 's2',
      rooms: { join: { '!r': { timeline: { events: [{ type: 'm.room.message' }] } } } },
    };
    const fromJson = parsedResponse(new Response('{"next_batch":"s2"}'), merged, '{"next_batch":"s2"}');
    assert.equal(await fromJson.json(), merged, 'json() is the very object, not a second parse');
    const fromText = parsedResponse(new Response('{"next_batch":"s2"}'), merged, '{"next_batch":"s2"}');
    assert.deepEqual(JSON.parse(await fromText.text()), merged);
  });

  it('an unchanged sync keeps its body and still answers json() with the parsed object', async () => {
    const body = { next_batch: 's3' };
    const response = parsedResponse(new Response(JSON.stringify(body)), body);
    assert.equal(await response.json(), body);
  });

  it('an allowed page’s room send to an unconfigured host is refused; anything else passes', async () => {
    const send = new URL('https://localhost:8008/_matrix/client/v3/rooms/!r/send/m.room.message/1');
    const refused = refusedSend(true, 'PUT', send);
    assert.equal(refused?.status, 403);
    assert.equal((await refused!.json()).errcode, 'M_FORBIDDEN');
    assert.equal(refusedSend(false, 'PUT', send), undefined, 'a page not allowed is left alone');
    assert.equal(refusedSend(true, 'GET', new URL('https://localhost:8008/_matrix/client/v3/sync')), undefined);
  });

  it('only Matrix API URLs are looked at, relative ones resolved against the page', () => {
    assert.equal(
      matrixUrlOf('/_matrix/client/v3/sync', 'https://app.example.org/')?.href,
      'https://app.example.org/_matrix/client/v3/sync',
    );
    assert.equal(matrixUrlOf('https://cdn.example.org/app.js', 'https://app.example.org/'), undefined);
    assert.equal(matrixUrlOf('http://[bad', 'https://app.example.org/'), undefined);
  });
});

/** A window that delivers the bridge's (or a forger's) port offer to the hook. */
function fakeWindow() {
  const listeners: ((event: MessageEvent) => void)[] = [];
  const window: OfferSource & { offer(port: MessagePort, data?: unknown, source?: unknown): void } = {
    addEventListener: (_type, listener) => void listeners.push(listener),
    offer(port, data = { kirjava: 'bridge-port' }, source = window) {
      const event = { source, data, ports: [port], stopImmediatePropagation() {} } as unknown as MessageEvent;
      for (const listener of listeners) listener(event);
    },
  };
  return window;
}

describe('The hook’s port to the bridge', () => {
  const channels: MessageChannel[] = [];
  const channel = () => {
    const made = new MessageChannel();
    channels.push(made);
    return made;
  };
  after(() => channels.forEach(({ port1, port2 }) => (port1.close(), port2.close())));

  it('without a bridge, a request is answered at once: Kirjava is not ready', async () => {
    const port = new HookPort(fakeWindow(), 10);
    const reply = await port.ask({ kind: 'warm', baseUrl: BASE, token: 't' });
    assert.deepEqual(reply, { ok: false, status: 503, errcode: 'M_UNKNOWN', error: 'Kirjava is not ready' });
    await port.ready; // gives up waiting for a configuration
  });

  it('takes the bridge’s configuration, and answers each request with its own reply, in any order', async () => {
    const window = fakeWindow();
    const hook = new HookPort(window, 60_000);
    const { port1: bridge, port2 } = channel();
    window.offer(port2);
    const asked: HookPortMessage[] = [];
    bridge.onmessage = (event) => asked.push(event.data);
    bridge.postMessage({ type: 'config', config: { allowed: true, homeservers: [BASE] } });
    await hook.ready;
    assert.equal(hook.allowed, true);
    assert.equal(hook.homeserverOf(`${BASE}/_matrix/client/v3/sync`), BASE);
    assert.equal(hook.homeserverOf('https://matrix.example.org.evil/_matrix'), undefined);

    const requests: PageRequest[] = [
      { kind: 'sync', baseUrl: BASE, token: 't', body: '{}' },
      { kind: 'events', baseUrl: BASE, token: 't', roomId: '!r', body: '{}' },
    ];
    const replies = requests.map((request) => hook.ask(request));
    hook.warm({ kind: 'warm', baseUrl: BASE, token: 't' });
    while (asked.length < 3) await new Promise((resolve) => setTimeout(resolve, 5));
    assert.deepEqual(asked[2], { warm: { kind: 'warm', baseUrl: BASE, token: 't' } });
    const [first, second] = asked as { id: number; request: PageRequest }[];
    assert.deepEqual([first.request, second.request], requests);
    bridge.postMessage({ type: 'reply', id: second.id, reply: { ok: true, body: 'second' } });
    bridge.postMessage({ type: 'reply', id: first.id, reply: { ok: true, body: 'first' } });
    assert.deepEqual(await Promise.all(replies), [
      { ok: true, body: 'first' },
      { ok: true, body: 'second' },
    ]);
  });

  it('takes the first port offer only, and none that did not come from its own window', async () => {
    const window = fakeWindow();
    const hook = new HookPort(window, 60_000);
    const forged = channel();
    window.offer(forged.port2, { kirjava: 'bridge-port' }, {});
    window.offer(forged.port2, { kirjava: 'something else' });
    const real = channel();
    window.offer(real.port2);
    const late = channel();
    window.offer(late.port2);
    late.port1.onmessage = () => assert.fail('the hook spoke to a later offer');
    forged.port1.onmessage = () => assert.fail('the hook spoke to a forged offer');
    real.port1.onmessage = (event) => real.port1.postMessage({ type: 'reply', id: event.data.id, reply: { ok: true } });
    assert.deepEqual(await hook.ask({ kind: 'warm', baseUrl: BASE, token: 't' }), { ok: true });
  });
});

describe('The hook’s fetch', () => {
  /** A PageFetch over fakes: the worker's replies by kind, and what reached the network. */
  function pageFetchWith(replies: Partial<Record<PageRequest['kind'], PageReply>>) {
    const asked: PageRequest[] = [];
    const wire: Array<{ url: string; method: string; body: string }> = [];
    const port = {
      ready: Promise.resolve(),
      allowed: true,
      homeserverOf: (url: string) => (url.startsWith(`${BASE}/`) ? BASE : undefined),
      ask: async (request: PageRequest) => {
        asked.push(request);
        return replies[request.kind] ?? { ok: false, status: 500, errcode: 'M_UNKNOWN', error: 'unexpected' };
      },
      warm: () => {},
    } as unknown as HookPort;
    const media = {
      noteToken: () => {},
      encryptedContent: () => undefined,
      withPlaintextUploads: async (request: Request) => request,
    } as unknown as MediaHook;
    const nativeFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
      const request = new Request(input, init);
      wire.push({ url: request.url, method: request.method, body: await request.text() });
      return new Response(JSON.stringify({ event_id: '$e', notifications: [], next_token: 'n2' }), {
        status: 200,
        headers: { 'Content-Type': 'application/json' },
      });
    }) as typeof fetch;
    const hook = new PageFetch({ nativeFetch, port, media, pageUrl: () => 'https://app.example.org/' });
    return { hook, asked, wire };
  }
  const headers = { Authorization: 'Bearer t', 'Content-Type': 'application/json' };
  const everyByte = (id: string) =>
    [...new TextEncoder().encode(id)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

  it('a send into an unencrypted room goes out with its room id spelled canonically, body unchanged', async () => {
    const { hook, asked, wire } = pageFetchWith({ send: { ok: true, send: 'passthrough' } });
    const room = '!plain:example.org';
    const body = JSON.stringify({ msgtype: 'm.text', body: 'hello' });
    const response = await hook.fetch(`${BASE}/_matrix/client/v3/rooms/${everyByte(room)}/send/m.room.message/t1`, {
      method: 'PUT',
      headers,
      body,
    });
    assert.equal(response.status, 200);
    assert.equal(asked[0]?.kind === 'send' && asked[0].roomId, room);
    assert.deepEqual(wire, [
      { url: `${BASE}/_matrix/client/v3/rooms/!plain%3Aexample.org/send/m.room.message/t1`, method: 'PUT', body },
    ]);
  });

  it('only=highlight is asked of the server as the full list, and the worker filters it', async () => {
    const filtered = JSON.stringify({ notifications: [], next_token: 'n2' });
    const { hook, asked, wire } = pageFetchWith({ notifications: { ok: true, body: filtered } });
    const response = await hook.fetch(`${BASE}/_matrix/client/v3/notifications?from=n1&only=highlight&limit=5`, {
      headers,
    });
    assert.equal(await response.text(), filtered);
    assert.deepEqual(
      wire.map((w) => w.url),
      [`${BASE}/_matrix/client/v3/notifications?from=n1&limit=5`],
    );
    const request = asked.find((a) => a.kind === 'notifications');
    assert.equal(request?.kind === 'notifications' && request.onlyHighlight, true);
  });
});
