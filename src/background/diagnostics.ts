/**
 * The diagnostics page's data (UI request `diagnostics`): for each account and each
 * configured site and homeserver, whether Kirjava covers it; the versions a bug report needs;
 * the send guard's session rules; the worker's recent warnings and errors. Accounts are
 * numbered and named by their homeserver's host only, and every free text goes through
 * `redact` (src/shared/diagnostics.ts): no user id, room, event, token, key or message text.
 */
import { cryptoLibraryVersion } from '../crypto/account.ts';
import { errorText } from '../crypto/core/log.ts';
import { browser, hasAccess } from '../platform/ext.ts';
import { getSettings } from '../platform/storage.ts';
import { type DiagnosticsAccount, type DiagnosticsView, redact } from '../shared/diagnostics.ts';
import type { AccountView, Settings } from '../shared/messages.ts';
import type { AccountRegistry } from './accounts.ts';
import type { ClientCoverage } from './coverage.ts';
import { keyring } from './keyring.ts';
import { recentProblems } from './log.ts';
import { storageQuota } from './storage-health.ts';
import { onUiRequest } from './ui-router.ts';

/** How many of the latest warnings and errors the page shows. */
const PROBLEMS_SHOWN = 50;

/** Answers the diagnostics page from the registry, the coverage watch and the browser. */
export function registerDiagnosticsService(registry: AccountRegistry, coverage: ClientCoverage): void {
  onUiRequest('diagnostics', () => diagnostics(registry, coverage));
}

const hostOf = (url: string): string => {
  try {
    return new URL(url).host;
  } catch {
    return '(not a URL)';
  }
};

/** Host access to `origin`, false when the browser cannot even say. */
const accessTo = (origin: string): Promise<boolean> => hasAccess([origin]).catch(() => false);

async function diagnostics(registry: AccountRegistry, coverage: ClientCoverage): Promise<DiagnosticsView> {
  const settings = await getSettings();
  const lock = await keyring.status();
  const rules = await browser.declarativeNetRequest.getSessionRules();
  const views = await registry.views();
  return {
    extensionVersion: browser.runtime.getManifest().version,
    ...(await browserAndOs()),
    cryptoLibrary: await cryptoLibraryVersion().catch((error) => redact(`not loaded: ${errorText(error)}`)),
    lock,
    storageFull: storageQuota.status().full,
    homeservers: await Promise.all(
      settings.homeservers.map(async (base) => ({ host: hostOf(base), access: await accessTo(base) })),
    ),
    sites: await Promise.all(settings.allowedSites.map(async (origin) => ({ origin, access: await accessTo(origin) }))),
    accounts: await Promise.all(views.map((view, i) => account(view, i, settings, lock.locked))),
    sendGuardRules: {
      block: rules.filter((rule) => rule.action.type === 'block').length,
      allow: rules.filter((rule) => rule.action.type === 'allow').length,
    },
    uncoveredSites: (await coverage.recentlyUncovered()).map((client) => client.origin),
    recentProblems: recentProblems()
      .slice(-PROBLEMS_SHOWN)
      .map((entry) => ({
        time: entry.time,
        level: entry.level === 'error' ? 'error' : 'warn',
        text: redact(
          [entry.message, ...Object.entries(entry.fields).map(([name, value]) => `${name}=${String(value)}`)].join(' '),
        ),
      })),
  };
}

async function account(
  view: AccountView,
  index: number,
  settings: Settings,
  locked: boolean,
): Promise<DiagnosticsAccount> {
  return {
    label: `account ${index + 1}`,
    homeserverHost: hostOf(view.baseUrl),
    homeserverConfigured: settings.homeservers.includes(view.baseUrl),
    homeserverAccess: await accessTo(view.baseUrl),
    state: locked && view.state !== 'logged-out' ? 'locked' : view.state,
    sites: await Promise.all(
      view.sites.map(async (origin) => ({
        origin,
        allowed: settings.allowedSites.includes(origin),
        access: await accessTo(origin),
      })),
    ),
    ...(view.error ? { problem: redact(view.error) } : {}),
  };
}

/** The browser's name and version, and the OS, from what the browser says of itself. */
async function browserAndOs(): Promise<{ browser: string; os: string }> {
  const agent = navigator.userAgent;
  const os = /\(([^;)]+)/.exec(agent)?.[1] ?? 'unknown';
  const runtime = browser.runtime as { getBrowserInfo?: () => Promise<{ name: string; version: string }> };
  if (runtime.getBrowserInfo) {
    const info = await runtime.getBrowserInfo();
    return { browser: `${info.name} ${info.version}`, os };
  }
  const [, name, version] = /\b(Edg|OPR|HeadlessChrome|Chromium|Chrome)\/([\d.]+)/.exec(agent) ?? [];
  const names: Record<string, string> = { Edg: 'Edge', OPR: 'Opera', HeadlessChrome: 'Chrome (headless)' };
  return { browser: name ? `${names[name] ?? name} ${version}` : agent, os };
}
