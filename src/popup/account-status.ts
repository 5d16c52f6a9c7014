/**
 * How one account reads in the popup: its state line and its session key.
 */
import type { AccountView } from '../shared/messages.ts';

/** The ed25519 key in groups of four, as Element shows a "session key" to compare. */
export function groupFingerprint(key: string): string {
  return key.match(/.{1,4}/g)?.join(' ') ?? '';
}

/** The account's state in words, with what the user can do when there is something to do. */
export function stateLine(account: AccountView): string {
  switch (account.state) {
    case 'active':
      return 'Encryption active';
    case 'waiting-for-login':
      return 'Waiting for login: log in again in your Matrix client';
    case 'error':
      return `Error: ${account.error || 'the worker gave no details'}`;
    case 'not-served':
      return `Not encrypted: ${account.error}`;
    case 'logged-out':
      return `Logged out: keys kept until ${new Date(account.deleteAfter ?? Date.now()).toLocaleDateString()}`;
  }
}
