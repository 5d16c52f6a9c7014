/**
 * The popup's key management requests: secure backup setup and reset with the account password,
 * recovery with the recovery key or passphrase, key file import and export, and the progress of the task under way.
 */
import { exportPassphraseProblem } from '../ui/passphrase-rule.ts';
import type { AccountRegistry } from './accounts.ts';
import { onUiRequest } from './ui-router.ts';

/**
 * Answers the popup's key requests from `registry`: recovery, key file import and export,
 * and the progress of the task under way.
 */
export function registerKeysService(registry: AccountRegistry): void {
  onUiRequest('keys-status', async ({ accountId }) => {
    const account = await registry.forKeyExport(accountId);
    const progress = account.keys.progress;
    return {
      progress: progress && { ...progress },
      backupVersion: account.keys.backup.version,
      secureBackup: await account.keys.secureBackupState(),
      unsavedRecoveryKey: account.keys.unsavedRecoveryKey,
    };
  });

  onUiRequest('keys-setup', async ({ accountId, password }) => {
    const account = await registry.forAccount(accountId);
    return account.keys.setUpSecureBackup(password);
  });

  onUiRequest('keys-reset', async ({ accountId, password }) => {
    const account = await registry.forAccount(accountId);
    return account.keys.resetSecureBackup(password);
  });

  onUiRequest('keys-setup-saved', async ({ accountId }) => {
    (await registry.forAccount(accountId)).keys.recoveryKeySaved();
    return { ok: true };
  });

  onUiRequest('keys-recover', async ({ accountId, secret }) => {
    const account = await registry.forAccount(accountId);
    return account.keys.recover(secret);
  });

  onUiRequest('keys-import', async ({ accountId, file, passphrase }) => {
    const account = await registry.forAccount(accountId);
    return account.keys.importKeyFile(file, passphrase);
  });

  onUiRequest('keys-export', async ({ accountId, passphrase }) => {
    const problem = exportPassphraseProblem(passphrase);
    if (problem) throw new Error(problem);
    const account = await registry.forKeyExport(accountId);
    return account.keys.exportKeyFile(passphrase);
  });
}
