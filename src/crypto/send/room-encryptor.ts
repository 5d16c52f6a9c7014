import {
  EncryptionSettings,
  type OlmMachine,
  RoomId,
  RoomSettings,
  EncryptionAlgorithm,
  UserId,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixApiError, type MatrixHttp, seg } from '../core/http.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';
import type { SharingPolicy } from '../../shared/messages.ts';
import { ShareLedger } from './share-ledger.ts';
import { collectStrategy } from './sharing-policy.ts';
import { type Logger, errorText, silentLog } from '../core/log.ts';

/** Raised when a room's encryption state cannot be established: the send must not go out. */
export class EncryptionStateUnknownError extends Error {}

/**
 * Told of what the account learns about rooms' encryption, before anyone acts on it: the
 * send guard must drop a room's allow rule before the page hears the room is encrypted,
 * and add one before a send into an unencrypted room goes out.
 */
export interface RoomEncryptionObserver {
  encrypted(roomId: string): Promise<void>;
  plain(roomId: string): Promise<void>;
}

interface MemberEvent {
  type?: string;
  state_key?: string;
  content?: { membership?: string };
}

/**
 * Knows which rooms are encrypted and encrypts events for them (Matrix spec "Sending an
 * encrypted message event"): loads the members (clients lazy-load them, so their view is
 * not enough), tracks their devices, claims one-time keys for devices without an Olm
 * session, shares the room key, then encrypts. Encryption state is kept in the machine's
 * own store (`setRoomSettings`), so it survives worker restarts.
 */
