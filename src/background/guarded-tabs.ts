/**
 * Knows which tabs the send guard blocks plaintext sends from: the tabs that show an allowed
 * site at the top (every frame of them, including sandboxed iframes and data: documents whose
 * opaque origin no initiator rule can name), and the tabs whose site the user removed while
 * they were open. Those pages were loaded as protected: their client sends into encrypted
 * rooms as if Kirjava still encrypted, so their sends stay blocked until the tab loads a new
 * page (a reload) or closes. Kept in storage.session, so a worker restart forgets none.
 */
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { browser } from '../platform/ext.ts';
import { getSettings, storage } from '../platform/storage.ts';

const originOf = (url: string | undefined): string | undefined => {
  try {
    return url ? new URL(url).origin : undefined;
  } catch {
    return undefined;
  }
};

/**
 * The ids of the guarded tabs, kept current as tabs navigate and close and as the allowed
 * sites change, for the send guard's per-tab block rules.
 */
export class GuardedTabs {
  /** Tab id → the origin of its page, as stored ('guard.tabs'). */
  private tabs: Record<string, string> = {};
  private readonly queue = new SerialQueue();

  /** `onChange` runs whenever the set of guarded tabs changes. */
  constructor(private readonly onChange: () => void) {
    // A URL change alone may be the same page (history.pushState, a fragment; Chromium then
    // reports the tab 'loading' too): it keeps the page's guard.
    browser.tabs.onUpdated.addListener((tabId, change, tab) => {
      if (change.url !== undefined || change.status === 'loading') void this.update(tabId, tab.url, false);
    });
    // Only a committed top-level navigation (a reload too) replaces the page.
    browser.webNavigation.onCommitted.addListener((details) => {
      if (details.frameId === 0) void this.update(details.tabId, details.url, true);
    });
    browser.tabs.onRemoved.addListener((tabId) => void this.update(tabId, undefined, true));
  }

  ids(): number[] {
    return Object.keys(this.tabs).map(Number);
  }

  /** The origins of guarded tabs that are no allowed site any more: blocked until reloaded. */
  async untilReload(allowedSites: string[]): Promise<string[]> {
    const tabs = await storage.session.get('guard.tabs');
    return [...new Set(Object.values(tabs))].filter((origin) => !allowedSites.includes(origin));
  }

  /**
   * Reads every open tab (at worker start and when the allowed sites change): a tab on an
   * allowed site is guarded, and one that was guarded stays so while it shows the same page.
   */
  refresh(): Promise<void> {
    return this.queue.run(async () => {
      const { allowedSites } = await getSettings();
      const before = await storage.session.get('guard.tabs');
      const next: Record<string, string> = {};
      for (const tab of await browser.tabs.query({})) {
        const origin = originOf(tab.url ?? tab.pendingUrl);
        if (tab.id === undefined || !origin) continue;
        if (allowedSites.includes(origin) || before[tab.id] === origin) next[tab.id] = origin;
      }
      await this.store(next);
    });
  }

  private update(tabId: number, url: string | undefined, newPage: boolean): Promise<void> {
    return this.queue.run(async () => {
      const { allowedSites } = await getSettings();
      const tabs = await storage.session.get('guard.tabs');
      const origin = originOf(url);
      const was = tabs[tabId];
      const guarded = origin !== undefined && (allowedSites.includes(origin) || (!newPage && was === origin));
      if (guarded && was === origin) return;
      if (!guarded && was === undefined) return;
      if (guarded) tabs[tabId] = origin;
      else delete tabs[tabId];
      await this.store(tabs);
      this.onChange();
    });
  }

  private async store(tabs: Record<string, string>): Promise<void> {
    await storage.session.set('guard.tabs', tabs);
    this.tabs = tabs;
  }
}
