/**
 * Kirjava's one way to extension storage, for the worker and the extension's pages alike
 * (content scripts may not read it). Every value is read through its reader
 * (src/platform/stored-shapes.ts), which checks it against the shape src/shared/storage-keys.ts
 * declares: a malformed value reads as the default, with a warning, so no caller handles a raw
 * `unknown` and no damaged value reaches a page as an error.
 */
import { browser } from './ext.ts';
import { type Reader, localReaders, sessionReaders } from './stored-shapes.ts';
import { type Logger, defaultLog } from '../crypto/core/log.ts';
import { type AccountSharing, type Settings, asSharing } from '../shared/settings.ts';
import type { LocalValues, SessionValues } from '../shared/storage-keys.ts';

type Readers<V> = { [K in keyof V]-?: Reader<V[K]> };

let problems: Logger = defaultLog;
const reported = new Set<string>();

/** Where warnings about malformed stored values go (the worker's log); the console until then. */
export function logStorageProblemsTo(logger: Logger): void {
  problems = logger;
}

/** One storage area: typed keys, checked values. */
export class StorageArea<V> {
  constructor(
    private readonly name: 'local' | 'session',
    private readonly readers: Readers<V>,
  ) {}

  private get area() {
    return browser.storage[this.name];
  }

  /** `stored` in the shape of `key`; what was wrong with it is logged once per context. */
  private read<K extends keyof V & string>(key: K, stored: unknown): V[K] {
    return this.readers[key](stored, (problem) => {
      const line = `${this.name} ${key}: ${problem}`;
      if (reported.has(line)) return;
      reported.add(line);
      problems.warn('a stored value has the wrong shape', { area: this.name, key, problem });
    });
  }

  async get<K extends keyof V & string>(key: K): Promise<V[K]> {
    return this.read(key, (await this.area.get(key))[key]);
  }

  async set<K extends keyof V & string>(key: K, value: V[K]): Promise<void> {
    await this.area.set({ [key]: value });
  }

  async remove<K extends keyof V & string>(key: K): Promise<void> {
    await this.area.remove(key);
  }

  /** Removes every key of the area, Kirjava's and any older version's ("Reset Kirjava"). */
  async clear(): Promise<void> {
    await this.area.clear();
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
      if (area === this.name && key in changes) listener(this.read(key, changes[key].newValue));
    };
    browser.storage.onChanged.addListener(changed);
    return () => browser.storage.onChanged.removeListener(changed);
  }
}

/** `storage.local` and `storage.session`, each key read through its reader. */
export const storage = {
  local: new StorageArea<LocalValues>('local', localReaders),
  session: new StorageArea<SessionValues>('session', sessionReaders),
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
