/**
 * Every message that crosses a context boundary in Kirjava, in one place.
 *
 * page hook  --(MessagePort)-->  bridge  --(runtime.sendMessage)-->  background worker
 * popup / options  --(runtime.sendMessage)-->  background worker
 *
 * Nothing a page sends is trusted: the worker checks the sender's origin against the
 * allowed sites and the access token against the account it belongs to.
 */

/** What the MAIN-world hook asks of the worker, on behalf of the page's own request. */
export type PageRequest =
  /** The body of a successful `POST /login` response: the worker learns the account. */
  | { kind: 'login'; baseUrl: string; body: string }
  /** A `/sync` response body to be fed to the crypto machine and decrypted. */
  | { kind: 'sync'; baseUrl: string; token: string; body: string }
  /** A history response (`/messages`, `/context/{id}`, `/event/{id}`) to be decrypted. */
  | { kind: 'events'; baseUrl: string; token: string; roomId: string; body: string }
  /** A `PUT /rooms/{roomId}/send/{eventType}/{txnId}` the page is about to make. */
  | {
      kind: 'send';
      baseUrl: string;
      token: string;
      roomId: string;
      eventType: string;
      /** Absent for the legacy `POST .../send/{eventType}`. */
      txnId?: string;
      body: string;
    }
  /** The page logged out (`/logout`, `/logout/all`) with this token. */
  | { kind: 'logout'; baseUrl: string; token: string; all: boolean };

/** A Matrix error the hook turns into an HTTP response the client can show. */
export interface MatrixErrorReply {
  ok: false;
  status: number;
  errcode: string;
  error: string;
}

export type PageReply =
  /** Replace the response body with `body` (sync, events); or nothing to change. */
  | { ok: true; body?: string }
  /** For sends: send `body` as `eventType` instead (an encrypted room), or pass through. */
  | { ok: true; send: { eventType: string; body: string } | 'passthrough' }
  | MatrixErrorReply;

/** Envelope the bridge wraps around a page request for the worker. */
export interface BridgeMessage {
  channel: 'kirjava:page';
  request: PageRequest;
}

/** State of one account as the popup shows it. */
export type AccountState = 'active' | 'waiting-for-login' | 'error';

export interface AccountView {
  /** Stable id of (homeserver, user, device); UI requests name the account by it. */
  id: string;
  baseUrl: string;
  userId: string;
  deviceId: string;
  /** The device's ed25519 key, unpadded base64, as Element shows it ("session key"). */
  ed25519: string | null;
  state: AccountState;
  /** What went wrong and what the user can do about it, when state is 'error'. */
  error?: string;
}

/**
 * Requests from the extension's own pages (popup, options), keyed by `kind`. Each
 * feature adds its requests here as `kind → { request fields; reply }`; the worker's
 * handlers are registered per kind in src/background/ui-router.ts.
 */
export interface UiRequests {
  accounts: { request: {}; reply: AccountsReply };
  /** Sites waiting for the user's answer to "Allow <origin> to use encryption?". */
  'site-requests': { request: {}; reply: { requests: SiteRequestView[] } };
  /** The user's answer; Allow adds the origin to the allowed sites. */
  'site-decision': { request: { origin: string; allow: boolean }; reply: { ok: true } };
  /** Allowed sites whose client syncs where the page hook cannot see it. */
  'uncovered-clients': { request: {}; reply: { clients: UncoveredClientView[] } };
}

/** A page on a site the user has not allowed talked to a configured homeserver. */
export interface SiteRequestView {
  origin: string;
  homeserver: string;
  /** The account's user id when its token is one Kirjava already knows. */
  userId: string | null;
}

/** An allowed site whose /sync traffic never came through the page hook (Web Worker, Service Worker). */
export interface UncoveredClientView {
  origin: string;
  /** When such a sync was last seen (ms since the epoch). */
  lastSeen: number;
}

export type UiKind = keyof UiRequests;
export type UiRequest<K extends UiKind = UiKind> = { channel: 'kirjava:ui'; kind: K } & UiRequests[K]['request'];
export type UiReply<K extends UiKind = UiKind> = UiRequests[K]['reply'] | UiErrorReply;

/** A UI request the worker could not carry out; `error` says what the user can do. */
export interface UiErrorReply {
  error: string;
}

export interface AccountsReply {
  accounts: AccountView[];
}

/** The configuration stored in `chrome.storage.local` under SETTINGS_KEY. */
export interface Settings {
  /** Homeserver base URLs, without trailing slash, e.g. `https://matrix.example.org`. */
  homeservers: string[];
  /** Web origins whose pages Kirjava serves, e.g. `https://app.example.org`. */
  allowedSites: string[];
}

export const SETTINGS_KEY = 'settings';

export const EMPTY_SETTINGS: Settings = { homeservers: [], allowedSites: [] };

/** What the bridge tells the hook once it has read the settings. */
export interface HookConfig {
  /** Homeservers whose traffic this page may hand to the worker; empty when not allowed. */
  homeservers: string[];
}

/** Normalizes a user-typed URL to an origin-plus-path base without trailing slash. */
export function normalizeBaseUrl(input: string): string {
  const url = new URL(input.trim());
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error('A homeserver URL starts with https:// (or http:// for a local server)');
  }
  return (url.origin + url.pathname).replace(/\/+$/, '');
}

/** Normalizes a user-typed site to its web origin. */
export function normalizeOrigin(input: string): string {
  const url = new URL(input.trim());
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new Error('A site is a web origin such as https://app.example.org');
  }
  return url.origin;
}
