/**
 * Requests from the extension's own pages (popup, options) to the worker, on UI_CHANNEL,
 * and the views they answer with.
 */
import type { DiagnosticsView } from './diagnostics.ts';
import type { RoomLabel } from './room-label.ts';

/** Whether the keyring's passphrase lock is set, and whether it holds now. */
export interface LockStatus {
  /** A passphrase is set and nobody entered it since the browser started: every account stays closed. */
  locked: boolean;
  hasPassphrase: boolean;
}

/** Runtime message channel of the popup's and options page's requests. */
export const UI_CHANNEL = 'kirjava:ui';

/** State of one account as the popup shows it. */
export type AccountState = 'active' | 'waiting-for-login' | 'error' | 'logged-out' | 'not-served';

/** One account as the popup shows it, worker → popup. */
export interface AccountView {
  /** Stable id of (homeserver, user, device); UI requests name the account by it. */
  id: string;
  baseUrl: string;
  userId: string;
  deviceId: string;
  /** The device's ed25519 key, unpadded base64, as Element shows it ("session key"). */
  ed25519: string | null;
  state: AccountState;
  /** What went wrong and what the user can do about it, when state is 'error' or 'not-served'. */
  error?: string;
  /** When state is 'logged-out': the kept store is deleted then (ms since the epoch). */
  deleteAfter?: number;
  /** The sites that may use the account (empty until a site first used it). */
  sites: string[];
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
  /** Whether the browser refuses Kirjava's writes for lack of space (src/background/storage-health.ts). */
  'storage-status': { request: {}; reply: StorageStatus };
  /** Keys that follow the user; see src/background/keys-service.ts. */
  'keys-status': { request: { accountId: string }; reply: KeysStatusReply };
  'keys-recover': { request: { accountId: string; secret: string }; reply: KeysRecoverReply };
  /** "Set up secure backup" with the account password: cross-signing, key backup, secret storage. */
  'keys-setup': { request: { accountId: string; password: string }; reply: KeysSetupReply };
  /**
   * "Lost your recovery key? Reset…" with the account password: a new identity, secret storage,
   * recovery key and key backup version replace the old ones.
   */
  'keys-reset': { request: { accountId: string; password: string }; reply: KeysSetupReply };
  /** The user saved the recovery key ("I saved it" + Done): the worker forgets it. */
  'keys-setup-saved': { request: { accountId: string }; reply: { ok: true } };
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
  /** "Forget this account": everything of it leaves this browser (src/background/forget-service.ts). */
  'account-forget': { request: { accountId: string }; reply: { ok: true } };
  /** "Reset Kirjava" (options page): every account, setting, key and rule goes. */
  'kirjava-reset': { request: {}; reply: { ok: true } };
  /** Allowed sites whose client syncs where the page hook cannot see it. */
  'uncovered-clients': { request: {}; reply: { clients: UncoveredClientView[] } };
  /** Pages seen talking to a Matrix homeserver Kirjava does not handle ("add it?"). */
  'server-offers': { request: {}; reply: { offers: ServerOfferView[] } };
  /** The user's answer: accept adds the homeserver (and the site, when not allowed yet). */
  'server-offer-decision': { request: { origin: string; homeserver: string; accept: boolean }; reply: { ok: true } };
  /** Tabs of removed sites whose sends into encrypted rooms stay blocked until they are reloaded. */
  'guarded-until-reload': { request: {}; reply: { origins: string[] } };
  /** The diagnostics page: coverage, versions, rules and recent problems, without secrets. */
  diagnostics: { request: {}; reply: DiagnosticsView };
}

/** Whether the browser's storage for Kirjava is full: new decryptions are then not kept. */
export interface StorageStatus {
  full: boolean;
  /** When a write was first refused (ms since the epoch). */
  since?: number;
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
  task: 'recovery' | 'import' | 'export' | 'setup';
  done: number;
  total: number;
}

/** The account's key task under way and its backup version, worker → popup (`keys-status`). */
export interface KeysStatusReply {
  progress: KeysProgressView | null;
  /** Kirjava uploads its room keys to this backup version; null when not enabled. */
  backupVersion: string | null;
  /**
   * 'none' when the account has neither secret storage nor a key backup ("Set up secure
   * backup" is offered); null when the server could not be asked.
   */
  secureBackup: 'none' | 'set-up' | null;
  /** The recovery key of a setup until the user confirms they saved it (shown again if the popup closed). */
  unsavedRecoveryKey: string | null;
}