export class RoomEncryptor {
  /** Rooms looked up this worker lifetime and found unencrypted. */
  private readonly plainRooms = new Set<string>();
  /**
   * Joined and invited members per room, as the homeserver last listed them; dropped when a
   * sync shows any membership change or a gap, so the next send loads the list again.
   */
  private readonly members = new Map<string, Set<string>>();
  /** Rooms whose last full key share still holds (see encrypt). */
  private readonly shares = new ShareLedger();

  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly outgoing: { flush(): Promise<void>; processor: OutgoingRequestProcessor },
    private readonly observer?: RoomEncryptionObserver,
  ) {}

  /** Records an `m.room.encryption` state event seen in a sync or history body. */
  async markEncrypted(roomId: string): Promise<void> {
    this.plainRooms.delete(roomId);
    await this.observer?.encrypted(roomId);
    let room: RoomId;
    try {
      room = new RoomId(roomId);
    } catch {
      return; // not a room id: nothing can be sent there either
    }
    const existing = await this.machine.getRoomSettings(room);
    if (existing) return; // encryption can never be turned off, nor downgraded
    const settings = new RoomSettings();
    // Megolm is the only room algorithm; an unknown one still means "encrypted".
    settings.algorithm = EncryptionAlgorithm.MegolmV1AesSha2;
    await this.machine.setRoomSettings(room, settings);
  }

  /**
   * Whether the room is encrypted; asks the homeserver for the room's `m.room.encryption`
   * state when this account has not seen it. Throws EncryptionStateUnknownError if the
   * homeserver cannot say: the caller must then fail closed.
   */
  async isEncrypted(roomId: string): Promise<boolean> {
    if (await this.machine.getRoomSettings(new RoomId(roomId))) return true;
    if (this.plainRooms.has(roomId)) {
      await this.observer?.plain(roomId);
      return false;
    }
    try {
      await this.http.request('GET', `/rooms/${seg(roomId)}/state/m.room.encryption/`);
      await this.markEncrypted(roomId);
      return true;
    } catch (error) {
      if (error instanceof MatrixApiError && error.status === 404 && error.errcode === 'M_NOT_FOUND') {
        this.plainRooms.add(roomId);
        await this.observer?.plain(roomId);
        return false;
      }
      throw new EncryptionStateUnknownError(
        `Kirjava could not find out whether ${roomId} is encrypted (${(error as Error).message}); the message ` +
          `was not sent.`,
      );
    }
  }

  /** Whether this account knows the room's encryption state without asking the homeserver. */
  async knows(roomId: string): Promise<boolean> {
    if (this.plainRooms.has(roomId)) return true;
    try {
      return Boolean(await this.machine.getRoomSettings(new RoomId(roomId)));
    } catch {
      return true; // not a room id: nothing to look up
    }
  }

  /**
   * Encrypts one event for the room's current members; returns the `m.room.encrypted`
   * content. The full path (Matrix spec "Sending an encrypted message event") loads the
   * members, tracks their devices, claims one-time keys for devices without an Olm session
   * and shares the room key, then encrypts: about 3–8 ms of store work even when nothing
   * changed. So while the room's last full share still holds (ShareLedger: same members,
   * same policy, no device list or trust change, the same session well inside its
   * rotation limits, shared less than five minutes ago), the event is encrypted at once.
   */
  async encrypt(
    roomId: string,
    eventType: string,
    content: string,
    policy: SharingPolicy = 'all',
    log: Logger = silentLog,
  ): Promise<string> {
    const sharedAt = this.shares.holds(roomId, policy);
    if (sharedAt !== undefined) {
      let encrypted: string;
      try {
        encrypted = await this.machine.encryptRoomEvent(new RoomId(roomId), eventType, content);
      } catch (error) {
        this.shares.forget(roomId); // whatever went wrong, the next send shares in full
        log.warn('encryption failed on the fast path', { room: roomId, error: errorText(error) });
        throw error;
      }
      this.shares.encrypted(roomId, encrypted, policy, sharedAt);
      log.debug('encrypted with the last key share', { room: roomId });
      return encrypted;
    }
    this.shares.forget(roomId);
    const members = await this.recipients(roomId);
    log.debug('members loaded and their devices tracked', { room: roomId, members: members.length });
    const claim = await this.machine.getMissingSessions(members.map((u) => u.clone()));
    if (claim) {
      await this.outgoing.processor.send(claim);
      log.debug('one-time keys claimed for devices without an Olm session', { room: roomId });
    }
    const settings = new EncryptionSettings();
    settings.sharingStrategy = collectStrategy(policy);
    // shareRoomKey right before encrypting: encrypting without a shared, unexpired session
    // never settles: the library panics inside.
    const toDevice = await this.machine.shareRoomKey(
      new RoomId(roomId),
      members.map((u) => u.clone()),
      settings,
    );
    for (const request of toDevice) await this.outgoing.processor.send(request);
    log.debug('room key shared', { room: roomId, policy, toDeviceRequests: toDevice.length });
    const sharedNow = Date.now();
    const encrypted = await this.machine.encryptRoomEvent(new RoomId(roomId), eventType, content);
    this.shares.encrypted(roomId, encrypted, policy, sharedNow);
    log.debug('encrypted', { room: roomId });
    return encrypted;
  }

  /**
   * Something about devices or trust may have changed (a device list in a sync, a keys
   * query or claim answered, a verification, a trust decision): every room's next send
   * shares in full again.
   */
  forgetShares(): void {
    this.shares.forgetAll();
  }

  /** The room's members with their devices tracked and queried: who a room key would go to. */
  async recipients(roomId: string): Promise<UserId[]> {
    const members = await this.loadMembers(roomId);
    await this.machine.updateTrackedUsers(members.map((u) => u.clone()));
    await this.outgoing.flush(); // keys/query for new or changed users
    return members;
  }

  /**
   * A sync body passed through the page, so its membership events are the page's word, not
   * the homeserver's: a forged `join` must never earn anyone a room key. Any membership event
   * of the room (state or timeline), or a gap (`limited`), is only a reason to load the list
   * again from the homeserver with the account's own token before the next send.
   */
  observeMembership(roomId: string, events: unknown[], limited: boolean): void {
    const changed = limited || (events as MemberEvent[]).some((event) => event?.type === 'm.room.member');
    if (!changed) return;
    this.members.delete(roomId);
    this.shares.forget(roomId);
  }

  /** Joined and invited members, from the server (`GET /rooms/{roomId}/members`) once. */
  private async loadMembers(roomId: string): Promise<UserId[]> {
    let users = this.members.get(roomId);
    if (!users) {
      const body = await this.http.request<{ chunk?: MemberEvent[] }>(
        'GET',
        `/rooms/${seg(roomId)}/members?not_membership=leave`,
      );
      users = new Set<string>();
      for (const event of body.chunk ?? []) {
        const membership = event.content?.membership;
        if (typeof event.state_key === 'string' && (membership === 'join' || membership === 'invite')) {
          users.add(event.state_key);
        }
      }
      this.members.set(roomId, users);
    }
    return [...users].map((id) => new UserId(id));
  }
}
