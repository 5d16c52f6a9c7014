/**
 * Which client-server API endpoints Kirjava takes part in (Matrix spec, client-server
 * API; the r0, v3 and unstable prefixes are all accepted), from a request's method and URL.
 */
export type Route =
  | { kind: 'login' }
  | { kind: 'logout'; all: boolean }
  | { kind: 'sync' }
  /** `onlyHighlight`: the page asked for `only=highlight` (which Kirjava answers itself). */
  | { kind: 'notifications'; onlyHighlight: boolean }
  /** `POST /search`; `nextBatch` is the `next_batch` query parameter. */
  | { kind: 'search'; nextBatch?: string }
  | { kind: 'events'; roomId: string }
  | {
      kind: 'send';
      roomId: string;
      eventType: string;
      /** Absent for the legacy `POST .../send/{eventType}` without a transaction id. */
      txnId?: string;
      /** The `/send/...` part of the path as the page wrote it, to be replaced. */
      sendSegment: string;
    };

const PREFIX = /^\/_matrix\/client\/(?:r0|v3|v1|api\/v1|unstable)(\/.*)$/;

/** Like decodeURIComponent, but a malformed escape stays as written (as Synapse's unquote). */
const lenientDecode = (segment: string): string =>
  segment.replace(/(%[0-9a-fA-F]{2})+/g, (run) => {
    try {
      return decodeURIComponent(run);
    } catch {
      return run;
    }
  });

/** Decodes one path segment; undefined for malformed percent-encoding. */
export const decode = (segment: string): string | undefined => {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
};

/**
 * The URL parsed and its path below the homeserver's base URL (which may have a path of
 * its own); undefined for another origin, a path outside the base, or a malformed URL.
 */
export function underBase(baseUrl: string, url: string): { parsed: URL; path: string } | undefined {
  try {
    const parsed = new URL(url);
    const base = new URL(baseUrl);
    const basePath = base.pathname.replace(/\/$/, '');
    if (parsed.origin !== base.origin || !parsed.pathname.startsWith(`${basePath}/`)) return undefined;
    return { parsed, path: parsed.pathname.slice(basePath.length) };
  } catch {
    return undefined;
  }
}

/**
 * The route of a request to the homeserver at `baseUrl`; undefined for an endpoint Kirjava
 * leaves alone or a URL outside the homeserver.
 */
export function routeOf(baseUrl: string, method: string, url: string): Route | undefined {
  const path = underBase(baseUrl, url)?.path;
  if (path === undefined) return undefined;
  const rest = PREFIX.exec(path)?.[1];
  if (!rest) return undefined;
  method = method.toUpperCase();
  if (method === 'POST' && rest === '/login') return { kind: 'login' };
  if (method === 'POST' && (rest === '/logout' || rest === '/logout/all')) {
    return { kind: 'logout', all: rest === '/logout/all' };
  }
  if (method === 'GET' && rest === '/sync') return { kind: 'sync' };
  if (method === 'GET' && rest === '/notifications') {
    return { kind: 'notifications', onlyHighlight: new URL(url).searchParams.get('only') === 'highlight' };
  }
  if (method === 'POST' && rest === '/search') {
    return { kind: 'search', nextBatch: new URL(url).searchParams.get('next_batch') ?? undefined };
  }
  const room = /^\/rooms\/([^/]+)\/(.*)$/.exec(rest);
  if (!room) return undefined;
  // A send is routed even with a malformed room id (Synapse would accept it); reads are not.
  const roomId = decode(room[1]);
  const sendRoomId = roomId ?? lenientDecode(room[1]);
  const tail = room[2];
  if (
    roomId !== undefined &&
    method === 'GET' &&
    (tail === 'messages' ||
      tail === 'threads' ||
      /^(context|event)\/[^/]+$/.test(tail) ||
      /^relations\/[^/]+(\/[^/]+){0,2}$/.test(tail))
  ) {
    return { kind: 'events', roomId };
  }
  // Synapse accepts an empty txn id and, for POST, none at all: both must be routed.
  const send = /^send\/([^/]+)(?:\/([^/]*))?$/.exec(tail);
  if (send && (method === 'PUT' || method === 'POST') && (send[2] !== undefined || method === 'POST')) {
    return {
      kind: 'send',
      roomId: sendRoomId,
      eventType: lenientDecode(send[1]),
      txnId: send[2] === undefined ? undefined : lenientDecode(send[2]),
      sendSegment: send[2] === undefined ? `/send/${send[1]}` : `/send/${send[1]}/${send[2]}`,
    };
  }
  return undefined;
}

/** A room id as the spec has it: `!`, then printable ASCII without `/`, at most 255 bytes. */
const ROOM_ID = /^![\x21-\x2e\x30-\x7e]{1,254}$/;

/**
 * A room send's URL with its room id in the one spelling the send guard's allow rules expect
 * (`encodeURIComponent`): a page may write `%21r%3ax` or every byte escaped, and an
 * unencrypted room's send must not be blocked for that. Unchanged when the id the page
 * wrote does not decode to a valid room id (the homeserver is left to refuse it).
 */
export function canonicalSendUrl(url: string): string {
  const parsed = new URL(url);
  const match = /^(.*?\/_matrix\/client\/(?:r0|v3|v1|api\/v1|unstable)\/rooms\/)([^/]+)(\/send\/.*)$/.exec(
    parsed.pathname,
  );
  if (!match) return url;
  const roomId = decode(match[2]);
  if (roomId === undefined || !ROOM_ID.test(roomId)) return url;
  const canonical = encodeURIComponent(roomId);
  if (canonical === match[2]) return url;
  parsed.pathname = `${match[1]}${canonical}${match[3]}`;
  return parsed.href;
}

/** A `/notifications` URL without `only`: the full list, which Kirjava filters after decryption. */
export function withoutOnly(url: string): string {
  const parsed = new URL(url);
  parsed.searchParams.delete('only');
  return parsed.href;
}

/**
 * The path of a room send on any homeserver, as loosely as the send guard's block rules
 * spell it (any prefix, extra segments, doubled slashes, any case).
 */
const ANY_ROOM_SEND = /\/_matrix\/.*client\/.*\/rooms\/.*\/send\//i;

/**
 * For a `PUT`/`POST` that sends a room event to whatever host `url` names: the base URL
 * that host would need to be configured with (everything before `/_matrix/`); undefined
 * for any other request.
 */
export function roomSendBase(method: string, url: URL): string | undefined {
  method = method.toUpperCase();
  if (method !== 'PUT' && method !== 'POST') return undefined;
  const match = ANY_ROOM_SEND.exec(url.pathname);
  return match ? url.origin + url.pathname.slice(0, match.index) : undefined;
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

/** `url` parsed against `base`, when it is a Matrix API URL: only those are looked at. */
export function matrixUrlOf(url: string, base: string): URL | undefined {
  try {
    const parsed = new URL(url, base);
    return /\/_matrix\//i.test(parsed.pathname) ? parsed : undefined;
  } catch {
    return undefined;
  }
}
