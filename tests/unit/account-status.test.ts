/**
 * The status line at the top of each account card names the most important problem first and
 * the one action that fixes it: no host access before no secure backup, no secure backup before
 * an untrusted device, and "Protected" only when the device is trusted and nothing else is missing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { protection, type ProtectionFacts } from '../../src/popup/account-status.ts';
import type { AccountView, CrossSigningView, KeysStatusReply } from '../../src/shared/messages.ts';

const account: AccountView = {
  id: 'https://hs.example|@alice:example|DEVICE',
  baseUrl: 'https://hs.example',
  userId: '@alice:example',
  deviceId: 'DEVICE',
  ed25519: 'key',
  state: 'active',
  sites: ['https://client.example'],
};
const noIdentity: CrossSigningView = {
  identityKnown: false,
  identityVerified: false,
  deviceSignedByOwner: false,
  hasMaster: false,
  hasSelfSigning: false,
  hasUserSigning: false,
  hasBackupKey: false,
};
const trusted: CrossSigningView = {
  ...noIdentity,
  identityKnown: true,
  identityVerified: true,
  deviceSignedByOwner: true,
};
const fresh: KeysStatusReply = { progress: null, backupVersion: null, secureBackup: 'none', unsavedRecoveryKey: null };
const backedUp: KeysStatusReply = { ...fresh, secureBackup: 'set-up', backupVersion: '1' };

const facts = (more: Partial<ProtectionFacts>): ProtectionFacts => ({
  crossSigning: noIdentity,
  keys: fresh,
  noAccess: [],
  ...more,
});

describe('The status line of an account card', () => {
  it('a fresh account needs attention: "Set up secure backup"', () => {
    const status = protection(account, facts({}));
    assert.equal(status?.level, 'needs-attention');
    assert.deepEqual(status?.action, { label: 'Set up secure backup', target: 'secure-backup' });
  });

  it('without host access the account is not covered, whatever else holds: "Give access"', () => {
    const status = protection(
      account,
      facts({ crossSigning: trusted, keys: backedUp, noAccess: ['https://hs.example'] }),
    );
    assert.equal(status?.level, 'not-covered');
    assert.deepEqual(status?.action, { label: 'Give access', target: 'give-access', origin: 'https://hs.example' });
  });

  it('a device its owner has not signed, with secure backup on the server: "Enter recovery key"', () => {
    const keys = { ...fresh, secureBackup: 'set-up' as const };
    const status = protection(account, facts({ crossSigning: { ...trusted, deviceSignedByOwner: false }, keys }));
    assert.equal(status?.level, 'needs-attention');
    assert.equal(status?.action?.label, 'Enter recovery key');
  });

  it('a trusted device whose keys go to the backup is protected, with nothing to do', () => {
    const status = protection(account, facts({ crossSigning: trusted, keys: backedUp }));
    assert.equal(status?.level, 'protected');
    assert.equal(status?.action, null);
  });

  it('a logged-out account is not covered and offers its key export; nothing is decided before the answer', () => {
    const status = protection({ ...account, state: 'logged-out' }, facts({}));
    assert.equal(status?.level, 'not-covered');
    assert.equal(status?.action?.target, 'export-keys');
    assert.equal(protection(account, facts({ keys: null })), null);
  });
});
