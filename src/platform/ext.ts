/**
 * The browser's extension APIs, wrapped once. Kirjava calls them through
 * `webextension-polyfill` (`browser.*`, promise-based, the same in Chromium and Firefox);
 * this module adds the few things the polyfill does not type or changes:
 *
 * - a message sender's `origin` (Chromium and Firefox report it; the polyfill's types lack it);
 * - which of the two browsers this is, for the few places where they differ (`browserKind`);
 * - host access to exactly the sites and homeservers the user configures (`requestAccess`).
 * - `storage.*.setAccessLevel` (Chromium only);
 * - runtime messages whose receiver stays silent on purpose: the polyfill resolves
 *   `sendMessage` with undefined when no listener answered ("The message port closed
 *   before a response was received", as Firefox does), so `askRuntime` turns undefined
 *   into NoAnswerError. Kirjava's worker answers every request it serves with a value.
 */
import browser, { type DeclarativeNetRequest, type Runtime, type WebRequest } from 'webextension-polyfill';
import { accessPattern } from './origins.ts';

export { browser };
export type { DeclarativeNetRequest, Runtime, WebRequest };

/** The receiver of a runtime message did not answer (it is gone, or it stays silent on purpose). */
export class NoAnswerError extends Error {
  constructor() {
    super('no answer');
    this.name = 'NoAnswerError';
  }
}

/** Sends `message` to the extension's worker; its answer, or NoAnswerError (or the browser's error). */
export async function askRuntime<T>(message: unknown): Promise<T> {
  const reply = (await browser.runtime.sendMessage(message)) as T | undefined;
  if (reply === undefined || reply === null) throw new NoAnswerError();
  return reply;
}

/**
 * Adds a runtime message listener that answers through `sendResponse` when it returns true
 * and not at all when it returns false: no reply, not even an empty one, so the sender sees
 * the channel close. Chromium's own contract, which the polyfill keeps (a listener that
 * returns a promise always answers, undefined included) but its types do not express.
 */
export function onMessageAnsweredLater(
  listener: (message: unknown, sender: Runtime.MessageSender, sendResponse: (reply: unknown) => void) => boolean,
): void {
  browser.runtime.onMessage.addListener(listener as unknown as Runtime.OnMessageListener);
}

/**
 * The web origin of a message's sender as the browser reports it (never one the sender
 * claims; an about:blank frame has its creator's). An opaque origin (sandboxed frame, CSP
 * `sandbox`, data:) is "null" and comes back undefined: it names no site, and the frame's URL
 * is never used instead, since a sandboxed frame's URL names a site whose rights it lacks.
 * Firefox reports `origin` as Chromium does (checked in Firefox 153: "null" for a sandboxed
 * frame whose `url` is the site's); a browser that leaves it out gets no answer, fail closed.
 */
export function senderOrigin(sender: Runtime.MessageSender): string | undefined {
  const origin = (sender as { origin?: unknown }).origin;
  return typeof origin === 'string' && origin !== 'null' ? origin : undefined;
}

/** Whether a message comes from this extension (its worker, pages or content scripts). */
export const fromThisExtension = (sender: Runtime.MessageSender): boolean => sender.id === browser.runtime.id;

type Area = { setAccessLevel?: (options: { accessLevel: string }) => Promise<void> };

/**
 * `setAccessLevel('TRUSTED_CONTEXTS')` on a storage area where the browser has it
 * (Chromium; Firefox keeps `storage.session` from content scripts anyway). False when the
 * browser has no such call.
 */
export async function restrictToExtension(name: 'local' | 'session'): Promise<boolean> {
  const area = (browser.storage as unknown as Record<string, Area | undefined>)[name];
  if (typeof area?.setAccessLevel !== 'function') return false;
  await area.setAccessLevel({ accessLevel: 'TRUSTED_CONTEXTS' });
  return true;
}

/** The webRequest filter of every client-server API request a page makes, to any host. */
export const MATRIX_CLIENT_REQUESTS = { urls: ['*://*/*_matrix/client/*'], types: ['xmlhttprequest' as const] };

/** The two browser families Kirjava runs in; where they differ, see docs/architecture.md, "Two browsers". */
export type BrowserKind = 'chromium' | 'firefox';

/**
 * Which browser runs this extension: `runtime.getBrowserInfo` exists only in Firefox (the
 * polyfill hands Firefox's own `browser` through and wraps Chromium's `chrome`, which lacks it).
 */
export const browserKind: BrowserKind = 'getBrowserInfo' in browser.runtime ? 'firefox' : 'chromium';

const patternsOf = (origins: string[]): string[] =>
  [...new Set(origins.map(accessPattern))].filter((p): p is string => !!p);

/**
 * Asks the user to give Kirjava access to exactly `origins` (sites and homeservers). Firefox
 * MV3 leaves host access to the user and asks only from a click: call it synchronously from
 * the click handler, before any await. Resolves true at once where access is already given
 * (Chromium's `<all_urls>` at install), false when the user refuses.
 */
export function requestAccess(origins: string[]): Promise<boolean> {
  const patterns = patternsOf(origins);
  return browser.permissions.request({ origins: patterns }).catch(async (error: unknown) => {
    // Not from a click (a script's click, a gesture lost to an await): enough where access is given already.
    if (await browser.permissions.contains({ origins: patterns })) return true;
    throw error;
  });
}

/** Whether Kirjava may access every one of `origins` (the user can take access back in Firefox). */
export function hasAccess(origins: string[]): Promise<boolean> {
  return browser.permissions.contains({ origins: patternsOf(origins) });
}

/** Calls `listener` whenever the user gives or takes back host access; returns the unsubscribe. */
export function watchAccess(listener: () => void): () => void {
  browser.permissions.onAdded.addListener(listener);
  browser.permissions.onRemoved.addListener(listener);
  return () => {
    browser.permissions.onAdded.removeListener(listener);
    browser.permissions.onRemoved.removeListener(listener);
  };
}
