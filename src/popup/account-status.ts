/**
 * How one account reads in the popup: its protection status, its state line and its session key.
 */
import type { AccountView, CrossSigningView, KeysStatusReply } from '../shared/messages.ts';

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

/** How well one account's messages are protected, as the status line at the top of its card says it. */
export type ProtectionLevel = 'Protected' | 'Needs attention' | 'Not covered';

/**
 * The control in the card that fixes the most important problem; the card marks each such control
 * with `data-fix="<target>"` and the status line's action scrolls to it and focuses it.
 */
export type FixTarget = 'give-access' | 'secure-backup' | 'recovery-key' | 'verify-device' | 'export-keys';

/** The status line of one account: the level, a sentence a non-expert understands, and the one action. */
export interface Protection {
  level: ProtectionLevel;
  says: string;
  action: { label: string; target: FixTarget; origin?: string } | null;
}

/** What the card knows of an account besides its AccountView; null where the worker did not answer yet. */
export interface ProtectionFacts {
  /** The verifications reply's cross-signing view. */
  crossSigning: CrossSigningView | null;
  /** The keys-status reply. */
  keys: KeysStatusReply | null;
  /** The account's homeserver and sites that Kirjava has no host access to. */
  noAccess: string[];
}

/** The status line of `account`, most important problem first; null while the facts are still coming. */
export function protection(account: AccountView, facts: ProtectionFacts): Protection | null {
  if (account.state === 'logged-out') {
    return {
      level: 'Not covered',
      says: 'Your client logged out of this device. Export its keys before Kirjava deletes them.',
      action: { label: 'Export keys', target: 'export-keys' },
    };
  }
  if (account.state !== 'active') {
    return { level: 'Not covered', says: 'Kirjava cannot encrypt for this account now: see below.', action: null };
  }
  const [origin] = facts.noAccess;
  if (origin) {
    return {
      level: 'Not covered',
      says: `Kirjava cannot see ${origin}: your messages there are not encrypted or decrypted.`,
      action: { label: 'Give access', target: 'give-access', origin },
    };
  }
  const { crossSigning, keys } = facts;
  if (!crossSigning || !keys) return null;
  if (keys.unsavedRecoveryKey) {
    return {
      level: 'Needs attention',
      says: 'Save your recovery key: it is shown only until you confirm.',
      action: { label: 'Save recovery key', target: 'secure-backup' },
    };
  }
  if (keys.secureBackup === 'none') {
    return {
      level: 'Needs attention',
      says: 'No secure backup: if you lose this browser, you lose your encrypted history.',
      action: { label: 'Set up secure backup', target: 'secure-backup' },
    };
  }
  const recoverable = keys.secureBackup === 'set-up';
  if (crossSigning.identityKnown && !crossSigning.deviceSignedByOwner) {
    return {
      level: 'Needs attention',
      says: 'Your other devices do not trust this one yet, and it cannot read your backed-up history.',
      action: recoverable
        ? { label: 'Enter recovery key', target: 'recovery-key' }
        : { label: 'Verify this device', target: 'verify-device' },
    };
  }
  if (!keys.backupVersion && recoverable) {
    return {
      level: 'Needs attention',
      says: 'New keys are not backed up yet: enter your recovery key to turn the backup on.',
      action: { label: 'Enter recovery key', target: 'recovery-key' },
    };
  }
  return {
    level: 'Protected',
    says: keys.backupVersion
      ? 'This device is trusted and its keys are backed up.'
      : 'This device is trusted. Set up a key backup in another client to keep your history.',
    action: null,
  };
}
