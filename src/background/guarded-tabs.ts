/**
 * Knows which tabs show an allowed site at the top: the send guard blocks plaintext sends
 * from every frame of those tabs, including sandboxed iframes and data: documents whose
 * opaque origin no initiator rule can name.
 */
import { browser } from '../platform/ext.ts';
import { getSettings } from '../platform/storage.ts';

const originOf = (url: string | undefined): string | undefined => {
  try {
    return url ? new URL(url).origin : undefined;
  } catch {
    return undefined;
  }
};

/**
 * The ids of the tabs whose top-level page is on an allowed site, kept current as tabs
 * navigate and close, for the send guard's per-tab block rules.
 */
export class GuardedTabs {
  private tabs = new Set<number>();

  /** `onChange` runs whenever the set of guarded tabs changes. */
  constructor(private readonly onChange: () => void) {
    browser.tabs.onUpdated.addListener((tabId, change, tab) => {
      if (change.url !== undefined || change.status === 'loading') void this.update(tabId, tab.url);
    });
    browser.tabs.onRemoved.addListener((tabId) => {
      if (this.tabs.delete(tabId)) this.onChange();
    });
  }

  ids(): number[] {
    return [...this.tabs];
  }

  /** Reads every open tab (at worker start and when the allowed sites change). */
  async refresh(): Promise<void> {
    const { allowedSites } = await getSettings();
    const next = new Set<number>();
    for (const tab of await browser.tabs.query({})) {
      const origin = originOf(tab.url ?? tab.pendingUrl);
      if (tab.id !== undefined && origin && allowedSites.includes(origin)) next.add(tab.id);
    }
    this.tabs = next;
  }

  private async update(tabId: number, url: string | undefined): Promise<void> {
    const { allowedSites } = await getSettings();
    const origin = originOf(url);
    const guarded = origin !== undefined && allowedSites.includes(origin);
    if (guarded === this.tabs.has(tabId)) return;
    if (guarded) this.tabs.add(tabId);
    else this.tabs.delete(tabId);
    this.onChange();
  }
}
