/**
 * The popup's and options page's one way to Kirjava's Settings in `storage.local`.
 *
 * Writes always store the whole Settings object, computed from a fresh read, so an edit
 * made in another tab (or by the worker) between two clicks is not lost.
 */
import browser from 'webextension-polyfill';
import { EMPTY_SETTINGS, SETTINGS_KEY, type Settings } from '../shared/messages';

/** Whatever is stored, as Settings: missing or malformed fields read as empty lists. */
export function asSettings(stored: unknown): Settings {
  const value = (stored ?? {}) as Partial<Record<keyof Settings, unknown>>;
  const strings = (list: unknown): string[] =>
    Array.isArray(list) ? list.filter((item): item is string => typeof item === 'string') : [];
  return {
    homeservers: strings(value.homeservers ?? EMPTY_SETTINGS.homeservers),
    allowedSites: strings(value.allowedSites ?? EMPTY_SETTINGS.allowedSites),
  };
}

export async function loadSettings(): Promise<Settings> {
  const stored = await browser.storage.local.get(SETTINGS_KEY);
  return asSettings(stored[SETTINGS_KEY]);
}

/** Applies `edit` to the stored settings and writes the result back whole. */
export async function updateSettings(edit: (current: Settings) => Settings): Promise<Settings> {
  const next = edit(await loadSettings());
  await browser.storage.local.set({ [SETTINGS_KEY]: next });
  return next;
}

/** Calls `onChange` whenever the stored settings change; returns the unsubscribe. */
export function watchSettings(onChange: (settings: Settings) => void): () => void {
  const listener = (changes: Record<string, { newValue?: unknown }>, area: string) => {
    if (area === 'local' && SETTINGS_KEY in changes) {
      onChange(asSettings(changes[SETTINGS_KEY].newValue));
    }
  };
  browser.storage.onChanged.addListener(listener);
  return () => browser.storage.onChanged.removeListener(listener);
}
