/**
 * The benchmark's homeserver on 127.0.0.1: the unit tests' fake homeserver (keys upload,
 * query, claim, to-device, members, encryption state) over real HTTP, plus what a page
 * needs: a blank page to run in (its origin is the allowed site), `whoami`, `/sync`
 * bodies chosen by name, `/messages` and room sends. Loopback and in-process, so the
 * server's own cost is as small and as steady as it gets.
 */
import { createServer, type IncomingMessage } from 'node:http';
import { FakeHomeserver } from '../tests/fixtures/fake-homeserver.ts';
import { freePort } from '../tests/fixtures/net.ts';

type Json = Record<string, any>;

export interface BenchServer {
  baseUrl: string;
  /** The same server on another port: another origin, one Kirjava does not serve. */
  otherOriginUrl: string;
  hs: FakeHomeserver;
  /** `/sync?bench=NAME` serves `syncs.get(NAME)()`. */
  syncs: Map<string, () => string>;
  /** room id → its /messages chunk */
  histories: Map<string, Json[]>;
  /** Maps an access token to its device, for whoami. */
  whoami: Map<string, { user_id: string; device_id: string }>;
  sends: number;
  close(): Promise<void>;
}

const PAGE = '<!doctype html><meta charset="utf-8"><title>Kirjava bench</title><p>bench page</p>';

async function bodyOf(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of request) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function startBenchServer(): Promise<BenchServer> {
  const port = await freePort();
  const otherPort = await freePort();
  const baseUrl = `http://127.0.0.1:${port}`;
  const hs = new FakeHomeserver();
  const state: BenchServer = {
    baseUrl,
    otherOriginUrl: `http://127.0.0.1:${otherPort}`,
    hs,
    syncs: new Map(),
    histories: new Map(),
    whoami: new Map(),
    sends: 0,
    close: async () => {
      await new Promise((done) => server.close(() => done(undefined)));
      await new Promise((done) => other.close(() => done(undefined)));
    },
  };
  const server = createServer(async (request, response) => {
    const url = new URL(request.url ?? '/', baseUrl);
    const send = (status: number, body: string, type = 'application/json') => {
      response.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store' });
      response.end(body);
    };
    const path = url.pathname.replace(/^\/_matrix\/client\/v3/, '');
    const token = request.headers.authorization?.replace(/^Bearer /, '');
    if (url.pathname === '/bench.html') return send(200, PAGE, 'text/html; charset=utf-8');
    // The options page checks a homeserver (`GET /_matrix/client/versions`) before it saves it.
    if (url.pathname === '/_matrix/client/versions') {
      response.writeHead(200, { 'Content-Type': 'application/json', 'Access-Control-Allow-Origin': '*' });
      return response.end(JSON.stringify({ versions: ['v1.11', 'v1.12'], unstable_features: {} }));
    }
    if (path === '/account/whoami' && token && state.whoami.has(token))
      return send(200, JSON.stringify(state.whoami.get(token)));
    if (path === '/sync') {
      const body = state.syncs.get(url.searchParams.get('bench') ?? '');
      if (!body) return send(404, JSON.stringify({ errcode: 'M_NOT_FOUND', error: 'no such bench sync' }));
      // `hold=MS`: a long-poll the homeserver answers MS later, when an event arrives.
      const hold = Number(url.searchParams.get('hold') ?? 0);
      if (hold > 0) await new Promise((resolve) => setTimeout(resolve, hold));
      return send(200, body());
    }
    const room = /^\/rooms\/([^/]+)\/(messages|send\/.*)$/.exec(path);
    if (room && room[2] === 'messages' && request.method === 'GET') {
      const chunk = state.histories.get(decodeURIComponent(room[1])) ?? [];
      return send(200, JSON.stringify({ chunk, start: 't1', end: 't0', state: [] }));
    }
    if (room && room[2].startsWith('send/') && request.method === 'PUT') {
      await bodyOf(request);
      state.sends++;
      return send(200, JSON.stringify({ event_id: `$sent${state.sends}` }));
    }
    const body = await bodyOf(request);
    const answer = await hs.fetchFn(`${hs.baseUrl}${url.pathname}${url.search}`, {
      method: request.method,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      body: body || undefined,
    });
    send(answer.status, await answer.text());
  });
  await new Promise<void>((done) => server.listen(port, '127.0.0.1', () => done()));
  const other = createServer((request, response) => server.emit('request', request, response));
  await new Promise<void>((done) => other.listen(otherPort, '127.0.0.1', () => done()));
  return state;
}
