/**
 * How one account reads in the popup: its protection status, its state line and its session key.
 */
import { t } from '../platform/i18n.ts';
import type { AccountView, CrossSigningView, KeysStatusReply } from '../shared/messages.ts';

/** The ed25519 key in groups of four, as Element shows a "session key" to compare. */
export function groupFingerprint(key: string): string {
  return key.match(/.{1,4}/g)?.join(' ') ?? '';
}

/** The account's state in words, with what the user can do when there is something to do. */
export function stateLine(account: AccountView): string {
  switch (account.state) {
    case 'active':
      return t('accountStatus_active');
    case 'waiting-for-login':
      return t('accountStatus_waitingForLogin');
    case 'error':
      return account.error ? t('accountStatus_error', account.error) : t('accountStatus_errorNoDetails');
    case 'not-served':
      return t('accountStatus_notServed', account.error ?? '');
    case 'logged-out':
      return t('accountStatus_loggedOut', new Date(account.deleteAfter ?? Date.now()).toLocaleDateString());
  }
}

/** How well one account's messages are protected, as the status line at the top of its card says it. */
export type ProtectionLevel = 'protected' | 'needs-attention' | 'not-covered';

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
      level: 'not-covered',
      says: t('accountStatus_loggedOutSays'),
      action: { label: t('accountStatus_exportKeys'), target: 'export-keys' },
    };
  }
  if (account.state !== 'active') {
    return { level: 'not-covered', says: t('accountStatus_notActiveSays'), action: null };
  }
  const [origin] = facts.noAccess;
  if (origin) {
    return {
      level: 'not-covered',
      says: t('accountStatus_noAccessSays', origin),
      action: { label: t('accountStatus_giveAccess'), target: 'give-access', origin },
    };
  }
  const { crossSigning, keys } = facts;
  if (!crossSigning || !keys) return null;
  if (keys.unsavedRecoveryKey) {
    return {
      level: 'needs-attention',
      says: t('accountStatus_unsavedRecoveryKeySays'),
      action: { label: t('accountStatus_saveRecoveryKey'), target: 'secure-backup' },
    };
  }
  if (keys.secureBackup === 'none') {
    return {
      level: 'needs-attention',
      says: t('accountStatus_noSecureBackupSays'),
      action: { label: t('accountStatus_setUpSecureBackup'), target: 'secure-backup' },
    };
  }
  const recoverable = keys.secureBackup === 'set-up';
  if (crossSigning.identityKnown && !crossSigning.deviceSignedByOwner) {
    return {
      level: 'needs-attention',
      says: t('accountStatus_untrustedDeviceSays'),
      action: recoverable
        ? { label: t('accountStatus_enterRecoveryKey'), target: 'recovery-key' }
        : { label: t('accountStatus_verifyDevice'), target: 'verify-device' },
    };
  }
  if (!keys.backupVersion && recoverable) {
    return {
      level: 'needs-attention',
      says: t('accountStatus_backupOffSays'),
      action: { label: t('accountStatus_enterRecoveryKey'), target: 'recovery-key' },
    };
  }
  return {
    level: 'protected',
    says: keys.backupVersion ? t('accountStatus_protectedSays') : t('accountStatus_protectedNoBackupSays'),
    action: null,
  };
}
