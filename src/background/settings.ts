import browser from 'webextension-polyfill';
import { EMPTY_SETTINGS, SETTINGS_KEY, type Settings } from '../shared/messages.js';

let cached: Promise<Settings> | undefined;

/** The user's settings from the options page, cached until they change. */
export function getSettings(): Promise<Settings> {
  cached ??= browser.storage.local.get(SETTINGS_KEY).then((stored) => ({
    ...EMPTY_SETTINGS,
    ...((stored[SETTINGS_KEY] as Partial<Settings> | undefined) ?? {}),
  }));
  return cached;
}

browser.storage.onChanged.addListener((changes, area) => {
  if (area === 'local' && SETTINGS_KEY in changes) cached = undefined;
});
