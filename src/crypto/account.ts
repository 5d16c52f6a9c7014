import { DeviceId, OlmMachine, UserId, initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import { RoomEventDecryptor } from './event-decryptor.js';
import { type FetchLike, MatrixApiError, MatrixHttp } from './http.js';
import { OutgoingRequestProcessor } from './outgoing.js';
import { type RoomEncryptionObserver, RoomEncryptor } from './room-encryptor.js';
import { SerialQueue } from './serial-queue.js';
import { SyncDecryptor, decryptHistory, isObject } from './sync-decryptor.js';

export interface AccountIdentity {
  baseUrl: string;
  userId: string;
  deviceId: string;
}

export interface OpenOptions extends AccountIdentity {
  accessToken: string;
  /** IndexedDB store name; omit for the in-memory store (Node tests). */
  storeName?: string;
  /** Key for the store's encryption at rest. */
  storePassphrase?: string;
  fetchFn?: FetchLike;
  /** Told when a room is learnt to be encrypted or not (the send guard). */
  roomObserver?: RoomEncryptionObserver;
}

/** What to send instead of the page's plaintext event, or leave it alone. */
export type SendDecision = { eventType: 'm.room.encrypted'; body: string } | 'passthrough';

/** The device's keys are on the server but are not this machine's: encryption cannot work. */
export class ForeignDeviceKeysError extends Error {
  constructor() {
    super(
      'This session already has encryption keys from another app: log out and log in again in your Matrix client so Kirjava gets a fresh session.',
    );
  }
}

let wasmReady: Promise<void> | undefined;
/** Loads the WASM module once, lazily: top-level await breaks service worker registration. */
export const loadCrypto = (): Promise<void> => (wasmReady ??= initAsync());

/**
 * One Matrix account's end-to-end encryption: the OlmMachine of (homeserver, user,
 * device) and everything that runs on it. Every public operation runs on the account's
 * serial queue.
 */
export class CryptoAccount {
  private readonly queue = new SerialQueue();
  private readonly outgoing: OutgoingRequestProcessor;
  private readonly decryptor: RoomEventDecryptor;
  private readonly rooms: RoomEncryptor;
  private readonly syncs: SyncDecryptor;
  private flushing: Promise<void> | undefined;
  /** Joined rooms seen in syncs whose encryption state may still be unknown. */
  private readonly roomsToLearn = new Set<string>();
  private learning: Promise<void> | undefined;

  private constructor(
    readonly identity: AccountIdentity,
    readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    roomObserver?: RoomEncryptionObserver,
  ) {
    this.outgoing = new OutgoingRequestProcessor(machine, http);
    this.decryptor = new RoomEventDecryptor(machine);
    this.rooms = new RoomEncryptor(machine, http, {
      flush: () => this.flushOutgoing(),
      processor: this.outgoing,
    }, roomObserver);
    this.syncs = new SyncDecryptor(machine, this.decryptor, this.rooms);
  }

  static async open(options: OpenOptions): Promise<CryptoAccount> {
    await loadCrypto();
    const machine = await OlmMachine.initialize(
      new UserId(options.userId),
      new DeviceId(options.deviceId),
      options.storeName,
      options.storePassphrase,
    );
    const http = new MatrixHttp(options.baseUrl, options.accessToken, options.fetchFn);
    const { baseUrl, userId, deviceId } = options;
    return new CryptoAccount({ baseUrl, userId, deviceId }, machine, http, options.roomObserver);
  }

  /** The device's ed25519 key (unpadded base64), as Element shows the "session key". */
  get ed25519(): string {
    return this.machine.identityKeys.ed25519.toBase64();
  }

  /**
   * For a device this machine has never uploaded keys for: refuses when the server
   * already holds other keys for it (another app's E2EE device), then uploads ours.
   */
  async claimDevice(): Promise<void> {
    return this.queue.run(async () => {
      const { userId, deviceId } = this.identity;
      const answer = await this.http.request<{ device_keys?: Record<string, Record<string, { keys?: Record<string, string> }>> }>(
        'POST',
        '/keys/query',
        { device_keys: { [userId]: [deviceId] } },
      );
      const existing = answer.device_keys?.[userId]?.[deviceId]?.keys?.[`ed25519:${deviceId}`];
      if (existing && existing !== this.ed25519) throw new ForeignDeviceKeysError();
      await this.flushOutgoingNow();
    });
  }

  /** Feeds a /sync body to the machine and returns it with encrypted events decrypted. */
  async processSync(body: string): Promise<string> {
    const sync = parseObject(body);
    if (!sync) return body;
    const joined = isObject(sync.rooms) && isObject(sync.rooms.join) ? Object.keys(sync.rooms.join) : [];
    for (const roomId of joined) this.roomsToLearn.add(roomId);
    const result = await this.queue.run(() => this.syncs.process(sync));
    return serializeOr(result, body);
  }

  /**
   * Looks up the encryption state of joined rooms seen in syncs that this account does not
   * know yet, one at a time with a pause in between; run after the client got its sync. So
   * the send guard learns which rooms are unencrypted before a part of the client the hook
   * cannot see (a Web Worker) sends there. `skip` tells of rooms already known elsewhere.
   */
  learnRoomEncryption(skip: (roomId: string) => Promise<boolean>, pauseMs = 100): Promise<void> {
    // `.finally` runs after the assignment, even when there is nothing to learn.
    this.learning ??= this.learnRooms(skip, pauseMs).finally(() => (this.learning = undefined));
    return this.learning;
  }

  private async learnRooms(skip: (roomId: string) => Promise<boolean>, pauseMs: number): Promise<void> {
    for (const roomId of this.roomsToLearn) {
      this.roomsToLearn.delete(roomId);
      if (await skip(roomId)) continue;
      const looked = await this.queue.run(async () => {
        if (await this.rooms.knows(roomId)) return false;
        await this.rooms.isEncrypted(roomId).catch(() => undefined); // tried again when the room is in a sync again
        return true;
      });
      if (looked) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
  }

  /** Decrypts a /messages, /context or /event body of `roomId`. */
  async processHistory(roomId: string, body: string): Promise<string> {
    const parsed = parseObject(body);
    if (!parsed) return body;
    const result = await this.queue.run(() => decryptHistory(this.decryptor, this.rooms, roomId, parsed));
    return serializeOr(result, body);
  }

  /** Decides what a `PUT /rooms/{roomId}/send/{eventType}/{txnId}` must send instead. */
  async prepareSend(roomId: string, eventType: string, body: string): Promise<SendDecision> {
    if (eventType === 'm.room.encrypted') return 'passthrough';
    return this.queue.run(async () => {
      if (!(await this.rooms.isEncrypted(roomId))) return 'passthrough';
      const content = parseObject(body);
      if (!content) throw new MatrixApiError(400, 'M_NOT_JSON', 'Content must be a JSON object', 'send');
      const encrypted = await this.rooms.encrypt(roomId, eventType, JSON.stringify(content));
      return { eventType: 'm.room.encrypted', body: encrypted };
    });
  }

  /** Sends the machine's pending outgoing requests (keys upload/query/claim, to-device, ...). */
  flushOutgoing(): Promise<void> {
    return this.flushOutgoingNow();
  }

  /** Runs the outgoing-request loop on the account queue (after a sync was answered). */
  flushOutgoingQueued(): Promise<void> {
    return this.queue.run(() => this.flushOutgoingNow());
  }

  private flushOutgoingNow(): Promise<void> {
    // A flush already under way covers a caller that arrives meanwhile only if it loops
    // until the machine has nothing left, which it does.
    this.flushing ??= (async () => {
      try {
        for (let round = 0; round < 10; round++) {
          const requests = await this.machine.outgoingRequests();
          if (requests.length === 0) return;
          for (const request of requests) await this.outgoing.send(request);
        }
      } finally {
        this.flushing = undefined;
      }
    })();
    return this.flushing;
  }

  close(): void {
    this.machine.close();
  }

  /** Closes the machine once the work already queued is done (before its store is deleted). */
  shutdown(): Promise<void> {
    return this.queue.run(async () => this.machine.close());
  }
}

function parseObject(text: string): Record<string, unknown> | undefined {
  try {
    const value = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The processed body as JSON; the original body when it cannot be serialized (content
 * nested deeper than JSON.stringify's stack allows): nothing is dropped, nothing decrypted.
 */
function serializeOr(result: unknown, original: string): string {
  try {
    return JSON.stringify(result);
  } catch {
    return original;
  }
}
