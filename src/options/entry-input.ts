/**
 * Turns what the user typed into a list entry (a homeserver URL, a site), or into a
 * message that says how to write it.
 */

/** How the list names one entry in messages, e.g. "homeserver URL", "https://matrix.example.org". */
export interface EntryKind {
  noun: string;
  example: string;
  normalize: (input: string) => string;
  /**
   * Resolves and checks the typed entry over the network before it is saved (homeservers:
   * homeserver-input.ts); when absent, `normalize` alone decides.
   */
  resolve?: (input: string) => Promise<ParsedEntry>;
}

/** The entry as the list keeps it, or the message that says how to write it. */
export type ParsedEntry = { ok: true; entry: string } | { ok: false; error: string };

/** Checks and normalizes one typed entry of the kind `kind`. */
export function parseEntry(input: string, kind: EntryKind): ParsedEntry {
  const typed = input.trim();
  if (typed === '') {
    return { ok: false, error: `Enter a ${kind.noun}, such as ${kind.example}` };
  }
  try {
    const entry = kind.normalize(typed);
    if (!hasPlainHost(entry)) throw new TypeError('not a host name');
    return { ok: true, entry };
  } catch (error) {
    return { ok: false, error: explain(typed, error, kind) };
  }
}

function explain(typed: string, error: unknown, kind: EntryKind): string {
  if (!typed.includes('://')) {
    const guess = tryNormalize(`https://${typed}`, kind);
    if (guess) return `“${typed}” is not a full URL: did you mean ${guess}?`;
  }
  // new URL() throws a TypeError in the browser's wording; normalize's own errors are ours.
  if (error instanceof TypeError || !(error instanceof Error)) {
    return `“${typed}” is not a URL. A ${kind.noun} looks like ${kind.example}`;
  }
  return error.message;
}

function tryNormalize(input: string, kind: EntryKind): string | null {
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
