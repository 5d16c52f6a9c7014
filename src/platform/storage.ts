/**
 * Kirjava's one way to extension storage, for the worker and the extension's pages alike
 * (content scripts may not read it). Every value is read through a reader that turns what is
 * stored into the shape src/shared/storage-keys.ts declares (missing or malformed: the
 * default), so no caller handles a raw `unknown`.
 */
import { browser } from './ext.ts';
import { type AccountSharing, type Settings, asSettings, asSharing } from '../shared/settings.ts';
import type { LocalValues, SessionValues } from '../shared/storage-keys.ts';

type Reader<T> = (stored: unknown) => T;
type Readers<V> = { [K in keyof V]: Reader<V[K]> };

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const record = <T>(stored: unknown) => (isRecord(stored) ? (stored as T) : ({} as T));
const list = <T>(stored: unknown) => (Array.isArray(stored) ? (stored as T[]) : []);

/** One storage area: typed keys, checked values. */
export class StorageArea<V> {
  constructor(
    private readonly name: 'local' | 'session',
    private readonly readers: Readers<V>,
  ) {}

  private get area() {
    return browser.storage[this.name];
  }

  /**
   * The area as the browser has it, shapes unchecked: for moving older versions' data,
   * whose code checks what it reads itself (src/background/secrets-migration.ts).
   */
  raw() {
    return this.area;
  }

  async get<K extends keyof V & string>(key: K): Promise<V[K]> {
    return this.readers[key]((await this.area.get(key))[key]);
  }

  async set<K extends keyof V & string>(key: K, value: V[K]): Promise<void> {
    await this.area.set({ [key]: value });
  }

  async remove<K extends keyof V & string>(key: K): Promise<void> {
    await this.area.remove(key);
  }

  /** Reads `key`, applies `edit`, writes the result back whole; returns it. */
  async update<K extends keyof V & string>(key: K, edit: (current: V[K]) => V[K]): Promise<V[K]> {
    const next = edit(await this.get(key));
    await this.set(key, next);
    return next;
  }

  /** Calls `listener` with the new value whenever `key` changes; returns the unsubscribe. */
  onChanged<K extends keyof V & string>(key: K, listener: (value: V[K]) => void): () => void {
    const changed = (changes: Record<string, { newValue?: unknown }>, area: string) => {
      if (area === this.name && key in changes) listener(this.readers[key](changes[key].newValue));
    };
    browser.storage.onChanged.addListener(changed);
    return () => browser.storage.onChanged.removeListener(changed);
  }
}

export const storage = {
  local: new StorageArea<LocalValues>('local', {
    settings: asSettings,
    sharing: record,
    accounts: record,
    'guard.plainRooms': record,
    'site.denied': list,
    'server.dismissed': list,
    searchIndexKeys: record,
    'rooms.labels': record,
  }),
  session: new StorageArea<SessionValues>('session', {
    tokens: record,
    'account.siteRequests': list,
    'site.pending': list,
    'server.offers': list,
    'guard.tabs': record,
    'coverage.uncovered': record,
    'keyring.vaultKey': (stored) => (typeof stored === 'string' ? stored : undefined),
  }),
};

let cachedSettings: Promise<Settings> | undefined;

/** The user's settings, read once and cached until they change. */
export function getSettings(): Promise<Settings> {
  cachedSettings ??= storage.local.get('settings');
  return cachedSettings;
}

/** Applies `edit` to the stored settings (read fresh, so another tab's edit is kept) and writes them back whole. */
export function updateSettings(edit: (current: Settings) => Settings): Promise<Settings> {
  return storage.local.update('settings', edit);
}

/** Calls `onChange` whenever the stored settings change; returns the unsubscribe. */
export function watchSettings(onChange: (settings: Settings) => void): () => void {
  return storage.local.onChanged('settings', onChange);
}

// Registered at load, before any watcher: the cache never answers with old settings.
storage.local.onChanged('settings', () => (cachedSettings = undefined));

/** Every account's stored key sharing choices, missing fields filled from DEFAULT_SHARING. */
export async function loadSharing(): Promise<Record<string, AccountSharing>> {
  return filledSharing(await storage.local.get('sharing'));
}

const filledSharing = (stored: Record<string, Partial<AccountSharing>>): Record<string, AccountSharing> =>
  Object.fromEntries(Object.entries(stored).map(([id, sharing]) => [id, asSharing(sharing)]));

/** Applies `edit` to one account's sharing choices (read fresh) and writes them back; returns them all. */
export async function updateSharing(
  accountId: string,
  edit: (current: AccountSharing) => AccountSharing,
): Promise<Record<string, AccountSharing>> {
  return filledSharing(
    await storage.local.update('sharing', (stored) => ({ ...stored, [accountId]: edit(asSharing(stored[accountId])) })),
  );
}
