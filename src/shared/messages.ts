/**
 * Every message that crosses a context boundary in Kirjava, in one place.
 *
 * page hook  --(MessagePort)-->  bridge  --(runtime.sendMessage)-->  background worker
 * popup / options  --(runtime.sendMessage)-->  background worker
 *
 * Nothing a page sends is trusted: the worker checks the sender's origin against the
 * allowed sites and the access token against the account it belongs to.
 */

import type { EncryptedFile } from '../crypto/media/attachments.js';
import type { LockStatus } from '../crypto/keyring/keyring.js';

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
  /** A `/notifications` response (events of many rooms) to be decrypted. */
  | { kind: 'notifications'; baseUrl: string; token: string; body: string }
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

/** Name of the port the bridge keeps to the worker to know whether it runs (see bridge.iife.ts). */
export const WATCH_PORT = 'kirjava:watch';

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
  /** For media-key: the file's EncryptedFile and content type, or null when Kirjava has none. */
  | { ok: true; media: { file: EncryptedFile; mimetype?: string } | null }
  | MatrixErrorReply;

/** Envelope the bridge wraps around a page request for the worker. */
export interface BridgeMessage {
  channel: 'kirjava:page';
  request: PageRequest;
}

/** State of one account as the popup shows it. */
export type AccountState = 'active' | 'waiting-for-login' | 'error' | 'logged-out';

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
  /** When state is 'logged-out': the kept store is deleted then (ms since the epoch). */
  deleteAfter?: number;
}

/** A site that wants to use an account another site logged in (see AccountRegistry.checkSite). */
export interface AccountSiteRequestView {
  accountId: string;
  origin: string;
  userId: string;
  /** The sites the account is bound to now. */
  sites: string[];
}

/**
 * Requests from the extension's own pages (popup, options), keyed by `kind`. Each
 * feature adds its requests here as `kind → { request fields; reply }`; the worker's
 * handlers are registered per kind in src/background/ui-router.ts.
 */
export interface UiRequests extends VerificationUiRequests, LockUiRequests {
  accounts: { request: {}; reply: AccountsReply };
  /** How many messages the account's search index holds, and how history indexing goes. */
  searchIndexStatus: { request: { accountId: string }; reply: SearchIndexStatus };
  /** Starts indexing the history of the account's encrypted rooms ("Index history for search"). */
  searchIndexHistory: { request: { accountId: string }; reply: SearchIndexStatus };
  /** Keys that follow the user (issue 5); see src/background/keys-service.ts. */
  'keys-status': { request: { accountId: string }; reply: KeysStatusReply };
  'keys-recover': { request: { accountId: string; secret: string }; reply: KeysRecoverReply };
  'keys-import': { request: { accountId: string; file: string; passphrase: string }; reply: KeysCountReply };
  'keys-export': { request: { accountId: string; passphrase: string }; reply: KeysExportReply };
  /** Sites waiting for the user's answer to "Allow <origin> to use encryption?". */
  'site-requests': { request: {}; reply: { requests: SiteRequestView[] } };
  /** The user's answer; Allow adds the origin to the allowed sites. */
  'site-decision': { request: { origin: string; allow: boolean }; reply: { ok: true } };
  /** Sites asking to use an account that another site logged in. */
  'account-site-requests': { request: {}; reply: { requests: AccountSiteRequestView[] } };
  /** The user's answer; Allow lets the site use the account too. */
  'account-site-decision': { request: { accountId: string; origin: string; allow: boolean }; reply: { ok: true } };
  /** Deletes a logged-out account's kept keys now ("Delete now"). */
  'account-delete-logged-out': { request: { accountId: string }; reply: { ok: true } };
  /** Allowed sites whose client syncs where the page hook cannot see it. */
  'uncovered-clients': { request: {}; reply: { clients: UncoveredClientView[] } };
}

/** The search index of one account, as the popup shows it. */
export interface SearchIndexStatus {
  /** Decrypted messages (and room names, topics) in the index. */
  indexedEvents: number;
  history: {
    state: 'idle' | 'running' | 'done' | 'failed';
    roomsDone: number;
    roomsTotal: number;
    /** History events fetched and decrypted in this run. */
    eventsSeen: number;
    /** What went wrong and what the user can do, when state is 'failed'. */
    error?: string;
  };
}

/** A key task under way for an account: what, and how far ("N of M keys"). */
export interface KeysProgressView {
  task: 'recovery' | 'import' | 'export';
  done: number;
  total: number;
}

export interface KeysStatusReply {
  progress: KeysProgressView | null;
  /** Kirjava uploads its room keys to this backup version; null when not enabled. */
  backupVersion: string | null;
}

export interface KeysCountReply {
  imported: number;
  total: number;
}

export interface KeysRecoverReply extends KeysCountReply {
  crossSigned: boolean;
  backupVersion: string | null;
}

