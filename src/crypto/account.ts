import {
  DeviceId,
  OlmMachine,
  RoomMessageRequest,
  StoreHandle,
  UserId,
  getVersions,
  initAsync,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { AccountKeys } from './keys/account-keys.ts';
import type { DecryptedEventCache } from './receive/decrypted-cache.ts';
import { type DecryptionListener, RoomEventDecryptor } from './receive/event-decryptor.ts';
import { FastDecryption } from './receive/fast-decryption.ts';
import { type FetchLike, MatrixApiError, MatrixHttp, seg } from './core/http.ts';
import type { RetryPolicy } from './core/retry.ts';
import { type MediaKey, MediaKeyRing, type MediaKeyStore } from './media/media-keys.ts';
import { MentionTracker } from './receive/mentions.ts';
import { OutgoingRequestLoop } from './core/outgoing-request-loop.ts';
import { OutgoingRequestProcessor } from './core/outgoing-request-processor.ts';
import { type RoomEncryptionObserver, RoomEncryptor } from './send/room-encryptor.ts';
import { SerialQueue } from './core/serial-queue.ts';
import { unref } from './core/later.ts';
import { SyncDecryptor, decryptHistory, decryptNotifications, isObject } from './receive/sync-decryptor.ts';
import { DeviceTrust } from './trust/device-trust.ts';
import { VerificationFlows } from './trust/verification.ts';
import { SendPolicy, type SharingDecisions } from './send/sharing-policy.ts';
import { RoomVerificationMessenger } from './trust/room-verification.ts';
import { JOINED_ROOMS_KEY } from '../shared/names.ts';
import type { RoomLabel } from '../shared/room-label.ts';
import { roomLabelsIn } from './receive/room-labels.ts';
import { type Logger, defaultLog, errorText } from './core/log.ts';
import { startupMark } from './core/startup-marks.ts';

/** The Matrix account an OlmMachine belongs to: homeserver, user and device. */
export interface AccountIdentity {
  baseUrl: string;
  userId: string;
  deviceId: string;
}

/** What CryptoAccount.open needs: the account, its access token, and where it keeps its state. */
export interface OpenOptions extends AccountIdentity {
  accessToken: string;
  /** IndexedDB store name; omit for the in-memory store (Node tests). */
  storeName?: string;
  /** Passphrase for the store's encryption at rest (runs PBKDF2, ≈ 170 ms per open). */
  storePassphrase?: string;
  /**
   * Raw 32-byte key for the store's encryption at rest, used instead of a passphrase: no
   * key derivation, so a worker restart opens the store ≈ 170 ms sooner. A store made
   * with a passphrase only opens with that passphrase.
   */
  storeKey?: Uint8Array;
  fetchFn?: FetchLike;
  /** Keeps the keys of encrypted files across worker restarts; omit to keep them in memory only. */
  mediaKeyStore?: MediaKeyStore;
  /** Where decrypted events are remembered (encrypted at rest); none: every event is decrypted. */
  decryptedCache?: DecryptedEventCache;
  /** Told when a room is learnt to be encrypted or not (the send guard). */
  roomObserver?: RoomEncryptionObserver;
  /** The user's key sharing choices (SendPolicy); without them room keys are shared under 'all'. */
  sharing?: SharingDecisions;
  /** Overrides of the retry policy for the machine's requests (DEFAULT_RETRY). */
  retry?: Partial<RetryPolicy>;
  /** Timeout of any one homeserver request (REQUEST_TIMEOUT_MS). */
  requestTimeoutMs?: number;
  /** Where the account's pieces log (never a key, token or plaintext); the console when omitted. */
  log?: Logger;
}

/** What an account is given besides its machine and homeserver. */
type AccountParts = Pick<
  OpenOptions,
  'mediaKeyStore' | 'decryptedCache' | 'roomObserver' | 'sharing' | 'retry' | 'log'
>;

/** What to send instead of the page's plaintext event, or leave it alone. */
export type SendDecision = { eventType: 'm.room.encrypted'; body: string } | 'passthrough';

/** The device's keys are on the server but are not this machine's: encryption cannot work. */
export class ForeignDeviceKeysError extends Error {
  constructor() {
    super(
      'This session already has encryption keys from another app: log out and log in again in your Matrix client ' +
        'so Kirjava gets a fresh session.',
    );
  }
}

let wasmReady: Promise<void> | undefined;
/** Loads the WASM module once, lazily: top-level await breaks service worker registration. */
export const loadCrypto = (): Promise<void> => (wasmReady ??= initAsync());

/** The crypto library's build and the Rust crates in it, e.g. `matrix-sdk-crypto-wasm v18.9.0 (…)`. */
export async function cryptoLibraryVersion(): Promise<string> {
  await loadCrypto();
  const versions = getVersions();
  try {
    return (
      `matrix-sdk-crypto-wasm ${versions.git_description} (matrix-sdk-crypto ${versions.matrix_sdk_crypto}, ` +
      `vodozemac ${versions.vodozemac})`
    );
  } finally {
    versions.free();
  }
}

/** How long the account must have answered no body before work that can wait runs (see idle). */
const QUIET_MS = 50;
/** Work that can wait waits at most this long, so that a stream of answers cannot starve it. */
const QUIET_WAIT_MAX_MS = 10_000;

/**
 * One Matrix account's end-to-end encryption: the OlmMachine of (homeserver, user,
 * device) and everything that runs on it. Every public operation runs on the account's
 * serial queue.
 */
export class CryptoAccount {
  private readonly queue = new SerialQueue();
  /** Bodies being decrypted for the client now, when the last was answered, who waits (see idle). */
  private answering = 0;
  private lastAnswered = 0;
  private quietTimer: ReturnType<typeof setTimeout> | undefined;
  private readonly idleWaiters: (() => void)[] = [];
  private readonly decryptedCache: DecryptedEventCache | undefined;
  private readonly outgoing: OutgoingRequestProcessor;
  private readonly decryptor: RoomEventDecryptor;
  /** Decryption from in-memory copies of the room keys (the persistent store is slow per event). */
  readonly fastDecryption: FastDecryption;
  private readonly rooms: RoomEncryptor;
  private readonly syncs: SyncDecryptor;
  /** The user's unread mentions in encrypted rooms: the syncs' highlight counts and `/notifications`. */
  private readonly mentions: MentionTracker;
  private readonly media: MediaKeyRing;
  private readonly outgoingLoop: OutgoingRequestLoop;
  /** Recovery, key backup, key files and late-key healing. */
  readonly keys: AccountKeys;
  /** The account's devices and the user's trust decisions about them. */
  readonly devices: DeviceTrust;
  /** Interactive verifications (SAS, QR) and cross-signing secrets. */
  readonly verifications: VerificationFlows;
  /** Who room keys go to, under the user's sharing policy (OpenOptions.sharing). */
  readonly sendPolicy: SendPolicy;
  /** Called after each processed sync (e.g. to update the badge); errors are only logged. */
  readonly afterSync = new Set<() => Promise<void> | void>();
  /** Told of the room names and aliases each sync changes (the popup names rooms with them). */
  readonly roomLabelsChanged = new Set<(labels: Map<string, RoomLabel>) => void>();
  /** Joined rooms seen in syncs whose encryption state may still be unknown. */
  private readonly roomsToLearn = new Set<string>();
  private learning: Promise<void> | undefined;
  private closed = false;
  private readonly log: Logger;

  private constructor(
    readonly identity: AccountIdentity,
    readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    { mediaKeyStore, decryptedCache, roomObserver, sharing, retry, log = defaultLog }: AccountParts,
  ) {
    this.log = log;
    this.media = new MediaKeyRing(undefined, mediaKeyStore, log);
    this.decryptedCache = decryptedCache;
    decryptedCache?.writeWhenQuiet(() => this.idle());
    // Anything that may change who a room key goes to makes the next sends share in full,
    // and the shields of decrypted events be asked again.
    const devicesChanged = () => {
      this.rooms.forgetShares();
      this.decryptor.trustChanged();
    };
    this.outgoing = new OutgoingRequestProcessor(machine, http, devicesChanged, retry, undefined, log);
    this.outgoingLoop = new OutgoingRequestLoop(machine, this.outgoing);
    this.keys = new AccountKeys(
      machine,
      http,
      this.outgoing,
      this.queue,
      identity.userId,
      identity.deviceId,
      devicesChanged,
      log,
    );
    this.fastDecryption = new FastDecryption(machine, identity, log);
    this.keys.roomKeysUpdated.add((sessions) => this.fastDecryption.keysUpdated(sessions));
    this.fastDecryption.mirror.feedSoon(); // every stored key, once the account's first requests are done
    this.decryptor = new RoomEventDecryptor(
      machine,
      this.media,
      { onUndecryptable: (roomId, envelope) => this.keys.undecryptable(roomId, envelope), cache: decryptedCache },
      log,
      this.fastDecryption,
    );
    this.rooms = new RoomEncryptor(
      machine,
      http,
      {
        flush: () => this.flushOutgoing(),
        processor: this.outgoing,
      },
      roomObserver,
    );
    this.mentions = new MentionTracker(identity.userId);
    this.syncs = new SyncDecryptor(
      machine,
      this.decryptor,
      this.rooms,
      this.mentions,
      (roomId, event) => this.verifications.receiveRoomEvent(roomId, event),
      log,
    );
    machine.registerDevicesUpdatedCallback(async () => devicesChanged());
    machine.registerUserIdentityUpdatedCallback(async () => devicesChanged());
    // Trust decisions, verifications and the sharing policy's lookups run through this.
    const run = <T>(job: () => Promise<T>) =>
      this.queue.run(async () => {
        devicesChanged();
        try {
          return await job();
        } finally {
          devicesChanged();
        }
      });
    const roomMessenger = new RoomVerificationMessenger(machine, this.rooms, http);
    this.devices = new DeviceTrust(
      machine,
      run,
      () => roomMessenger.trackEncryptedRoomMembers(),
      (request) => this.outgoing.send(request),
    );
    const recipientsOf = async (roomId: string) =>
      (await this.rooms.isEncrypted(roomId)) ? this.rooms.recipients(roomId) : [];
    this.sendPolicy = new SendPolicy(machine, recipientsOf, run, sharing);
    this.verifications = new VerificationFlows(machine, {
      run,
      // The user's own steps go encrypted; messages the machine queues by itself (e.g. a
      // `done` after the other side's MAC) leave through the outgoing loop in plaintext, as
      // matrix-js-sdk sends all of them: encrypting there would re-enter that loop.
      send: (request) =>
        request instanceof RoomMessageRequest ? roomMessenger.send(request) : this.outgoing.send(request),
      flush: () => this.flushOutgoingQueued(),
      rooms: roomMessenger,
    });
  }

  static async open(options: OpenOptions): Promise<CryptoAccount> {
    await loadCrypto();
    startupMark('wasm');
    let machine: OlmMachine;
    if (options.storeName && options.storeKey) {
      const store = await StoreHandle.openWithKey(options.storeName, options.storeKey);
      machine = await OlmMachine.initFromStore(new UserId(options.userId), new DeviceId(options.deviceId), store);
      store.free();
    } else {
      machine = await OlmMachine.initialize(
        new UserId(options.userId),
        new DeviceId(options.deviceId),
        options.storeName,
        options.storePassphrase,
      );
    }
    startupMark('machine');
    const http = new MatrixHttp(options.baseUrl, options.accessToken, options.fetchFn, options.requestTimeoutMs);
    const { baseUrl, userId, deviceId } = options;
    return new CryptoAccount({ baseUrl, userId, deviceId }, machine, http, options);
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
      const answer = await this.http.request<{
        device_keys?: Record<string, Record<string, { keys?: Record<string, string> }>>;
      }>('POST', '/keys/query', { device_keys: { [userId]: [deviceId] } });
      const existing = answer.device_keys?.[userId]?.[deviceId]?.keys?.[`ed25519:${deviceId}`];
      if (existing && existing !== this.ed25519) throw new ForeignDeviceKeysError();
      await this.outgoingLoop.run();
    });
  }

  /** Feeds a /sync body to the machine and returns it with encrypted events decrypted. */
  processSync(body: string): Promise<string> {
    return this.answer(async () => {
      const answer = await this.decryptSync(body);
      startupMark('sync-decrypted');
      return answer;
    });
  }

  private async decryptSync(body: string): Promise<string> {
    const sync = parseObject(body);
    if (!sync) return body;
    const joined = isObject(sync.rooms) && isObject(sync.rooms.join) ? Object.keys(sync.rooms.join) : [];
    // The page hook sends only part of a sync, with every joined room listed here.
    const listed = sync[JOINED_ROOMS_KEY];
    for (const roomId of [...joined, ...(Array.isArray(listed) ? listed : [])]) {
      if (typeof roomId === 'string') this.roomsToLearn.add(roomId);
    }
    const labels = roomLabelsIn(sync);
    if (labels.size > 0) for (const listener of this.roomLabelsChanged) listener(labels);
    const result = await this.queue.run(async () => {
      const processed = await this.syncs.process(sync);
      await this.keys.heal(this.decryptor, processed);
      return processed;
    });
    await this.verifications
      .advance()
      .catch((error) => this.log.warn('verification step failed', { error: errorText(error) }));
    for (const listener of this.afterSync) {
      Promise.resolve()
        .then(listener)
        .catch((error) => this.log.warn('after-sync listener failed', { error: errorText(error) }));
    }
    await this.media.stored();
    return serializeOr(result, body);
  }

  /**
   * The room an alias names, from the homeserver's room directory
   * (`GET /directory/room/{roomAlias}`); a Matrix error (M_NOT_FOUND) when there is none.
   */
  async resolveRoomAlias(alias: string): Promise<string> {
    const answer = await this.http.request<{ room_id?: unknown }>(
      'GET',
      `/directory/room/${encodeURIComponent(alias)}`,
    );
    if (typeof answer.room_id !== 'string') throw new Error(`The homeserver knows no room ${alias}`);
    return answer.room_id;
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
  processHistory(roomId: string, body: string): Promise<string> {
    return this.answer(async () => {
      const parsed = parseObject(body);
      if (!parsed) return body;
      const result = await this.queue.run(() => decryptHistory(this.decryptor, this.rooms, roomId, parsed));
      await this.media.stored();
      return serializeOr(result, body);
    });
  }

  /**
   * Settles once the account has answered no sync, history page or notifications body for
   * QUIET_MS (or after QUIET_WAIT_MAX_MS at most; never rejects). Work that can wait (the
   * cache's and the search index's writes) waits for it: off the path of the answer the
   * client waits for, and of the next one when the client asks again at once (catching up
   * after a day away, scrolling back through history).
   */
  idle(): Promise<void> {
    if (this.isQuiet() || this.closed) return Promise.resolve();
    return new Promise((resolve) => {
      let settled = false;
      const settle = () => {
        if (settled) return;
        settled = true;
        resolve();
      };
      this.idleWaiters.push(settle);
      unref(setTimeout(settle, QUIET_WAIT_MAX_MS));
      this.wakeWhenQuiet();
    });
  }

  private isQuiet(): boolean {
    return this.answering === 0 && performance.now() - this.lastAnswered >= QUIET_MS;
  }

  private wakeWhenQuiet(): void {
    if (this.answering > 0 || this.quietTimer !== undefined || this.idleWaiters.length === 0) return;
    const wait = Math.max(0, QUIET_MS - (performance.now() - this.lastAnswered));
    this.quietTimer = setTimeout(() => {
      this.quietTimer = undefined;
      if (this.isQuiet()) for (const settle of this.idleWaiters.splice(0)) settle();
      else this.wakeWhenQuiet();
    }, wait);
  }

  /** Runs `work` as a body the client waits for (see idle). */
  private async answer<T>(work: () => Promise<T>): Promise<T> {
    this.answering += 1;
    try {
      return await work();
    } finally {
      this.answering -= 1;
      this.lastAnswered = performance.now();
      this.wakeWhenQuiet();
    }
  }

  /**
   * Calls `listener` with every event this account decrypts from now on (sync, history,
   * notifications); returns the function that stops it.
   */
  onDecrypted(listener: DecryptionListener): () => void {
    this.decryptor.listeners.add(listener);
    return () => this.decryptor.listeners.delete(listener);
  }

  /** Calls `listener` with the id of every event redacted in a sync or history body from now on. */
  onRedacted(listener: (roomId: string, redactedId: string) => void): () => void {
    this.decryptor.redactionListeners.add(listener);
    return () => this.decryptor.redactionListeners.delete(listener);
  }

  /**
   * Fetches a history response of `roomId` with the account's own token and decrypts it:
   * `path` is below `/rooms/{roomId}/`, e.g. `messages?dir=b` or `context/{eventId}`.
   */
  async fetchHistory(roomId: string, path: string): Promise<Record<string, unknown>> {
    const body = await this.http.requestText('GET', `/rooms/${seg(roomId)}/${path}`);
    return JSON.parse(await this.processHistory(roomId, body)) as Record<string, unknown>;
  }

  /** The rooms the account has joined (`GET /joined_rooms`) that are encrypted. */
  async joinedEncryptedRooms(): Promise<string[]> {
    const joined = await this.http.request<{ joined_rooms?: unknown }>('GET', '/joined_rooms');
    const rooms = Array.isArray(joined.joined_rooms)
      ? joined.joined_rooms.filter((r): r is string => typeof r === 'string')
      : [];
    const encrypted: string[] = [];
    for (const roomId of rooms) {
      if (await this.queue.run(() => this.rooms.isEncrypted(roomId))) encrypted.push(roomId);
    }
    return encrypted;
  }

  /**
   * Decrypts a /notifications body (events of many rooms), mentions in encrypted messages
   * highlighted; `onlyHighlight` keeps the highlights only (the page's `only=highlight`).
   */
  processNotifications(body: string, onlyHighlight = false): Promise<string> {
    return this.answer(async () => {
      const parsed = parseObject(body);
      if (!parsed) return body;
      const result = await this.queue.run(() =>
        decryptNotifications(this.decryptor, parsed, this.mentions, onlyHighlight),
      );
      await this.media.stored();
      return serializeOr(result, body);
    });
  }

  /** Decides what a `PUT /rooms/{roomId}/send/{eventType}/{txnId}` must send instead. */
  async prepareSend(roomId: string, eventType: string, body: string, log = this.log): Promise<SendDecision> {
    if (eventType === 'm.room.encrypted') return 'passthrough';
    // May wait for the user ('ask' policy): outside the queue, so syncs go on meanwhile.
    const policy = await this.sendPolicy.approve(roomId, log);
    return this.queue.run(async () => {
      if (!(await this.rooms.isEncrypted(roomId))) {
        log.debug('unencrypted room: the send passes as it is', { room: roomId });
        return 'passthrough';
      }
      const content = parseObject(body);
      if (!content) throw new MatrixApiError(400, 'M_NOT_JSON', 'Content must be a JSON object', 'send');
      const encrypted = await this.rooms.encrypt(roomId, eventType, JSON.stringify(content), policy, log);
      return { eventType: 'm.room.encrypted', body: encrypted };
    });
  }

  /** Uploads every room key not yet in the key backup (before a logout); nothing while backup is off. */
  backUpAllRoomKeys(): Promise<void> {
    return this.queue.run(async () => {
      if (!this.keys.backup.enabled) await this.keys.backup.resume();
      await this.keys.backup.uploadPending(Number.POSITIVE_INFINITY);
    });
  }

  /** The key of an encrypted file a decrypted event of this account named (see MediaKeyRing). */
  mediaKey(mxc: string): Promise<MediaKey | undefined> {
    return this.media.lookup(mxc);
  }

  /** Sends the machine's pending outgoing requests (keys upload/query/claim, to-device, ...). */
  flushOutgoing(): Promise<void> {
    return this.outgoingLoop.run();
  }

  /** Runs the outgoing-request loop on the account queue (after a sync was answered). */
  flushOutgoingQueued(): Promise<void> {
    return this.queue.run(async () => {
      await this.outgoingLoop.run();
      await this.keys.afterSync();
    });
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.quietTimer !== undefined) clearTimeout(this.quietTimer);
    this.decryptedCache?.close();
    for (const settle of this.idleWaiters.splice(0)) settle();
    this.fastDecryption.close();
    this.machine.close();
  }

  /** Closes the machine once the work already queued is done (before its store is deleted). */
  shutdown(): Promise<void> {
    return this.queue.run(async () => this.close());
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
