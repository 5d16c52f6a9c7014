/**
 * What the user chooses in the options page: the homeservers and sites Kirjava serves, and
 * each account's key sharing policy; with the readers that turn whatever is stored into
 * these shapes (missing or malformed fields read as the defaults).
 */

/** The configuration stored in `storage.local` (StorageKeys local 'settings'). */
export interface Settings {
  /** Homeserver base URLs, without trailing slash, e.g. `https://matrix.example.org`. */
  homeservers: string[];
  /** Web origins whose pages Kirjava serves, e.g. `https://app.example.org`. */
  allowedSites: string[];
}

export const EMPTY_SETTINGS: Settings = { homeservers: [], allowedSites: [] };

/**
 * With whom room keys are shared: every device not blacklisted (default, as Element), the
 * same but asking first when unverified devices are present, or cross-signed devices only.
 */
export type SharingPolicy = 'all' | 'ask' | 'cross-signed';

/** An account's key sharing choices, in `storage.local` ('sharing', by account id). */
export interface AccountSharing {
  policy: SharingPolicy;
  /** Per-room exceptions: room id → policy. */
  rooms: Record<string, SharingPolicy>;
  /** How long a send waits for "Send anyway" / "Cancel" before it fails. */
  askTimeoutSeconds: number;
}

export const DEFAULT_SHARING: AccountSharing = { policy: 'all', rooms: {}, askTimeoutSeconds: 120 };

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

const strings = (list: unknown): string[] =>
  Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : [];

/** Whatever is stored, as Settings: missing or malformed fields read as empty lists. */
export function asSettings(stored: unknown): Settings {
  const value = (stored ?? {}) as Partial<Record<keyof Settings, unknown>>;
  return {
    homeservers: strings(value.homeservers ?? EMPTY_SETTINGS.homeservers),
    allowedSites: strings(value.allowedSites ?? EMPTY_SETTINGS.allowedSites),
  };
}

/** An account's stored sharing choices, missing fields filled from DEFAULT_SHARING. */
export function asSharing(stored: Partial<AccountSharing> | undefined): AccountSharing {
  return { ...DEFAULT_SHARING, ...(stored ?? {}) };
}
