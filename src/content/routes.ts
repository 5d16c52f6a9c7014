/**
 * Which client-server API endpoints Kirjava takes part in (Matrix spec, client-server
 * API; the r0, v3 and unstable prefixes are all accepted), from a request's method and URL.
 */
export type Route =
  | { kind: 'login' }
  | { kind: 'logout'; all: boolean }
  | { kind: 'sync' }
  | { kind: 'events'; roomId: string }
  | { kind: 'send'; roomId: string; eventType: string; txnId: string; sendSegment: string };

const PREFIX = /^\/_matrix\/client\/(?:r0|v3|v1|unstable)(\/.*)$/;

const decode = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
};

export function routeOf(baseUrl: string, method: string, url: string): Route | undefined {
  let path: string;
  try {
    const parsed = new URL(url);
    const base = new URL(baseUrl);
    if (parsed.origin !== base.origin) return undefined;
    path = parsed.pathname.slice(base.pathname.replace(/\/$/, '').length);
  } catch {
    return undefined;
  }
  const rest = PREFIX.exec(path)?.[1];
  if (!rest) return undefined;
  method = method.toUpperCase();
  if (method === 'POST' && rest === '/login') return { kind: 'login' };
  if (method === 'POST' && (rest === '/logout' || rest === '/logout/all')) {
    return { kind: 'logout', all: rest === '/logout/all' };
  }
  if (method === 'GET' && rest === '/sync') return { kind: 'sync' };
  const room = /^\/rooms\/([^/]+)\/(.*)$/.exec(rest);
  if (!room) return undefined;
  const roomId = decode(room[1]);
  if (!roomId) return undefined;
  const tail = room[2];
  if (method === 'GET' && (tail === 'messages' || /^(context|event)\/[^/]+$/.test(tail))) {
    return { kind: 'events', roomId };
  }
  const send = /^send\/([^/]+)\/([^/]+)$/.exec(tail);
  if (send && (method === 'PUT' || method === 'POST')) {
    const eventType = decode(send[1]);
    const txnId = decode(send[2]);
    if (eventType === undefined || txnId === undefined) return undefined;
    return { kind: 'send', roomId, eventType, txnId, sendSegment: `/send/${send[1]}/${send[2]}` };
  }
  return undefined;
}

/** The access token of a request: the Authorization header, or the legacy query parameter. */
export function tokenOf(authorization: string | null, url: string): string | undefined {
  const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
  if (bearer) return bearer;
  try {
    return new URL(url).searchParams.get('access_token') ?? undefined;
  } catch {
    return undefined;
  }
}
