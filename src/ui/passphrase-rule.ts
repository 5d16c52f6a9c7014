/**
 * How strong the passphrase of an exported key file must be. The file leaves the browser
 * (a download, a cloud folder, an e-mail): whoever gets it may guess offline for as long as
 * they like, so a short or monotonous passphrase is refused, in the popup and in the worker.
 */
import { t } from '../platform/i18n.ts';

const MIN_LENGTH = 12;
const MIN_DISTINCT = 6;

/** The rule in the words the popup shows beside the field. */
export function exportPassphraseRule(): string {
  return t('passphraseRule_rule', MIN_LENGTH, MIN_DISTINCT);
}

/** Why `passphrase` is too weak for a key file, in words the user can act on; null when it is strong enough. */
export function exportPassphraseProblem(passphrase: string): string | null {
  const characters = [...passphrase.trim()];
  if (characters.length < MIN_LENGTH) return t('passphraseRule_tooShort', MIN_LENGTH);
  if (new Set(characters.map((c) => c.toLowerCase())).size < MIN_DISTINCT) {
    return t('passphraseRule_tooFewDifferent', MIN_DISTINCT);
  }
  return null;
}
