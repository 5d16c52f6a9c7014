/**
 * Turns what users type into "Homeserver URL" into the base URL of a homeserver that answers:
 * a server name (`example.org`) or a user id (`@alice:example.org`) through the server's
 * `/.well-known/matrix/client` (spec: client-server API, "Server Discovery"), a full base URL
 * as is; each checked with `GET /_matrix/client/versions` before it is saved. A client's page
 * URL or an API path is refused with a message that says what to enter instead: Kirjava
 * handles only the traffic to the URLs listed, so a wrong one leaves the client unprotected.
 */
import { normalizeBaseUrl } from '../shared/messages.ts';
import type { ParsedEntry } from './entry-input.ts';
import { t } from '../platform/i18n.ts';

/** How long one discovery request may take. */
const REQUEST_TIMEOUT_MS = 8_000;

/** A host name, IPv4 or bracketed IPv6 address, with an optional port. */
const SERVER_NAME = /^(?:[\w-]+(?:\.[\w-]+)*\.?|\[[0-9a-f:.]+\])(?::\d{1,5})?$/i;

/** A host on this computer or a private network: plain http:// is fine there, nowhere else. */
function isLocalHost(hostname: string): boolean {
  return (
    hostname === 'localhost' ||
    hostname.endsWith('.localhost') ||
    hostname === '[::1]' ||
    /^127\.|^10\.|^192\.168\.|^172\.(1[6-9]|2\d|3[01])\./.test(hostname)
  );
}

type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

/** The homeserver's base URL and the versions it speaks, or why it does not answer as one. */
async function checkVersions(baseUrl: string, fetchFn: Fetch): Promise<string | null> {
  try {
    const response = await fetchFn(`${baseUrl}/_matrix/client/versions`, {
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    if (!response.ok) return t('homeserverInput_versionsStatus', response.status);
    const body = (await response.json().catch(() => null)) as { versions?: unknown } | null;
    return Array.isArray(body?.versions) ? null : t('homeserverInput_versionsNotMatrix');
  } catch (error) {
    return t('homeserverInput_versionsNoAnswer', error instanceof Error ? error.message : String(error));
  }
}

/** The base URL a server name's `/.well-known/matrix/client` names, or why there is none. */
async function wellKnown(origin: string, fetchFn: Fetch): Promise<{ baseUrl: string } | { problem: string }> {
  const url = `${origin}/.well-known/matrix/client`;
  try {
    const response = await fetchFn(url, { signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    if (!response.ok) return { problem: t('homeserverInput_wellKnownStatus', url, response.status) };
    const body = (await response.json().catch(() => null)) as { 'm.homeserver'?: { base_url?: unknown } } | null;
    const base = body?.['m.homeserver']?.base_url;
    if (typeof base !== 'string') return { problem: t('homeserverInput_wellKnownNoBaseUrl', url) };
    const baseUrl = normalizeBaseUrl(base);
    // A well-known may name plain http; only a homeserver on this computer or network may use it.
    const named = URL.canParse(baseUrl) ? new URL(baseUrl) : undefined;
    if (named?.protocol === 'http:' && !isLocalHost(named.hostname)) {
      return { problem: t('homeserverInput_wellKnownPlainHttp', url, baseUrl) };
    }
    return { baseUrl };
  } catch (error) {
    return {
      problem: t('homeserverInput_wellKnownUnreadable', url, error instanceof Error ? error.message : String(error)),
    };
  }
}

/** A server name (`example.org`, `localhost:8008`): its well-known homeserver, or the name itself. */
async function resolveServerName(name: string, fetchFn: Fetch): Promise<ParsedEntry> {
  const host = name.replace(/:\d+$/, '');
  const origins = isLocalHost(host) ? [`https://${name}`, `http://${name}`] : [`https://${name}`];
  const problems: string[] = [];
  for (const origin of origins) {
    const found = await wellKnown(origin, fetchFn);
    if ('baseUrl' in found) {
      const broken = await checkVersions(found.baseUrl, fetchFn);
      if (!broken) return { ok: true, entry: found.baseUrl };
      problems.push(t('homeserverInput_wellKnownBaseDead', found.baseUrl, broken));
      continue;
    }
    problems.push(found.problem);
    // Without a well-known, the server name may be the homeserver itself.
    if (!(await checkVersions(origin, fetchFn))) return { ok: true, entry: origin };
  }
  return { ok: false, error: t('homeserverInput_notFound', name, problems.join('; ')) };
}

/** A typed URL: refused when it is a page or an API path, else checked (or resolved via its host). */
async function resolveUrl(typed: string, fetchFn: Fetch): Promise<ParsedEntry> {
  let url: URL;
  try {
    url = new URL(typed);
  } catch {
    return { ok: false, error: t('homeserverInput_notAUrl', typed) };
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    return { ok: false, error: t('homeserverInput_wrongScheme') };
  }
  if (!SERVER_NAME.test(url.host)) {
    return { ok: false, error: t('homeserverInput_notAUrl', typed) };
  }
  const apiAt = url.pathname.indexOf('/_matrix/');
  if (apiAt >= 0) {
    const base = url.origin + url.pathname.slice(0, apiAt);
    return { ok: false, error: t('homeserverInput_apiPath', typed, base) };
  }
  if (url.hash || url.search) {
    return { ok: false, error: t('homeserverInput_clientPage', typed) };
  }
  if (url.protocol === 'http:' && !isLocalHost(url.hostname)) {
    const secure = `https://${url.host}${url.pathname.replace(/\/+$/, '')}`;
    return { ok: false, error: t('homeserverInput_plainHttp', secure) };
  }
  const base = normalizeBaseUrl(typed);
  const broken = await checkVersions(base, fetchFn);
  if (!broken) return { ok: true, entry: base };
  // `https://example.org` for a server at matrix.example.org: its well-known says where.
  if (url.pathname === '/') {
    const found = await wellKnown(url.origin, fetchFn);
    if ('baseUrl' in found && !(await checkVersions(found.baseUrl, fetchFn))) return { ok: true, entry: found.baseUrl };
  }
  return { ok: false, error: t('homeserverInput_notAnswering', base, broken) };
}

/**
 * What the user typed into "Homeserver URL", as the base URL to save: a URL, a server name
 * or a user id, resolved and checked; or the message that says what to enter.
 */
export async function resolveHomeserver(input: string, fetchFn: Fetch = fetch): Promise<ParsedEntry> {
  const typed = input.trim();
  if (typed === '') return { ok: false, error: t('homeserverInput_empty') };
  if (typed.includes('://')) return resolveUrl(typed, fetchFn);
  const name = typed.startsWith('@') ? typed.slice(typed.indexOf(':') + 1) : typed;
  if (typed.startsWith('@') && !typed.includes(':')) {
    return { ok: false, error: t('homeserverInput_notAFullUserId', typed) };
  }
  if (!SERVER_NAME.test(name)) {
    return { ok: false, error: t('homeserverInput_notAHomeserver', typed) };
  }
  return resolveServerName(name, fetchFn);
}
