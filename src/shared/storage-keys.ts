/**
 * Everything Kirjava keeps in extension storage, by area and key: the key names (stored
 * data depends on them, so they never change) and the shape of each value. Read and written
 * only through src/platform/storage.ts, which checks the shapes.
 *
 * `storage.local` holds no secret (those are in the keyring); `storage.session` lives in
 * memory until the browser closes. Both are closed to content scripts.
 */
import type { AccountSharing, Settings } from './settings.ts';
import type { AccountSiteRequestView, ServerOfferView, SiteRequestView } from './ui.ts';
import type { RoomLabel } from './room-label.ts';

/** What is remembered of an account on disk. Never a token. */
export interface AccountRecord {
  baseUrl: string;
  userId: string;
  deviceId: string;
  storeName: string;
  /**
   * The store was made with its keyring secret (`store:<storeName>`, 32 random bytes) as a
   * raw key (no PBKDF2 on every worker start); stores made before that keep opening with
   * the secret's 64 hex digits as a passphrase, as older versions kept it in this record.
   */
  rawStoreKey?: boolean;
  /** Set once our device keys are on the server (or known to be ours). */
  claimed: boolean;
  /** The device's ed25519 key, for the popup while the machine is not open. */
  ed25519?: string;
  error?: string;
  /**
   * The sites (web origins) that may use this account: the one whose page first used it
   * with a token the homeserver confirmed, and those the user allowed in the popup since.
   * Undefined for records made before sites were bound: the next site to use it is bound.
   */
  sites?: string[];
  /**
   * When the client logged out (ms since the epoch). The store is kept, sealed, for
   * LOGGED_OUT_KEEP_MS so the user can still export its room keys, then deleted.
   */
  loggedOutAt?: number;
}

/** Rooms the send guard knows to be unencrypted, per account id; most recently used last. */
export type PlainRooms = Record<string, { baseUrl: string; rooms: string[] }>;

/** A search index's keys as older versions kept them (base64), before the keyring. */
export type LegacySearchKeys = Record<string, { enc?: unknown; mac?: unknown }>;

/** `storage.local`: kept on disk. */
export interface LocalValues {
  /** The homeservers and sites Kirjava serves (options page). */
  settings: Settings;
  /** Key sharing choices, by account id (options page); missing fields read as DEFAULT_SHARING. */
  sharing: Record<string, Partial<AccountSharing>>;
  /** What is remembered of each account, by account id (AccountView.id). */
  accounts: Record<string, AccountRecord>;
  'guard.plainRooms': PlainRooms;
  /** Origins the user said no to: never asked again. */
  'site.denied': string[];
  /** "<origin> <homeserver>" pairs whose "add it?" offer the user dismissed: not offered again. */
  'server.dismissed': string[];
  /** Left by older versions; moved into the keyring at the worker's start. */
  searchIndexKeys: LegacySearchKeys;
  /** Room names and aliases seen in syncs: account id → room id → label (src/background/room-labels.ts). */
  'rooms.labels': Record<string, Record<string, RoomLabel>>;
}

/** `storage.session`: memory only, survives worker restarts, gone when the browser closes. */
export interface SessionValues {
  /** Access token → account id. */
  tokens: Record<string, string>;
  /** Sites waiting for the user's answer to "use <account> here too?". */
  'account.siteRequests': AccountSiteRequestView[];
  /** Sites waiting for the user's answer to "Allow <origin> to use encryption?". */
  'site.pending': SiteRequestView[];
  /** Pages seen talking to a homeserver Kirjava does not handle, waiting for "add it?". */
  'server.offers': ServerOfferView[];
  /**
   * The tabs the send guard blocks plaintext sends from: tab id → the origin of their page.
   * A tab on an allowed site, or on a site removed while the tab was open, until it loads a
   * new page (its client was told its sends are encrypted).
   */
  'guard.tabs': Record<string, string>;
  /** Allowed sites whose /sync the page hook did not see: origin → when last seen (ms). */
  'coverage.uncovered': Record<string, number>;
  /** The keyring's vault key, base64, once the passphrase unlocked it. */
  'keyring.vaultKey': string | undefined;
}
