/**
 * Every word a person reads in Kirjava comes from `public/_locales/<language>/messages.json`
 * through {@link t}: the browser picks the language (its own UI language, English when a
 * language or one of its messages is missing). English is the reference: its file names every
 * message and says what each is for; `tests/unit/i18n.test.ts` fails when another language
 * lacks one, changes its `$1`…`$9` substitutions, or a page has text of its own.
 *
 * Messages substitute positionally (`$1`…`$9`, `$$` for a dollar sign), which Chromium's and
 * Firefox's `i18n.getMessage` both do. There are no plural rules in the browsers' i18n: a count
 * picks one of two messages (see {@link plural}).
 *
 * This module reads `chrome.i18n` (the one namespace both browsers give every extension
 * context, synchronous) rather than the polyfill, so that the UI's text helpers also run in
 * Node's unit tests, where it falls back to the English file. It is the only place in `src/`
 * that names `chrome`, as a property of `globalThis` (ESLint forbids the global elsewhere).
 */
import english from '../../public/_locales/en/messages.json' with { type: 'json' };

/** The name of a message in `public/_locales/en/messages.json`. */
export type MessageKey = keyof typeof english;

type GetMessage = (name: string, substitutions?: string[]) => string;

interface BrowserI18n {
  getMessage: GetMessage;
}

// Not the polyfill: importing it throws outside an extension, and Node's tests have no `chrome`.
const browserI18n: BrowserI18n | undefined = (globalThis as { chrome?: { i18n?: BrowserI18n } }).chrome?.i18n;

/** `message` with `$1`…`$9` and `$$` replaced as the browsers do (where there is no browser: unit tests). */
export function substitute(message: string, substitutions: string[]): string {
  return message.replace(/\$(\$|[1-9])/g, (_, which: string) =>
    which === '$' ? '$' : (substitutions[Number(which) - 1] ?? ''),
  );
}

/** The message `key` in the user's language, `$1`… replaced by `substitutions` in order. */
export function t(key: MessageKey, ...substitutions: Array<string | number>): string {
  const strings = substitutions.map(String);
  const text = browserI18n?.getMessage(key, strings);
  // The browser answers "" for a name it does not know; the English file still has it then
  // (a build older than the page), and English beats an empty label.
  return text || substitute(english[key].message, strings);
}

/** `one` for a count of 1, `other` otherwise (English and German need no more), with the count as `$1`. */
export function plural(count: number, one: MessageKey, other: MessageKey, ...more: Array<string | number>): string {
  return t(count === 1 ? one : other, count, ...more);
}

/** Sets the page's language and title for an extension page (popup, options, diagnostics). */
export function localizeDocument(title: MessageKey): void {
  document.documentElement.lang = t('meta_language'); // the language the messages came in
  document.title = t(title);
}