/** What a secure-backup setup or reset made, worker → popup (`keys-setup`, `keys-reset`); the key is shown once. */
export interface KeysSetupReply {
  recoveryKey: string;
  backupVersion: string;
}

/** How many of a key file's keys were imported, worker → popup (`keys-import`). */
export interface KeysCountReply {
  imported: number;
  total: number;
}

/** What a recovery did, worker → popup (`keys-recover`). */
export interface KeysRecoverReply extends KeysCountReply {
  crossSigned: boolean;
  backupVersion: string | null;
}

/** The exported key file and how many keys it holds, worker → popup (`keys-export`). */
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

/**
 * A page talks to a Matrix homeserver that is not in Kirjava's options, as the browser saw it
 * (`/_matrix/client/versions`, `/login`, `/sync`, a room send), never as the page claims.
 */
export interface ServerOfferView {
  /** The page's web origin. */
  origin: string;
  /** The homeserver's base URL, as the page's requests name it (everything before `/_matrix/`). */
  homeserver: string;
  /** The site is allowed already: accepting adds the homeserver; otherwise it sets up both. */
  siteAllowed: boolean;
}

/** An allowed site whose /sync traffic never came through the page hook (Web Worker, Service Worker). */
export interface UncoveredClientView {
  origin: string;
  /** When such a sync was last seen (ms since the epoch). */
  lastSeen: number;
}

/** Devices, trust and verification (src/background/verification-service.ts), part of UiRequests. */
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
  /** Room names and aliases seen in syncs, by account id and room id. */
  'room-labels': { request: {}; reply: { accounts: Record<string, Record<string, RoomLabel>> } };
  /** The room a `#alias:server` names, from the account's homeserver directory. */
  'room-alias': { request: { accountId: string; alias: string }; reply: { roomId: string } };
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

/** The name of a UI request, popup or options page → worker. */
export type UiKind = keyof UiRequests;
/** A UI request as sent on UI_CHANNEL, popup or options page → worker. */
export type UiRequest<K extends UiKind = UiKind> = { channel: typeof UI_CHANNEL; kind: K } & UiRequests[K]['request'];
/** The worker's answer to a UI request: its reply or an error, worker → popup or options page. */
export type UiReply<K extends UiKind = UiKind> = UiRequests[K]['reply'] | UiErrorReply;

/** A UI request the worker could not carry out; `error` says what the user can do. */
export interface UiErrorReply {
  error: string;
}

/** A send waiting for the user's answer ('ask' policy). */
export interface SendQuestion {
  id: string;
  accountId: string;
  roomId: string;
  /** The room's name and alias, when a sync showed them. */
  room?: RoomLabel;
  devices: DeviceView[];
  /** When the send gives up, ms since the epoch. */
  deadline: number;
}

/** How far the account trusts a device, most decisive first. */
export type DeviceTrustState = 'blacklisted' | 'verified' | 'cross-signed' | 'trusted-locally' | 'unverified';

/** The user's decisions about a device, as pantalaimon's panctl offered them. */
export type DeviceTrustAction = 'verify' | 'unverify' | 'blacklist' | 'unblacklist' | 'trust-locally';

/** One device and the account's trust in it, worker → popup. */
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

/** The user's step in a verification, popup → worker (`verification-action`). */
export type VerificationAction =
  'accept' | 'start-sas' | 'show-qr' | 'confirm' | 'mismatch' | 'confirm-scan' | 'cancel' | 'dismiss';

/** One interactive verification as the popup shows it, worker → popup. */
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

/** The account's cross-signing identity and which of its private keys this device holds, worker → popup. */
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

/** The account's verifications under way and its cross-signing state, worker → popup (`verifications`). */
export interface VerificationsReply {
  verifications: VerificationView[];
  crossSigning: CrossSigningView;
}

/** Every account the worker serves, worker → popup (`accounts`). */
export interface AccountsReply {
  accounts: AccountView[];
}
