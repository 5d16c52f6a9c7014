import { BackupDecryptionKey, type OlmMachine, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { MatrixHttp } from '../core/http.ts';
import { type BackupInfo, type KeyBackup, MEGOLM_BACKUP_V1 } from './key-backup.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';
import { PasswordAuth } from './password-auth.ts';
import {
  type NewSecretStorageKey,
  SecretStorageError,
  createSecretStorageKey,
  encodeRecoveryKey,
  encryptSecret,
} from './secret-storage.ts';
import { readAccountData, writeAccountData } from './account-data.ts';

/** What a setup made: the recovery key (shown to the user once, never stored) and the backup version. */
export interface SecureBackupSetupResult {
  recoveryKey: string;
  backupVersion: string;
}

/** Whether the account already has secret storage or a key backup (then the user recovers instead). */
export type SecureBackupState = 'none' | 'set-up';

const DEFAULT_KEY = 'm.secret_storage.default_key';

/**
 * "Set up secure backup" for an account that has neither secret storage nor a key backup,
 * as matrix-js-sdk's bootstrapCrossSigning and bootstrapSecretStorage with a new backup do:
 *
 * 1. the account password is confirmed through user-interactive auth before anything changes;
 * 2. a new cross-signing identity (`bootstrapCrossSigning`), its public keys uploaded to
 *    `/keys/device_signing/upload` (with the password when the homeserver asks) and this
 *    device signed by it;
 * 3. a new key backup (`POST /room_keys/version`, `auth_data` signed by this device and the
 *    master key), turned on so this device's room keys go there;
 * 4. secret storage under a new random key: `m.secret_storage.key.<id>` with its `iv`/`mac`
 *    check, the three cross-signing private keys and the backup key encrypted to it, and
 *    `m.secret_storage.default_key` written last, so an interrupted setup is never the default.
 *
 * The recovery key is returned once and kept nowhere.
 */
export class SecureBackupSetup {
  private readonly auth: PasswordAuth;

  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly outgoing: OutgoingRequestProcessor,
    private readonly backup: KeyBackup,
    private readonly userId: string,
  ) {
    this.auth = new PasswordAuth(http, userId);
  }

  /**
   * 'set-up' when the account has a default secret-storage key, or a key backup or
   * cross-signing identity that this device did not make (replacing those would cut off the
   * user's other sessions: they recover instead).
   */
  async state(): Promise<SecureBackupState> {
    const defaultKey = (await this.accountData(DEFAULT_KEY)) as { key?: unknown } | undefined;
    if (typeof defaultKey?.key === 'string') return 'set-up';
    if (await this.foreignBackup()) return 'set-up';
    return (await this.serverHasIdentity()) && !(await this.ownIdentity()) ? 'set-up' : 'none';
  }

  async setUp(password: string): Promise<SecureBackupSetupResult> {
    if (!password) throw new SecretStorageError('Enter your account password');
    if ((await this.state()) === 'set-up') {
      throw new SecretStorageError(
        'This account already has secure backup or an encryption identity made by another app: enter its ' +
          'recovery key under Recover (nothing was changed)',
      );
    }
    await this.confirmPassword(password);
    return this.build(password, false);
  }

  /**
   * "Reset" for an account whose recovery key is lost, as Element's "Reset cryptographic
   * identity": after the password is confirmed, a new cross-signing identity replaces the old
   * one (its upload needs the password on every homeserver), new secret storage gets a new
   * recovery key, and a new key backup version becomes the current one, which this device's
   * keys are uploaded to again. The old backup stays on the server but nothing can open it
   * without the old recovery key; the user's other devices and the people who verified them
   * see a new identity and must verify again.
   */
  async reset(password: string): Promise<SecureBackupSetupResult> {
    if (!password) throw new SecretStorageError('Enter your account password');
    await this.confirmPassword(password);
    return this.build(password, true);
  }

  /** Steps 2 to 4 of the class comment; `fresh` replaces what exists instead of resuming it. */
  private async build(password: string, fresh: boolean): Promise<SecureBackupSetupResult> {
    await this.createCrossSigning(password, fresh);
    const storage = await createSecretStorageKey();
    await this.storeCrossSigningSecrets(storage);
    const backupKey = await this.createBackup(fresh);
    await this.putSecret(storage, 'm.megolm_backup.v1', backupKey.key.toBase64());
    await this.putAccountData(DEFAULT_KEY, { key: storage.keyId });
    return { recoveryKey: encodeRecoveryKey(storage.key), backupVersion: backupKey.version };
  }

  /**
   * Proves the password before anything changes. A homeserver may accept a first cross-signing
   * upload without asking (MSC3967, Synapse does), yet a new identity and a new recovery key
   * decide who can read the account's history from now on: whoever sits at this browser must
   * know the password. `POST /delete_devices` with no devices is always behind
   * user-interactive auth and changes nothing.
   */
  private async confirmPassword(password: string): Promise<void> {
    await this.auth.request('POST', '/delete_devices', { devices: [] }, password);
  }

  private async createCrossSigning(password: string, fresh: boolean): Promise<void> {
    // An identity an interrupted setup of this device uploaded is kept, not replaced.
    if (!fresh && (await this.ownIdentity()) && (await this.serverHasIdentity())) return;
    const requests = await this.machine.bootstrapCrossSigning(true);
    if (requests.uploadKeysRequest) await this.outgoing.send(requests.uploadKeysRequest);
    await this.auth.request(
      'POST',
      '/keys/device_signing/upload',
      JSON.parse(requests.uploadSigningKeysRequest.body),
      password,
    );
    // The device's signature by the new self-signing key (this request has no id to report).
    await this.outgoing.send(requests.uploadSignaturesRequest);
    await this.outgoing.send(this.machine.queryKeysForUsers([new UserId(this.userId)]));
  }

  private async storeCrossSigningSecrets(storage: NewSecretStorageKey): Promise<void> {
    await this.putAccountData(`m.secret_storage.key.${storage.keyId}`, storage.description);
    const keys = await this.machine.exportCrossSigningKeys();
    if (!keys?.masterKey || !keys.self_signing_key || !keys.userSigningKey) {
      throw new SecretStorageError('The new cross-signing keys could not be read back: try again');
    }
    await this.putSecret(storage, 'm.cross_signing.master', keys.masterKey);
    await this.putSecret(storage, 'm.cross_signing.self_signing', keys.self_signing_key);
    await this.putSecret(storage, 'm.cross_signing.user_signing', keys.userSigningKey);
  }

  /**
   * A new backup version (spec "Server-side key backups"), or the one an interrupted setup of
   * this device made (its key is the machine's), turned on for this device's room keys.
   * `fresh` (a reset) always makes a new version and forgets which keys went to the old one.
   */
  private async createBackup(fresh: boolean): Promise<{ key: BackupDecryptionKey; version: string }> {
    if (fresh) await this.backup.disable();
    const ours = fresh ? undefined : await this.ownBackup();
    if (ours) {
      await this.backup.activate(ours);
      return { key: ours.key, version: ours.info.version };
    }
    const key = BackupDecryptionKey.createRandomKey();
    const authData = { public_key: key.megolmV1PublicKey.publicKeyBase64 };
    // Canonical JSON of an object with one string member is its JSON.
    const signatures = JSON.parse((await this.machine.sign(JSON.stringify(authData))).asJSON());
    const body = { algorithm: MEGOLM_BACKUP_V1, auth_data: { ...authData, signatures } };
    const { version } = await this.http.request<{ version: string }>('POST', '/room_keys/version', body);
    await this.backup.activate({ key, info: { ...body, version } });
    return { key, version };
  }

  /** The server's backup when this device holds its key (made by an earlier, interrupted setup). */
  private async ownBackup(): Promise<{ key: BackupDecryptionKey; info: BackupInfo } | undefined> {
    const info = await this.backup.serverInfo();
    if (!info) return undefined;
    const key = (await this.machine.getBackupKeys()).decryptionKey;
    return key && info.auth_data.public_key === key.megolmV1PublicKey.publicKeyBase64 ? { key, info } : undefined;
  }

  /** Whether the homeserver has a cross-signing master key for the user. */
  private async serverHasIdentity(): Promise<boolean> {
    const keys = await this.http.request<{ master_keys?: Record<string, unknown> }>('POST', '/keys/query', {
      device_keys: { [this.userId]: [] },
    });
    return keys.master_keys?.[this.userId] !== undefined;
  }

  /** Whether this device holds all three private cross-signing keys. */
  private async ownIdentity(): Promise<boolean> {
    const status = await this.machine.crossSigningStatus();
    return status.hasMaster && status.hasSelfSigning && status.hasUserSigning;
  }

  /** True when the server has a key backup that this device did not make. */
  private async foreignBackup(): Promise<boolean> {
    return (await this.backup.serverInfo()) !== undefined && (await this.ownBackup()) === undefined;
  }

  private async putSecret(storage: { keyId: string; key: Uint8Array }, name: string, secret: string): Promise<void> {
    await this.putAccountData(name, { encrypted: { [storage.keyId]: await encryptSecret(storage.key, name, secret) } });
  }

  private putAccountData(type: string, content: object): Promise<void> {
    return writeAccountData(this.http, this.userId, type, content);
  }

  private accountData(type: string): Promise<unknown> {
    return readAccountData(this.http, this.userId, type);
  }
}
