/**
 * The diagnostics page's view (UI request `diagnostics`) and the text of its "Copy report":
 * what Kirjava covers, its versions, the send guard's rules and recent problems, with
 * nothing that names a person, a room or a secret. The worker redacts every free text it
 * puts in the view with `redact`, and the report redacts it again.
 */

/** One account as the diagnostics page shows it: numbered, never by user id. */
export interface DiagnosticsAccount {
  /** "account 1", "account 2", … in the worker's order. */
  label: string;
  /** The homeserver's host (and port), e.g. `matrix.example.org`. */
  homeserverHost: string;
  /** The homeserver is in Kirjava's options. */
  homeserverConfigured: boolean;
  /** Kirjava has host access to the homeserver (the user can take it back in Firefox). */
  homeserverAccess: boolean;
  /** The account's state as the popup shows it ('active', 'logged-out', …), or 'locked'. */
  state: string;
  /** The sites that used the account: whether each is allowed in the options and has host access. */
  sites: { origin: string; allowed: boolean; access: boolean }[];
  /** What the popup says is wrong, redacted. */
  problem?: string;
}

/** A warning or error from the worker's log, redacted. */
export interface DiagnosticsLogLine {
  /** ms since the epoch */
  time: number;
  level: 'warn' | 'error';
  text: string;
}

/** Everything the diagnostics page shows, worker → page (`diagnostics`). */
export interface DiagnosticsView {
  extensionVersion: string;
  /** e.g. "Firefox 153.0" or "Chrome 140.0.7339.80". */
  browser: string;
  os: string;
  /** matrix-sdk-crypto-wasm's build and the Rust crates in it, or why they could not be read. */
  cryptoLibrary: string;
  lock: { hasPassphrase: boolean; locked: boolean };
  storageFull: boolean;
  /** Homeservers and sites in the options, and whether Kirjava has host access to each. */
  homeservers: { host: string; access: boolean }[];
  sites: { origin: string; access: boolean }[];
  accounts: DiagnosticsAccount[];
  /** The send guard's declarativeNetRequest session rules, by action. */
  sendGuardRules: { block: number; allow: number };
  /** Allowed sites whose syncs bypassed the page hook lately (Web Worker, Service Worker). */
  uncoveredSites: string[];
  recentProblems: DiagnosticsLogLine[];
}

/** A URL path segment rather than a key: a word, or an API version such as `v3`. */
const PATH_WORD = /^(?:[A-Za-z_.-]*|[vr]\d+)$/;

/**
 * A long run of base64 or hex (a key, ciphertext, a signature, a session id, an opaque token),
 * told from words and URL paths: 32 characters or more, or 16 with both letters and digits.
 * A run with slashes whose every part is a word (`org/_matrix/client/v3/keys/query`) is a
 * path, whose parts are checked one by one.
 */
function redactKeyLike(run: string): string {
  const parts = run.split('/');
  if (parts.length > 1 && parts.every((part) => PATH_WORD.test(part) || isKeyLike(part))) {
    return parts.map((part) => (isKeyLike(part) ? '[redacted]' : part)).join('/');
  }
  return isKeyLike(run) ? '[redacted]' : run;
}

const isKeyLike = (run: string): boolean =>
  run.length >= 32 || (run.length >= 16 && /\d/.test(run) && /[A-Za-z]/.test(run)) || /^[0-9a-f]{16,}$/i.test(run);

/**
 * What may name a person, a room, an event or a secret, in the order they are replaced:
 * quoted text (an error quoting a message body or a server's answer), access tokens and
 * their headers and parameters, Matrix ids plain and percent-encoded (as in a URL path),
 * and long runs of base64 or hex.
 */
const REDACTIONS: readonly [RegExp, string | ((match: string) => string)][] = [
  // A Matrix error code stays: it says what went wrong without saying about whom.
  [/"(?:[^"\\]|\\.)*"/g, (quoted) => (/^"M_[A-Z_]+"$/.test(quoted) ? quoted : '"…"')],
  [/(?<![\w])'(?:[^'\\\n]|\\.)+'(?![\w])/g, "'…'"],
  [/`[^`\n]+`/g, '`…`'],
  [/\b(?:syt|syr|mat|mct|mar)_[A-Za-z0-9_-]+/g, '[token]'],
  [/(access_token=)[^&\s]+/gi, '$1[token]'],
  [/(Bearer\s+)\S+/gi, '$1[token]'],
  [/(?<![\w])([@!#]|%21|%23|%40)[^\s:/?&"'<>]+?(?::|%3A)[A-Za-z0-9.-]+(?:(?::|%3A)\d+)?/gi, '$1[id]'],
  [/(?<![\w])(\$|%24)[A-Za-z0-9+/_=.:-]+/gi, '$1[id]'],
  [/[A-Za-z0-9+/_=-]{16,}/g, redactKeyLike],
];

/** `text` without Matrix ids, event ids, tokens, keys or quoted content. */
export function redact(text: string): string {
  let result = text;
  for (const [pattern, replacement] of REDACTIONS) {
    result =
      typeof replacement === 'string' ? result.replace(pattern, replacement) : result.replace(pattern, replacement);
  }
  return result;
}

const yesNo = (value: boolean, yes = 'yes', no = 'NO') => (value ? yes : no);

/** The text "Copy report" puts on the clipboard, for a bug report; every line redacted. */
export function diagnosticsReport(view: DiagnosticsView): string {
  const lines = [
    'Kirjava diagnostics',
    `Kirjava ${view.extensionVersion}`,
    `Browser: ${view.browser} (${view.os})`,
    `Crypto library: ${view.cryptoLibrary}`,
    `Passphrase lock: ${view.lock.hasPassphrase ? (view.lock.locked ? 'set, locked' : 'set, unlocked') : 'off'}`,
    `Storage full: ${yesNo(view.storageFull, 'YES', 'no')}`,
    `Send guard session rules: ${view.sendGuardRules.block} block, ${view.sendGuardRules.allow} allow`,
    '',
    'Homeservers in the options:',
    ...(view.homeservers.length === 0 ? ['  (none)'] : []),
    ...view.homeservers.map((h) => `  ${h.host}: host access ${yesNo(h.access)}`),
    'Sites in the options:',
    ...(view.sites.length === 0 ? ['  (none)'] : []),
    ...view.sites.map((s) => `  ${s.origin}: host access ${yesNo(s.access)}`),
    `Sites whose sync bypassed the page hook: ${view.uncoveredSites.join(', ') || 'none'}`,
    '',
    'Accounts:',
    ...(view.accounts.length === 0 ? ['  (none)'] : []),
  ];
  for (const account of view.accounts) {
    lines.push(
      `  ${account.label}: ${account.state}, homeserver ${account.homeserverHost}` +
        ` (in the options ${yesNo(account.homeserverConfigured)}, host access ${yesNo(account.homeserverAccess)})`,
    );
    for (const site of account.sites) {
      lines.push(`    site ${site.origin}: allowed ${yesNo(site.allowed)}, host access ${yesNo(site.access)}`);
    }
    if (account.problem) lines.push(`    problem: ${account.problem}`);
  }
  lines.push('', `Recent warnings and errors (${view.recentProblems.length}):`);
  for (const line of view.recentProblems) {
    lines.push(`  ${new Date(line.time).toISOString()} ${line.level} ${line.text}`);
  }
  return lines.map(redact).join('\n') + '\n';
}

/** The diagnostics page inside the extension (for `runtime.getURL`), linked from the popup and the options page. */
export const DIAGNOSTICS_PAGE = 'src/diagnostics/index.html';
