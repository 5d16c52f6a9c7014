import { DeviceId, type OlmMachine, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { MatrixHttp } from '../core/http.ts';
import type { BackupProgress, KeyBackup } from './key-backup.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';
import {
  type EncryptedSecret,
  type SecretStorageKeyDescription,
  SecretStorageError,
  decryptSecret,
  unlockKey,
} from './secret-storage.ts';
import { readAccountData } from './account-data.ts';

const CROSS_SIGNING = [
  'm.cross_signing.master',
  'm.cross_signing.self_signing',
  'm.cross_signing.user_signing',
] as const;
const BACKUP_SECRET = 'm.megolm_backup.v1';

/**
 * What a recovery did: whether this device got cross-signed, the backup it now uses, and the
 * keys imported from that backup.
 */
export interface RecoveryResult {
  /** The device is now signed by the user's self-signing key. */
  crossSigned: boolean;
  /** Backup version now used, when the account has a backup this key opens. */
  backupVersion: string | null;
  imported: number;
  total: number;
}

/**
 * Recovery with the user's recovery key or passphrase: reads the default secret-storage
 * key (account data `m.secret_storage.default_key`), checks the input against it,
 * decrypts the cross-signing private keys and the key-backup key, imports them, signs
 * this device with the self-signing key and turns on the key backup. Nothing is changed
 * until the input is known to be right.
 */
export class Recovery {
  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly outgoing: OutgoingRequestProcessor,
    private readonly backup: KeyBackup,
    private readonly userId: string,
    private readonly deviceId: string,
  ) {}

  async recover(input: string, progress: BackupProgress = () => {}): Promise<RecoveryResult> {
    const defaultKey = await this.accountData<{ key?: string }>('m.secret_storage.default_key');
    if (!defaultKey?.key) {
      throw new SecretStorageError(
        'This account has no recovery key or passphrase yet: use "Set up secure backup" above (or set up recovery ' +
          'in Element)',
      );
    }
    const keyId = defaultKey.key;
    const description = await this.accountData<SecretStorageKeyDescription>(`m.secret_storage.key.${keyId}`);
    if (!description) {
      throw new SecretStorageError(
        'The recovery setup of this account is incomplete: set up recovery again in Element',
      );
    }
    const key = await unlockKey(input, description);

    const secrets = new Map<string, string>();
    for (const name of [...CROSS_SIGNING, BACKUP_SECRET]) {
      const data = await this.accountData<{ encrypted?: Record<string, EncryptedSecret> }>(name);
      const encrypted = data?.encrypted?.[keyId];
      if (encrypted) secrets.set(name, await decryptSecret(key, name, encrypted));
    }

    // Everything is checked before anything is imported.
    const backupSecret = secrets.get(BACKUP_SECRET);
    const backup = backupSecret === undefined ? undefined : await this.backup.check(backupSecret);
    const crossSigned = await this.importCrossSigning(secrets);
    if (!backup) return { crossSigned, backupVersion: null, imported: 0, total: 0 };
    await this.backup.activate(backup);
    const { imported, total } = await this.backup.downloadAll(progress);
    return { crossSigned, backupVersion: backup.info.version, imported, total };
  }

  /** Imports the private cross-signing keys and signs this device with them. */
  private async importCrossSigning(secrets: Map<string, string>): Promise<boolean> {
    const [master, selfSigning, userSigning] = CROSS_SIGNING.map((name) => secrets.get(name));
    if (!master && !selfSigning) return false;
    // The machine only accepts private keys that match the public identity it knows.
    await this.outgoing.send(this.machine.queryKeysForUsers([new UserId(this.userId)]));
    const status = await this.machine.importCrossSigningKeys(master, selfSigning, userSigning);
    if (!status.hasSelfSigning) {
      throw new SecretStorageError(
        'The cross-signing keys in your secret storage do not match your account: reset cross-signing in Element',
      );
    }
    const device = await this.machine.getDevice(new UserId(this.userId), new DeviceId(this.deviceId));
    if (!device) return false;
    try {
      await this.outgoing.send(await device.verify());
    } finally {
      device.free();
    }
    return true;
  }

  private accountData<T>(type: string): Promise<T | undefined> {
    return readAccountData<T>(this.http, this.userId, type);
  }
}
