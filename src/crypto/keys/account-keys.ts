import type { OlmMachine, RoomKeyImportResult } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { RoomEvent, RoomEventDecryptor } from '../receive/event-decryptor.ts';
import type { MatrixHttp } from '../core/http.ts';
import { KeyBackup } from './key-backup.ts';
import { decryptKeyFile, encryptKeyFile } from './key-file.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';
import { Recovery, type RecoveryResult } from './recovery.ts';
import { SecureBackupSetup, type SecureBackupSetupResult, type SecureBackupState } from './secure-backup-setup.ts';
import type { SerialQueue } from '../core/serial-queue.ts';
import { TimelineHealer } from '../receive/timeline-healer.ts';
import { WAKE_EVENT } from '../../shared/names.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';

/** A key task under way, as the popup shows it ("N of M keys imported"). */
export interface KeyTaskProgress {
  task: 'recovery' | 'import' | 'export' | 'setup';
  done: number;
  total: number;
}

/** At most this many sessions are asked of the backup after one sync. */
const BACKUP_FETCHES_PER_SYNC = 20;
/** How long the popup's "has secure backup?" answer is reused before asking the server again. */
const STATE_TTL_MS = 30_000;

/**
 * Keys that follow the user, for one account: recovery from secret storage, the
 * server-side key backup, key files in Element's format, and healing of events whose key
 * arrives late. Work on the machine runs on the account's serial queue; passphrase
 * derivations run outside it so syncs are not held up.
 */
