import { BackupDecryptionKey, type OlmMachine, RoomId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixApiError, type MatrixHttp, seg } from '../core/http.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';

export const MEGOLM_BACKUP_V1 = 'm.megolm_backup.v1.curve25519-aes-sha2';

/** `GET /room_keys/version` (Matrix spec "Server-side key backups"). */
export interface BackupInfo {
  algorithm: string;
  auth_data: { public_key?: string; signatures?: Record<string, Record<string, string>> };
  version: string;
  count?: number;
  etag?: string;
}

/** One session in the backup: `KeyBackupData`. */
interface KeyBackupData {
  first_message_index?: number;
  forwarded_count?: number;
  is_verified?: boolean;
  session_data: { ephemeral: string; ciphertext: string; mac: string };
}

type RoomKeyBackup = { rooms?: Record<string, { sessions?: Record<string, KeyBackupData> }> };

/** A session the backup did not have may be backed up later by another device. */
const RETRY_MISS_MS = 60_000;

/** Told how many of the backup's keys are imported so far, of how many. */
export type BackupProgress = (done: number, total: number) => void;

/** The key backup cannot be used; the message says what the user can do. */
export class KeyBackupError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeyBackupError';
  }
}

/**
 * The account's server-side key backup (`m.megolm_backup.v1.curve25519-aes-sha2`): checks
 * that the backup on the server is the one the user's backup key opens, downloads room
 * keys from it (all of them, or the one session an undecryptable event needs) and uploads
 * the room keys this device holds once the backup is trusted.
 */