export interface KeysExportReply {
  /** The key file's text (`-----BEGIN MEGOLM SESSION DATA-----`). */
  file: string;
  count: number;
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

/** Devices, trust and verification (issue 4; src/background/verification-service.ts), part of UiRequests. */
interface VerificationUiRequests {
  /** `discover`: first look up the members of the account's encrypted rooms (the popup's first ask). */
  devices: { request: { accountId: string; discover?: boolean }; reply: { devices: DeviceView[] } };
  'device-trust': {
    request: { accountId: string; userId: string; deviceId: string; action: DeviceTrustAction };
    reply: { device: DeviceView };
  };
  verifications: { request: { accountId: string }; reply: VerificationsReply };
  'send-questions': { request: {}; reply: { questions: SendQuestion[] } };
  'send-answer': { request: { id: string; answer: 'send' | 'cancel' }; reply: {} };
  'verification-start': {
    /** A device (to-device), or with `inRoom` the user, in your encrypted direct chat with them. */
    request: { accountId: string; userId: string; deviceId?: string; inRoom?: boolean };
    reply: { verification: VerificationView };
  };
  'verification-action': {
    request: { accountId: string; userId: string; flowId: string; action: VerificationAction };
    reply: { verification: VerificationView | null };
  };
}

/**
 * The keyring's optional passphrase (src/background/keyring.ts). Every reply is the lock's
 * state after the request; a refused one (wrong or weak passphrase) is an error and changes nothing.
 */
interface LockUiRequests {
  'lock-status': { request: {}; reply: LockStatus };
  /** Unlocks for this browser session. */
  'lock-unlock': { request: { passphrase: string }; reply: LockStatus };
  /** Sets the passphrase; replacing one needs the `current` one. */
  'lock-set': { request: { passphrase: string; current?: string }; reply: LockStatus };
  'lock-remove': { request: { current: string }; reply: LockStatus };
}

export type UiKind = keyof UiRequests;
export type UiRequest<K extends UiKind = UiKind> = { channel: 'kirjava:ui'; kind: K } & UiRequests[K]['request'];
export type UiReply<K extends UiKind = UiKind> = UiRequests[K]['reply'] | UiErrorReply;

/** A UI request the worker could not carry out; `error` says what the user can do. */
export interface UiErrorReply {
  error: string;
}

/**
 * With whom room keys are shared: every device not blacklisted (default, as Element), the
 * same but asking first when unverified devices are present, or cross-signed devices only.
 */
export type SharingPolicy = 'all' | 'ask' | 'cross-signed';

/** An account's key sharing choices, in `storage.local` under SHARING_KEY[accountId]. */
export interface AccountSharing {
  policy: SharingPolicy;
  /** Per-room exceptions: room id → policy. */
  rooms: Record<string, SharingPolicy>;
  /** How long a send waits for "Send anyway" / "Cancel" before it fails. */
  askTimeoutSeconds: number;
}

export const SHARING_KEY = 'sharing';
export const DEFAULT_SHARING: AccountSharing = { policy: 'all', rooms: {}, askTimeoutSeconds: 120 };

/** A send waiting for the user's answer ('ask' policy). */
export interface SendQuestion {
  id: string;
  accountId: string;
  roomId: string;
  devices: DeviceView[];
  /** When the send gives up, ms since the epoch. */
  deadline: number;
}

/** How far the account trusts a device, most decisive first. */
export type DeviceTrustState = 'blacklisted' | 'verified' | 'cross-signed' | 'trusted-locally' | 'unverified';

/** The user's decisions about a device, as pantalaimon's panctl offered them. */
export type DeviceTrustAction = 'verify' | 'unverify' | 'blacklist' | 'unblacklist' | 'trust-locally';

export interface DeviceView {
  userId: string;
  deviceId: string;
  displayName: string | null;
  /** The device's ed25519 key (unpadded base64): its fingerprint. */
  ed25519: string | null;
  trust: DeviceTrustState;
  /** Verified through cross-signing (not undone by "unverify", which only clears local trust). */
  crossSigningVerified: boolean;
  /** One of the account's own other devices. */
  own: boolean;
}

/** Where an interactive verification (SAS or QR) stands, as the popup shows it. */
export type VerificationStage =
  /** The other side asked; the user may accept or decline. */
  | 'incoming'
  /** We asked; waiting for the other side to accept. */
  | 'requested'
  /** Both sides are ready; emoji or QR can start. */
  | 'ready'
  /** Emoji verification started; waiting for the other side's key. */
  | 'sas-started'
  /** The emoji are there to compare. */
  | 'sas-compare'
  /** We confirmed the emoji; waiting for the other side. */
  | 'sas-confirmed'
  /** The popup shows a QR code; waiting for the other device to scan it. */
  | 'qr-shown'
  /** The other device scanned our QR code: the user confirms it shows success. */
  | 'qr-scanned'
  | 'done'
  | 'cancelled';

export type VerificationAction =
  | 'accept'
  | 'start-sas'
  | 'show-qr'
  | 'confirm'
  | 'mismatch'
  | 'confirm-scan'
  | 'cancel'
  | 'dismiss';

export interface VerificationView {
  flowId: string;
  otherUserId: string;
  otherDeviceId: string | null;
  /** In-room verification (another user, in an encrypted DM); null for to-device. */
  roomId: string | null;
  selfVerification: boolean;
  weStarted: boolean;
  stage: VerificationStage;
  /** The seven emoji to compare, with their English names (spec "SAS method: emoji"). */
  emoji: { symbol: string; name: string }[] | null;
  /** The QR code to draw (stage 'qr-shown'): `size`² modules, row-major, '1' is dark. */
  qr: { size: number; modules: string } | null;
  /** The same QR code's payload, base64 (what a scanner reads). */
  qrBytes: string | null;
  /** Why it was cancelled, and by whom, when stage is 'cancelled'. */
  cancelReason: string | null;
  cancelledByUs: boolean;
}

export interface CrossSigningView {
  /** The account has a cross-signing identity on the server (set up by a full client). */
  identityKnown: boolean;
  /** Our own user identity is known and verified from this device. */
  identityVerified: boolean;
  /** Whether the owner signed this device (it shows as verified in Element). */
  deviceSignedByOwner: boolean;
  hasMaster: boolean;
  hasSelfSigning: boolean;
  hasUserSigning: boolean;
  /** The key backup decryption key arrived (`m.megolm_backup.v1`). */
  hasBackupKey: boolean;
}

export interface VerificationsReply {
  verifications: VerificationView[];
  crossSigning: CrossSigningView;
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
