/**
 * How strong the passphrase of an exported key file must be. The file leaves the browser
 * (a download, a cloud folder, an e-mail): whoever gets it may guess offline for as long as
 * they like, so a short or monotonous passphrase is refused, in the popup and in the worker.
 */

/** The rule in the words the popup shows beside the field. */
export const EXPORT_PASSPHRASE_RULE =
  'At least 12 characters and 6 different ones: four unrelated words are easy to remember and hard to guess.';

const MIN_LENGTH = 12;
const MIN_DISTINCT = 6;

/** Why `passphrase` is too weak for a key file, in words the user can act on; null when it is strong enough. */
export function exportPassphraseProblem(passphrase: string): string | null {
  const characters = [...passphrase.trim()];
  if (characters.length < MIN_LENGTH) {
    return `This passphrase is too short: use at least ${MIN_LENGTH} characters, for example four unrelated words`;
  }
  if (new Set(characters.map((c) => c.toLowerCase())).size < MIN_DISTINCT) {
    return `This passphrase repeats too few characters: use at least ${MIN_DISTINCT} different ones`;
  }
  return null;
}