export class AccountKeys {
  readonly healer = new TimelineHealer();
  readonly backup: KeyBackup;
  private readonly recovery: Recovery;
  private readonly setup: SecureBackupSetup;
  /** The account's secure-backup state as last read from the server, and when. */
  private knownState: { state: SecureBackupState | null; at: number } | undefined;
  /**
   * The recovery key of a setup until the user says it is saved: the popup closes when it
   * loses focus, and a key lost before it was written down cannot be shown again. Worker
   * memory only, never storage.
   */
  private unsaved: string | null = null;
  private current: KeyTaskProgress | null = null;
  private resumed = false;
  private readonly self: { userId: string; deviceId: string };
  private wakes = 0;
  /** Told of the sessions whose keys the machine received or improved (any source). */
  readonly roomKeysUpdated = new Set<(sessions: { roomId: string; sessionId: string }[]) => void>();

  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    outgoing: OutgoingRequestProcessor,
    private readonly queue: SerialQueue,
    userId: string,
    deviceId: string,
    /** Told after a recovery: cross-signing keys may now trust other devices. */
    private readonly trustChanged: () => void = () => {},
    private readonly log: Logger = defaultLog,
  ) {
    this.backup = new KeyBackup(machine, http, outgoing);
    this.recovery = new Recovery(machine, http, outgoing, this.backup, userId, deviceId);
    this.setup = new SecureBackupSetup(machine, http, outgoing, this.backup, userId);
    this.self = { userId, deviceId };
    // Ask the user's other devices for missing keys; answer their requests when they are
    // verified devices of this user (the machine's policy).
    machine.roomKeyRequestsEnabled = true;
    machine.roomKeyForwardingEnabled = true;
    machine.registerRoomKeyUpdatedCallback(async (infos) => {
      this.healer.keysArrived(infos.map((info) => info.sessionId));
      const sessions = infos.map((info) => ({ roomId: info.roomId.toString(), sessionId: info.sessionId }));
      for (const listener of this.roomKeysUpdated) listener(sessions);
    });
  }

  /** Told of every progress step (tests; a UI that listens instead of polling). */
  onProgress: (progress: KeyTaskProgress) => void = () => {};

  get progress(): KeyTaskProgress | null {
    return this.current;
  }

  /** Unlocks secret storage with a recovery key or passphrase; see Recovery. */
  async recover(input: string): Promise<RecoveryResult> {
    this.knownState = undefined;
    const result = await this.track('recovery', (progress) =>
      this.queue.run(() => this.recovery.recover(input, progress)).finally(this.trustChanged),
    );
    await this.wakeClient();
    return result;
  }

  /**
   * Sets up secure backup (cross-signing, key backup, secret storage) for an account that has
   * none, after confirming the account password; see SecureBackupSetup. Returns the recovery
   * key, which is kept nowhere.
   */
  setUpSecureBackup(password: string): Promise<SecureBackupSetupResult> {
    return this.makeSecureBackup(() => this.setup.setUp(password));
  }

  /**
   * Replaces the account's cross-signing identity, secret storage and key backup after the
   * account password is confirmed, for a user who lost the recovery key; see
   * SecureBackupSetup.reset. Returns the new recovery key, which is kept nowhere.
   */
  resetSecureBackup(password: string): Promise<SecureBackupSetupResult> {
    return this.makeSecureBackup(() => this.setup.reset(password));
  }

  private async makeSecureBackup(make: () => Promise<SecureBackupSetupResult>): Promise<SecureBackupSetupResult> {
    try {
      const result = await this.track('setup', () => this.queue.run(make).finally(this.trustChanged));
      this.unsaved = result.recoveryKey;
      await this.queue
        .run(() => this.backup.uploadPending())
        .catch((error) =>
          this.log.warn('first key backup upload failed; retried after sync', { error: errorText(error) }),
        );
      return result;
    } finally {
      this.knownState = undefined;
    }
  }

  /** The recovery key of the last setup while the user has not confirmed saving it. */
  get unsavedRecoveryKey(): string | null {
    return this.unsaved;
  }

  /** The user saved the recovery key: it is forgotten. */
  recoveryKeySaved(): void {
    this.unsaved = null;
  }

  /**
   * Whether the account has secure backup, read from the server at most every 30 s; null
   * when the server could not be asked.
   */
  async secureBackupState(): Promise<SecureBackupState | null> {
    if (this.knownState && Date.now() - this.knownState.at < STATE_TTL_MS) return this.knownState.state;
    const state = await this.setup.state().catch(() => null);
    this.knownState = { state, at: Date.now() };
    return state;
  }

  /** Imports a key file; a wrong passphrase or damaged file throws before anything changes. */
  importKeyFile(text: string, passphrase: string): Promise<{ imported: number; total: number }> {
    return this.track('import', async (progress) => {
      const json = await decryptKeyFile(text, passphrase);
      const result = await this.queue.run(() =>
        this.machine.importExportedRoomKeys(json, (done, total) => progress(Number(done), Number(total))),
      );
      // The machine reports before each key, never after the last one.
      progress(result.importedCount, result.totalCount);
      this.noteImported(result);
      await this.wakeClient();
      return { imported: result.importedCount, total: result.totalCount };
    });
  }

  /** Every room key this device holds, as a key file protected by `passphrase`. */
  async exportKeyFile(passphrase: string, rounds?: number): Promise<{ file: string; count: number }> {
    return this.track('export', async () => {
      const json = await this.queue.run(() => this.machine.exportRoomKeys(() => true));
      const count = (JSON.parse(json) as unknown[]).length;
      return { file: await encryptKeyFile(json, passphrase, rounds), count };
    });
  }

  /** Tells the healer about an event that lacks its key. */
  undecryptable(roomId: string, envelope: RoomEvent): void {
    this.healer.remember(roomId, envelope);
  }

  /** Adds edits for healed events to a sync body; runs on the queue. */
  heal(decryptor: RoomEventDecryptor, sync: Record<string, unknown>): Promise<number> {
    const toDevice = sync.to_device as { events?: unknown } | undefined;
    if (toDevice && Array.isArray(toDevice.events)) {
      toDevice.events = toDevice.events.filter((event) => (event as { type?: unknown } | null)?.type !== WAKE_EVENT);
    }
    return this.healer.heal(decryptor, sync);
  }

  /**
   * Ends the client's pending `/sync` long-poll so healed events reach it now rather
   * than up to 30 s later: an empty to-device message to our own device, which the
   * homeserver delivers at once and `heal` removes from the body again.
   */
  private async wakeClient(): Promise<void> {
    if (!this.healer.hasArrivals) return;
    const { userId, deviceId } = this.self;
    const txn = `kirjava-wake-${Date.now()}-${++this.wakes}`;
    await this.http
      .request('PUT', `/sendToDevice/${WAKE_EVENT}/${txn}`, { messages: { [userId]: { [deviceId]: {} } } })
      .catch((error) => this.log.warn('could not wake the client for healed events', { error: errorText(error) }));
  }

  /**
   * After a sync was answered, on the queue: re-enables the backup after a restart, asks
   * the backup for the sessions undecryptable events need, uploads our new room keys.
   * Failures here must not break syncing; they are retried after the next sync.
   */
  async afterSync(): Promise<void> {
    try {
      if (!this.resumed) {
        await this.backup.resume();
        this.resumed = true; // after success only: a network failure is retried next sync
      }
      const stored = await this.machine.getBackupKeys();
      if (stored.decryptionKey) {
        const fetched: string[] = [];
        for (const { roomId, sessionId } of this.healer.missing().slice(0, BACKUP_FETCHES_PER_SYNC)) {
          if (await this.backup.fetchSession(roomId, sessionId)) fetched.push(sessionId);
        }
        this.healer.keysArrived(fetched);
        if (fetched.length > 0) await this.wakeClient();
      }
      await this.backup.uploadPending();
    } catch (error) {
      this.log.warn('key backup step failed; retrying after the next sync', { error: errorText(error) });
    }
  }

  private noteImported(result: RoomKeyImportResult): void {
    const sessions: string[] = [];
    for (const bySender of result.keys().values()) for (const ids of bySender.values()) sessions.push(...ids);
    this.healer.keysArrived(sessions);
  }

  private async track<T>(
    task: KeyTaskProgress['task'],
    run: (progress: (done: number, total: number) => void) => Promise<T>,
  ): Promise<T> {
    if (this.current) throw new Error('Another key task is under way for this account: wait for it to finish');
    this.current = { task, done: 0, total: 0 };
    try {
      return await run((done, total) => {
        this.current = { task, done, total };
        this.onProgress(this.current);
      });
    } finally {
      this.current = null;
    }
  }
}
