/**
 * What each tab is to Kirjava, for the toolbar icon (badge.ts draws it): protected (a page of
 * an allowed site talking to a configured homeserver), not covered (a page talking to a
 * Matrix homeserver Kirjava does not handle, or from a site that is not allowed), or not a
 * Matrix client. Told by what the browser saw the page request (webRequest), never by the
 * page; a new page in the tab starts over.
 */
import { browser, MATRIX_CLIENT_REQUESTS } from '../platform/ext.ts';
import { requestOrigin } from '../platform/origins.ts';
import { getSettings, watchSettings } from '../platform/storage.ts';
import type { Settings } from '../shared/messages.ts';
import { type TabProtection, forgetTabIcon, showTabProtection } from './badge.ts';
import { log } from './log.ts';
import { t } from '../platform/i18n.ts';
import { errorText } from '../crypto/core/log.ts';

/** How bad each state is: a tab shows the worst its page has come to. */
const RANK: Record<TabProtection['state'], number> = { none: 0, protected: 1, 'not-covered': 2 };

/** The base URL before `/_matrix/` of a Matrix request. */
const baseOf = (url: string): string | undefined => {
  const at = url.indexOf('/_matrix/');
  return at > 0 ? url.slice(0, at) : undefined;
};

/** What one page's request to `base` from `initiator` makes of its tab, under `settings`. */
function classify(settings: Settings, initiator: string, base: string): TabProtection {
  if (!settings.homeservers.includes(base)) {
    return { state: 'not-covered', title: t('tabStatus_homeserverNotHandled', base) };
  }
  if (!settings.allowedSites.includes(initiator)) {
    return { state: 'not-covered', title: t('tabStatus_siteNotAllowed', initiator) };
  }
  return { state: 'protected', title: t('tabStatus_protected') };
}

const NONE: TabProtection = { state: 'none', title: t('tabStatus_notAMatrixClient') };

/** Starts following the tabs' Matrix traffic for the toolbar icon. */
export function registerTabStatus(): void {
  /** Per tab, the (initiator, base) pairs its page talked to since it loaded. */
  const talks = new Map<number, Map<string, { initiator: string; base: string }>>();
  const shown = new Map<number, string>();

  const render = async (tabId: number, settings: Settings) => {
    let worst = NONE;
    for (const { initiator, base } of talks.get(tabId)?.values() ?? []) {
      const state = classify(settings, initiator, base);
      if (RANK[state.state] > RANK[worst.state]) worst = state;
    }
    if (shown.get(tabId) === worst.title) return;
    shown.set(tabId, worst.title);
    await showTabProtection(tabId, worst);
  };
  const renderAll = (settings: Settings) => {
    for (const tabId of talks.keys()) {
      render(tabId, settings).catch((error) => log.warn('tab icon not set', { error: errorText(error) }));
    }
  };

  browser.webRequest.onBeforeRequest.addListener((details) => {
    const { tabId, url } = details;
    const initiator = requestOrigin(details);
    const base = baseOf(url);
    if (tabId < 0 || !base || !initiator) return undefined;
    const pairs = talks.get(tabId) ?? new Map();
    talks.set(tabId, pairs.set(`${initiator} ${base}`, { initiator, base }));
    getSettings()
      .then((settings) => render(tabId, settings))
      .catch((error) => log.warn('tab icon not set', { error: errorText(error) }));
    return undefined;
  }, MATRIX_CLIENT_REQUESTS);
  watchSettings(renderAll);
  browser.webNavigation.onCommitted.addListener((details) => {
    if (details.frameId !== 0 || !talks.has(details.tabId)) return;
    talks.delete(details.tabId);
    getSettings()
      .then((settings) => render(details.tabId, settings))
      .catch(() => undefined);
  });
  browser.tabs.onRemoved.addListener((tabId) => {
    talks.delete(tabId);
    shown.delete(tabId);
    forgetTabIcon(tabId);
  });
}
