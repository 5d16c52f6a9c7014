/**
 * Which web origin a request or message came from, as the browser reports it: plain functions
 * of the browser's records (no extension API here), so Node tests check them. The two browsers
 * report a webRequest's origin differently: Chromium as `initiator` (an origin, "null" when
 * opaque), Firefox as `originUrl` (the full URL of the document or worker that started it, and
 * nothing at all for a sandboxed frame).
 */

/** Whether an origin is a web page's (not an extension's, a file's or an opaque one). */
const isWebOrigin = (origin: string | undefined): origin is string =>
  !!origin && (origin.startsWith('https://') || origin.startsWith('http://'));

/** The fields of a webRequest event's details that name who started the request. */
export interface RequestStarter {
  /** Chromium: the origin that started the request ("null" when opaque). */
  initiator?: string;
  /** Firefox: the URL of the document or worker that started the request. */
  originUrl?: string;
}

/**
 * The web origin that started a request: Chromium's `initiator`, else the origin of Firefox's
 * `originUrl` (a `blob:` URL names its creator's origin). Undefined when there is none, or it
 * is opaque, an extension's (`chrome-extension:`, `moz-extension:`) or not http(s): such a
 * request names no site.
 */
export function requestOrigin(details: RequestStarter): string | undefined {
  if (details.initiator !== undefined) return isWebOrigin(details.initiator) ? details.initiator : undefined;
  if (!details.originUrl) return undefined;
  let origin: string;
  try {
    origin = new URL(details.originUrl).origin;
  } catch {
    return undefined;
  }
  return isWebOrigin(origin) ? origin : undefined;
}

/**
 * The host-permission match pattern for every URL of `origin` (a site or a homeserver base
 * URL): scheme and host, without the port, which Firefox's match patterns cannot hold (so the
 * grant covers the host's other ports too). Undefined for anything but an http(s) URL.
 */
export function accessPattern(origin: string): string | undefined {
  let url: URL;
  try {
    url = new URL(origin);
  } catch {
    return undefined;
  }
  return url.protocol === 'https:' || url.protocol === 'http:' ? `${url.protocol}//${url.hostname}/*` : undefined;
}
