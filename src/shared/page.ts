/**
 * The page's path to the worker, and everything said on it:
 *
 * page hook  --(MessagePort)-->  bridge  --(runtime.sendMessage)-->  background worker
 *
 * The hook and the bridge share a private MessagePort (HookPortMessage, BridgePortMessage);
 * the bridge relays page requests to the worker on PAGE_CHANNEL and asks it for the
 * frame's HookConfig on HOOK_CONFIG_CHANNEL. Nothing a page sends is trusted: the worker
 * checks the sender's origin against the allowed sites and the access token against the
 * account it belongs to.
 */
import type { MediaKey } from './media.ts';

/** What the MAIN-world hook asks of the worker, on behalf of the page's own request. */
export type PageRequest =
  /** The body of a successful `POST /login` response: the worker learns the account. */
  | { kind: 'login'; baseUrl: string; body: string }
  /** A `/sync` response body to be fed to the crypto machine and decrypted. */
  | { kind: 'sync'; baseUrl: string; token: string; body: string }
  /**
   * A history response of one room (`/messages`, `/context/{id}`, `/event/{id}`,
   * `/relations/...`, `/threads`) to be decrypted.
   */
  | { kind: 'events'; baseUrl: string; token: string; roomId: string; body: string }
  /**
   * A `/notifications` response (events of many rooms) to be decrypted. `onlyHighlight`: the
   * page asked for `only=highlight`; the body is the full list, to be filtered after decryption.
   */
  | { kind: 'notifications'; baseUrl: string; token: string; body: string; onlyHighlight?: boolean }
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
  /**
   * The page's `POST /search` body and `next_batch` query parameter: the worker answers
   * it (encrypted rooms from its index, the rest from the homeserver).
   */
  | { kind: 'search'; baseUrl: string; token: string; body: string; nextBatch?: string }
  /**
   * The key of the encrypted file at `mxc`, which a decrypted event of this account named,
   * so the hook can decrypt the page's download of it (src/content/media-hook.ts).
   */
  | { kind: 'media-key'; baseUrl: string; token: string; mxc: string }
  /**
   * The page started a request whose answer the worker will have to process (a /sync,
   * history): the worker, perhaps stopped, starts and opens the account meanwhile.
   */
  | { kind: 'warm'; baseUrl: string; token: string }
  /**
   * The page is about to log out with this token: while it still works, the account's room
   * keys go to the key backup (see AccountRegistry.beforeLogout).
   */
  | { kind: 'logout-prepare'; baseUrl: string; token: string }
  /** The page logged out (`/logout`, `/logout/all`) with this token. */
  | { kind: 'logout'; baseUrl: string; token: string; all: boolean };

/** A Matrix error the hook turns into an HTTP response the client can show. */
export interface MatrixErrorReply {
  ok: false;
  status: number;
  errcode: string;
  error: string;
}

/** The worker's answer to a page request, worker → bridge → hook. */
export type PageReply =
  /** Replace the response body with `body` (sync, events); or nothing to change. */
  | { ok: true; body?: string }
  /** For sends: send `body` as `eventType` instead (an encrypted room), or pass through. */
  | { ok: true; send: { eventType: string; body: string } | 'passthrough' }
  /** For media-key: the file's EncryptedFile and content type, or null when Kirjava has none. */
  | { ok: true; media: MediaKey | null }
  | MatrixErrorReply;

/** Runtime message channel of page requests, bridge → worker. */
export const PAGE_CHANNEL = 'kirjava:page';

/** Envelope the bridge wraps around a page request for the worker. */
export interface BridgeMessage {
  channel: typeof PAGE_CHANNEL;
  request: PageRequest;
}

/** Name of the port the bridge keeps to the worker to know whether it runs (see bridge.iife.ts). */
export const WATCH_PORT = 'kirjava:watch';

/**
 * The bridge asks the worker for its page's HookConfig (content scripts cannot read
 * extension storage); the worker tells every tab when the settings change, and the
 * bridges ask again.
 */
export const HOOK_CONFIG_CHANNEL = 'kirjava:hook-config';
export const HOOK_CONFIG_CHANGED_CHANNEL = 'kirjava:hook-config-changed';
/** The worker answers for the sender's origin as the browser reports it, never a claimed one. */
export interface HookConfigRequest {
  channel: typeof HOOK_CONFIG_CHANNEL;
}

/** What the bridge tells the hook once it has read the settings. */
export interface HookConfig {
  /** Whether the user allowed this page's site: its sends to other hosts are refused. */
  allowed: boolean;
  /** Homeservers whose traffic this page may hand to the worker; empty when not allowed. */
  homeservers: string[];
}

/**
 * The bridge offers the hook its port with a window message carrying this mark; the page
 * can see and forge it, so the hook takes the first offer only.
 */
export const BRIDGE_PORT_OFFER = { kirjava: 'bridge-port' } as const;

/** Whether a window message is the bridge's port offer (see BRIDGE_PORT_OFFER). */
export const isBridgePortOffer = (data: unknown): boolean =>
  (data as { kirjava?: unknown } | null)?.kirjava === BRIDGE_PORT_OFFER.kirjava;

/** Hook → bridge over their MessagePort: a page request to relay (answered by `id`), or a warm-up. */
export type HookPortMessage = { id: number; request: PageRequest } | { warm: PageRequest & { kind: 'warm' } };

/** Bridge → hook over their MessagePort: the frame's configuration, or the reply to request `id`. */
export type BridgePortMessage =
  { type: 'config'; config: HookConfig } | { type: 'reply'; id: number; reply: PageReply };