export class KeyBackup {
  /** When each session was last asked of the backup: a miss is retried after a while. */
  private readonly asked = new Map<string, number>();
  private enabledVersion: string | undefined;

  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly outgoing: OutgoingRequestProcessor,
  ) {}

  /** The current backup on the server, or undefined when the account has none. */
  async serverInfo(): Promise<BackupInfo | undefined> {
    try {
      return await this.http.request<BackupInfo>('GET', '/room_keys/version');
    } catch (error) {
      if (error instanceof MatrixApiError && error.errcode === 'M_NOT_FOUND') return undefined;
      throw error;
    }
  }

  /**
   * Checks that the server's current backup was made for `key` (unpadded base64, the
   * `m.megolm_backup.v1` secret): a backup whose public key is not ours could be read by
   * whoever made it. Changes nothing; `activate` then uses the answer.
   */
  async check(keyBase64: string): Promise<{ key: BackupDecryptionKey; info: BackupInfo }> {
    let key: BackupDecryptionKey;
    try {
      key = BackupDecryptionKey.fromBase64(keyBase64);
    } catch {
      throw new KeyBackupError(
        'The key-backup key in your secret storage is damaged: set up key backup again in Element',
      );
    }
    const info = await this.serverInfo();
    if (!info) throw new KeyBackupError('This account has no key backup on the server: turn on key backup in Element');
    if (info.algorithm !== MEGOLM_BACKUP_V1) {
      throw new KeyBackupError(`The key backup uses ${info.algorithm}, which Kirjava does not support`);
    }
    if (info.auth_data.public_key !== key.megolmV1PublicKey.publicKeyBase64) {
      throw new KeyBackupError(
        'The key backup on the server was not made with your recovery key, so Kirjava does not trust it (nothing ' +
          'was changed): reset key backup in Element',
      );
    }
    return { key, info };
  }

  /** Makes a checked key this device's backup key and turns on backing up to it. */
  async activate({ key, info }: { key: BackupDecryptionKey; info: BackupInfo }): Promise<void> {
    await this.machine.saveBackupDecryptionKey(key, info.version);
    await this.enable(info);
  }

  /**
   * After a worker restart: enables uploads again when the stored key still opens the
   * server's current backup. Quietly does nothing otherwise.
   */
  async resume(): Promise<void> {
    const stored = await this.machine.getBackupKeys();
    const key = stored.decryptionKey;
    if (!key || !stored.backupVersion) return;
    const info = await this.serverInfo();
    if (info?.version === stored.backupVersion && info.auth_data.public_key === key.megolmV1PublicKey.publicKeyBase64) {
      await this.enable(info);
    }
  }

  /**
   * Turns backing up off and forgets which room keys went to the backup (before a reset makes
   * a new version, so that every key is uploaded to it).
   */
  async disable(): Promise<void> {
    await this.machine.disableBackup();
    this.enabledVersion = undefined;
  }

  private async enable(info: BackupInfo): Promise<void> {
    if (this.enabledVersion === info.version) return;
    await this.machine.enableBackupV1(info.auth_data.public_key!, info.version);
    this.enabledVersion = info.version;
  }

  get enabled(): boolean {
    return this.enabledVersion !== undefined;
  }

  /** The backup version our keys go to, or null while backing up is off. */
  get version(): string | null {
    return this.enabledVersion ?? null;
  }

  /** Downloads and imports every room key of the current backup; returns counts. */
  async downloadAll(progress: BackupProgress = () => {}): Promise<{ imported: number; total: number }> {
    const { key, version } = await this.decryptionKey();
    const backup = await this.http.request<RoomKeyBackup>('GET', `/room_keys/keys?version=${seg(version)}`);
    const byRoom = new Map<string, Map<string, unknown>>();
    let total = 0;
    for (const [roomId, room] of Object.entries(backup.rooms ?? {})) {
      for (const [sessionId, data] of Object.entries(room.sessions ?? {})) {
        const session = decryptSession(key, roomId, sessionId, data);
        if (!session) continue;
        let sessions = byRoom.get(roomId);
        if (!sessions) byRoom.set(roomId, (sessions = new Map()));
        sessions.set(sessionId, session);
        total += 1;
      }
    }
    progress(0, total);
    const result = await this.machine.importBackedUpRoomKeys(
      new Map([...byRoom].map(([roomId, sessions]) => [new RoomId(roomId), sessions])),
      (done, all) => progress(Number(done), Number(all)),
      version,
    );
    progress(result.importedCount, total);
    return { imported: result.importedCount, total };
  }

  /**
   * Fetches one session's key (`GET /room_keys/keys/{roomId}/{sessionId}`) for an event
   * that could not be decrypted. True when a key was imported.
   */
  async fetchSession(roomId: string, sessionId: string): Promise<boolean> {
    const id = `${roomId}|${sessionId}`;
    const last = this.asked.get(id);
    if (last !== undefined && Date.now() - last < RETRY_MISS_MS) return false;
    this.asked.set(id, Date.now());
    const stored = await this.machine.getBackupKeys();
    if (!stored.decryptionKey || !stored.backupVersion) return false;
    let data: KeyBackupData;
    try {
      data = await this.http.request<KeyBackupData>(
        'GET',
        `/room_keys/keys/${seg(roomId)}/${seg(sessionId)}?version=${seg(stored.backupVersion)}`,
      );
    } catch (error) {
      if (error instanceof MatrixApiError && error.errcode === 'M_NOT_FOUND') return false;
      this.asked.delete(id); // a network failure may be retried
      throw error;
    }
    const session = decryptSession(stored.decryptionKey, roomId, sessionId, data);
    if (!session) return false;
    const result = await this.machine.importBackedUpRoomKeys(
      new Map([[new RoomId(roomId), new Map([[sessionId, session]])]]),
      () => {},
      stored.backupVersion,
    );
    return result.importedCount > 0;
  }

  /**
   * Uploads the room keys not yet in the backup (`PUT /room_keys/keys`), when enabled, in at
   * most `rounds` requests (the machine hands out a batch per request).
   */
  async uploadPending(rounds = 20): Promise<void> {
    if (!this.enabled) return;
    for (let round = 0; round < rounds; round++) {
      const request = await this.machine.backupRoomKeys();
      if (!request) return;
      await this.outgoing.send(request);
    }
  }

  private async decryptionKey(): Promise<{ key: BackupDecryptionKey; version: string }> {
    const stored = await this.machine.getBackupKeys();
    if (!stored.decryptionKey || !stored.backupVersion) {
      throw new KeyBackupError('Kirjava does not have your key-backup key yet: enter your recovery key first');
    }
    return { key: stored.decryptionKey, version: stored.backupVersion };
  }
}

/** A backed-up session decrypted into the shape `importBackedUpRoomKeys` takes. */
function decryptSession(
  key: BackupDecryptionKey,
  roomId: string,
  sessionId: string,
  data: KeyBackupData,
): Record<string, unknown> | undefined {
  try {
    const { ephemeral, mac, ciphertext } = data.session_data;
    const session = JSON.parse(key.decryptV1(ephemeral, mac, ciphertext)) as Record<string, unknown>;
    return { ...session, room_id: roomId, session_id: sessionId };
  } catch {
    return undefined; // one damaged entry must not stop the rest
  }
}
