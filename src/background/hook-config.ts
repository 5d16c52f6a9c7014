/**
 * The bridges' configuration (src/content/bridge.iife.ts): content scripts may not read
 * extension storage (src/background/storage-access.ts), so each bridge asks the worker
 * which homeservers its page may use, and is told to ask again when the settings change.
 * Whether a request is served is still decided per request (page-requests.ts isServed).
 */
import browser from 'webextension-polyfill';
import {
  HOOK_CONFIG_CHANGED_CHANNEL,
  HOOK_CONFIG_CHANNEL,
  type HookConfig,
  type HookConfigRequest,
  SETTINGS_KEY,
} from '../shared/messages.js';
import { getSettings } from './settings.js';

async function configFor(origin: string): Promise<HookConfig> {
  const settings = await getSettings();
  return { homeservers: settings.allowedSites.includes(origin) ? settings.homeservers : [] };
}

export function serveHookConfig(): void {
  chrome.runtime.onMessage.addListener((message: unknown, sender, sendResponse) => {
    const request = message as HookConfigRequest | null;
    if (sender.id !== chrome.runtime.id || !sender.tab || request?.channel !== HOOK_CONFIG_CHANNEL) return false;
    configFor(String(request.origin)).then(sendResponse, () => sendResponse({ homeservers: [] }));
    return true;
  });
  browser.storage.onChanged.addListener(async (changes, area) => {
    if (area !== 'local' || !(SETTINGS_KEY in changes)) return;
    for (const tab of await browser.tabs.query({})) {
      if (tab.id === undefined) continue;
      browser.tabs.sendMessage(tab.id, { channel: HOOK_CONFIG_CHANGED_CHANNEL }).catch(() => undefined); // no bridge in that tab
    }
  });
}
