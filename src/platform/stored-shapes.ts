/**
 * What each stored key must look like (the shapes of src/shared/storage-keys.ts), checked field
 * by field when it is read. A value of the wrong kind reads as the key's default and an entry of
 * a record or list with the wrong shape as absent; either is reported through `problem`, never
 * thrown, so a damaged value cannot break the pages that show it. A value that passes is
 * returned as stored: fields older versions kept (an account record's `storePassphrase`) stay
 * for the code that moves them.
 *
 * No extension API here (src/platform/storage.ts applies these), so Node's tests check them.
 */
import { type AccountSharing, type SharingPolicy, asSettings } from '../shared/settings.ts';
import type { AccountRecord, LocalValues, PlainRooms, SessionValues } from '../shared/storage-keys.ts';
import type { RoomLabel } from '../shared/room-label.ts';
import type { AccountSiteRequestView, ServerOfferView, SiteRequestView } from '../shared/ui.ts';

/** Told what was wrong with a stored value; never given the value itself (it may hold a secret). */
export type Problem = (what: string) => void;

/** Turns what is stored under one key into its declared shape. */
export type Reader<T> = (stored: unknown, problem: Problem) => T;

type Readers<V> = { [K in keyof V]-?: Reader<V[K]> };
type Check<T> = (value: unknown) => value is T;

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const isString = (value: unknown): value is string => typeof value === 'string';
const isBoolean = (value: unknown): value is boolean => typeof value === 'boolean';
const isNumber = (value: unknown): value is number => typeof value === 'number' && Number.isFinite(value);
const isStrings = (value: unknown): value is string[] => Array.isArray(value) && value.every(isString);
const isPolicy = (value: unknown): value is SharingPolicy =>
  value === 'all' || value === 'ask' || value === 'cross-signed';
const optional =
  <T>(check: Check<T>) =>
  (value: unknown): value is T | undefined =>
    value === undefined || check(value);
const nullable =
  <T>(check: Check<T>) =>
  (value: unknown): value is T | null =>
    value === null || check(value);
const recordWith =
  <T>(check: Check<T>) =>
  (value: unknown): value is Record<string, T> =>
    isRecord(value) && Object.values(value).every(check);

/** An object whose fields each pass their check (fields not named are kept as they are). */
const shape =
  <T>(fields: { [K in keyof T]-?: Check<T[K]> }): Check<T> =>
  (value: unknown): value is T =>
    isRecord(value) && Object.entries(fields).every(([name, check]) => (check as Check<unknown>)(value[name]));

/** A record by id whose entries pass `check`; other entries are left out. */
const recordOf =
  <T>(check: Check<T>): Reader<Record<string, T>> =>
  (stored, problem) => {
    if (stored === undefined) return {};
    if (!isRecord(stored)) {
      problem('not an object: read as empty');
      return {};
    }
    const good = Object.entries(stored).filter(([, entry]) => check(entry));
    if (good.length === Object.keys(stored).length) return stored as Record<string, T>;
    problem(`${Object.keys(stored).length - good.length} entries of the wrong shape left out`);
    return Object.fromEntries(good) as Record<string, T>;
  };

/** A list whose items pass `check`; other items are left out. */
const listOf =
  <T>(check: Check<T>): Reader<T[]> =>
  (stored, problem) => {
    if (stored === undefined) return [];
    if (!Array.isArray(stored)) {
      problem('not a list: read as empty');
      return [];
    }
    const good = stored.filter(check);
    if (good.length < stored.length) problem(`${stored.length - good.length} items of the wrong shape left out`);
    return good;
  };

/** An account record: a record without the fields that name its account and store is no record. */
export const isAccountRecord: Check<AccountRecord> = shape<AccountRecord>({
  baseUrl: isString,
  userId: isString,
  deviceId: isString,
  storeName: isString,
  rawStoreKey: optional(isBoolean),
  // Records of the first versions lack it: not claimed yet, as the accounts code reads them.
  claimed: optional(isBoolean) as Check<boolean>,
  ed25519: optional(isString),
  error: optional(isString),
  sites: optional(isStrings),
  loggedOutAt: optional(isNumber),
});

/** An account's sharing choices as stored: any field may be missing (DEFAULT_SHARING fills it). */
export const isStoredSharing: Check<Partial<AccountSharing>> = shape<Partial<AccountSharing>>({
  policy: optional(isPolicy),
  rooms: optional(recordWith(isPolicy)),
  askTimeoutSeconds: optional(isNumber),
});

const isPlainRooms: Check<PlainRooms[string]> = shape<PlainRooms[string]>({ baseUrl: isString, rooms: isStrings });
const isRoomLabel: Check<RoomLabel> = shape<RoomLabel>({ name: optional(isString), alias: optional(isString) });
const isAccountSiteRequest: Check<AccountSiteRequestView> = shape<AccountSiteRequestView>({
  accountId: isString,
  origin: isString,
  userId: isString,
  sites: isStrings,
});
const isSiteRequest: Check<SiteRequestView> = shape<SiteRequestView>({
  origin: isString,
  homeserver: isString,
  userId: nullable(isString),
});
const isServerOffer: Check<ServerOfferView> = shape<ServerOfferView>({
  origin: isString,
  homeserver: isString,
  siteAllowed: isBoolean,
});

/** The reader of each `storage.local` key. */
export const localReaders: Readers<LocalValues> = {
  settings: (stored, problem) => {
    if (stored !== undefined && !isRecord(stored)) problem('not an object: read as no settings');
    return asSettings(isRecord(stored) ? stored : undefined);
  },
  sharing: recordOf(isStoredSharing),
  accounts: recordOf(isAccountRecord),
  'guard.plainRooms': recordOf(isPlainRooms),
  'site.denied': listOf(isString),
  'server.dismissed': listOf(isString),
  searchIndexKeys: recordOf(isRecord),
  'rooms.labels': recordOf(recordWith(isRoomLabel)),
};

/** The reader of each `storage.session` key. */
export const sessionReaders: Readers<SessionValues> = {
  tokens: recordOf(isString),
  'account.siteRequests': listOf(isAccountSiteRequest),
  'site.pending': listOf(isSiteRequest),
  'server.offers': listOf(isServerOffer),
  'guard.tabs': recordOf(isString),
  'coverage.uncovered': recordOf(isNumber),
  'keyring.vaultKey': (stored, problem) => {
    if (stored === undefined || isString(stored)) return stored;
    problem('not a string: read as absent');
    return undefined;
  },
};
