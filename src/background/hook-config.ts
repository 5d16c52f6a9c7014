/**
 * The bridges' configuration (src/content/bridge.iife.ts): content scripts may not read
 * extension storage (src/background/storage-access.ts), so each bridge asks the worker
 * which homeservers its page may use, and is told to ask again when the settings change.
 * Whether a request is served is still decided per request (page-requests.ts servedOrigin).
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

/** `origin` as the browser tells it (opaque frames have none that could be allowed). */
async function configFor(origin: string | undefined): Promise<HookConfig> {
  const settings = await getSettings();
  const allowed = origin !== undefined && origin !== 'null' && settings.allowedSites.includes(origin);
  return { allowed, homeservers: allowed ? settings.homeservers : [] };
}

export function serveHookConfig(): void {
  chrome.runtime.onMessage.addListener((message: unknown, sender, sendResponse) => {
    const request = message as HookConfigRequest | null;
    if (sender.id !== chrome.runtime.id || !sender.tab || request?.channel !== HOOK_CONFIG_CHANNEL) return false;
    const origin = (sender as { origin?: string }).origin;
    configFor(origin).then(sendResponse, () => sendResponse({ allowed: false, homeservers: [] } satisfies HookConfig));
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
