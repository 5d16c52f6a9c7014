/**
 * Turns what the user typed into a list entry (a homeserver URL, a site), or into a
 * message that says how to write it.
 */
import { t } from '../platform/i18n.ts';

/**
 * A kind of list entry: one checked over the network before it is saved (`resolve`:
 * homeservers, homeserver-input.ts), or one that `normalize` alone decides, with the messages
 * that say how to write it (whole sentences, as each language words them for this kind).
 */
export type EntryKind = RemoteEntryKind | LocalEntryKind;

interface RemoteEntryKind {
  /** An entry of this kind, e.g. "https://matrix.example.org" (the input's placeholder). */
  example: string;
  /** Resolves and checks the typed entry before it is saved. */
  resolve: (input: string) => Promise<ParsedEntry>;
}

interface LocalEntryKind {
  /** An entry of this kind, e.g. "https://app.example.org" (the input's placeholder). */
  example: string;
  normalize: (input: string) => string;
  /** "Enter a site, such as https://app.example.org": nothing was typed. */
  emptyError: string;
  /** "“typed” is not a URL. A site looks like https://app.example.org". */
  notAUrlError: (typed: string) => string;
  /** `normalize` refused a URL (not http/https): "A site is a web origin such as …". */
  refusedError: string;
}

/** The entry as the list keeps it, or the message that says how to write it. */
export type ParsedEntry = { ok: true; entry: string } | { ok: false; error: string };

/** Checks and normalizes one typed entry of the kind `kind`. */
export function parseEntry(input: string, kind: LocalEntryKind): ParsedEntry {
  const typed = input.trim();
  if (typed === '') {
    return { ok: false, error: kind.emptyError };
  }
  try {
    const entry = kind.normalize(typed);
    if (!hasPlainHost(entry)) throw new TypeError('not a host name');
    return { ok: true, entry };
  } catch (error) {
    return { ok: false, error: explain(typed, error, kind) };
  }
}

function explain(typed: string, error: unknown, kind: LocalEntryKind): string {
  if (!typed.includes('://')) {
    const guess = tryNormalize(`https://${typed}`, kind);
    if (guess) return t('entryInput_notAFullUrl', typed, guess);
  }
  // new URL() throws a TypeError in the browser's wording; normalize's own refusal (its
  // English message is for the log) is worded by the kind.
  if (error instanceof TypeError || !(error instanceof Error)) {
    return kind.notAUrlError(typed);
  }
  return kind.refusedError;
}

function tryNormalize(input: string, kind: LocalEntryKind): string | null {
  try {
    const entry = kind.normalize(input);
    return hasPlainHost(entry) ? entry : null;
  } catch {
    return null;
  }
}

/**
 * Chromium's URL parser escapes what a host name cannot hold ("https://not a url" becomes
 * "https://not%20a%20url") instead of refusing it, so check the host ourselves.
 */
function hasPlainHost(url: string): boolean {
  return /^[\w-]+(\.[\w-]+)*\.?$|^\[[0-9a-f:.]+\]$/i.test(new URL(url).hostname);
}
