/**
 * The bridges' configuration (src/content/bridge.iife.ts): content scripts may not read
 * extension storage (src/background/storage-access.ts), so each bridge asks the worker
 * which homeservers its page may use, and is told to ask again when the settings change.
 * Whether a request is served is still decided per request (page-requests.ts servedOrigin).
 */
import { type Runtime, browser, fromThisExtension, senderOrigin } from '../platform/ext.ts';
import { getSettings, watchSettings } from '../platform/storage.ts';
import {
  HOOK_CONFIG_CHANGED_CHANNEL,
  HOOK_CONFIG_CHANNEL,
  type HookConfig,
  type HookConfigRequest,
} from '../shared/messages.ts';

/** `origin` as the browser tells it (undefined for opaque frames, which no site allowed). */
async function configFor(origin: string | undefined): Promise<HookConfig> {
  const settings = await getSettings();
  const allowed = origin !== undefined && settings.allowedSites.includes(origin);
  return { allowed, homeservers: allowed ? settings.homeservers : [] };
}

/**
 * Answers each bridge's HOOK_CONFIG_CHANNEL request with its frame's HookConfig, and tells
 * every tab's bridge to ask again when the settings change.
 */
export function registerHookConfigService(): void {
  browser.runtime.onMessage.addListener((message: unknown, sender: Runtime.MessageSender) => {
    const request = message as HookConfigRequest | null;
    if (!fromThisExtension(sender) || !sender.tab || request?.channel !== HOOK_CONFIG_CHANNEL) return undefined;
    return configFor(senderOrigin(sender)).catch((): HookConfig => ({ allowed: false, homeservers: [] }));
  });
  watchSettings(async () => {
    for (const tab of await browser.tabs.query({})) {
      if (tab.id === undefined) continue;
      // A tab without a bridge does not answer.
      browser.tabs.sendMessage(tab.id, { channel: HOOK_CONFIG_CHANGED_CHANNEL }).catch(() => undefined);
    }
  });
}
