import { type OlmMachine, RoomId, RoomSettings, EncryptionAlgorithm, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixApiError, type MatrixHttp, seg } from '../core/http.ts';
import type { OutgoingRequestProcessor } from '../core/outgoing-request-processor.ts';
import type { SharingPolicy } from '../../shared/messages.ts';
import { ShareLedger } from './share-ledger.ts';
import { MEGOLM, type RoomRules, RoomRulesBook, encryptionSettings, sharesWithInvited } from './room-rules.ts';
import { collectStrategy } from './sharing-policy.ts';
import { type Logger, errorText, silentLog } from '../core/log.ts';

/** Raised when a room's encryption state cannot be established: the send must not go out. */
export class EncryptionStateUnknownError extends Error {}

/** The room is encrypted with an algorithm Kirjava cannot encrypt for: the client gets this Matrix error. */
export class UnsupportedRoomAlgorithmError extends MatrixApiError {
  constructor(roomId: string, algorithm: string) {
    super(
      400,
      'M_UNKNOWN',
      `the room ${roomId} is encrypted with ${algorithm ? `the algorithm “${algorithm}”` : 'no algorithm'}, ` +
        `which Kirjava does not support (only ${MEGOLM}); the message was not sent.`,
      'send',
    );
  }
}

/**
 * Told of what the account learns about rooms' encryption, before anyone acts on it: the
 * send guard must drop a room's allow rule before the page hears the room is encrypted,
 * and add one before a send into an unencrypted room goes out.
 */
export interface RoomEncryptionObserver {
  encrypted(roomId: string): Promise<void>;
  plain(roomId: string): Promise<void>;
}

/** A room member who may get the room key: joined, or invited (when the history visibility allows). */
interface Member {
  userId: string;
  invited: boolean;
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
  private readonly members = new Map<string, Member[]>();
  /** Rooms whose last full key share still holds (see encrypt). */
  private readonly shares = new ShareLedger();
  /** Each room's encryption content and history visibility, as the homeserver confirms them. */
  private readonly rules: RoomRulesBook;

  constructor(
    private readonly machine: OlmMachine,
    private readonly http: MatrixHttp,
    private readonly outgoing: { flush(): Promise<void>; processor: OutgoingRequestProcessor },
    private readonly observer?: RoomEncryptionObserver,
  ) {
    this.rules = new RoomRulesBook(http);
  }

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
      const content = await this.http.request('GET', `/rooms/${seg(roomId)}/state/m.room.encryption/`);
      this.rules.confirmedEncryption(roomId, content);
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
   * same policy and room rules, no device list or trust change, the same session well
   * inside its rotation limits, shared less than five minutes ago), the event is encrypted
   * at once. The room's rules (RoomRulesBook) decide the algorithm, whether invited members
   * get the key and with what `shared_history`, and when the session rotates, as
   * matrix-js-sdk's RoomEncryptor sets them.
   */
  async encrypt(
    roomId: string,
    eventType: string,
    content: string,
    policy: SharingPolicy = 'all',
    log: Logger = silentLog,
  ): Promise<string> {
    const rules = await this.rules.current(roomId);
    if (rules.algorithm !== MEGOLM) throw new UnsupportedRoomAlgorithmError(roomId, rules.algorithm);
    const sharedAt = this.shares.holds(roomId, policy, rules);
    if (sharedAt !== undefined) {
      let encrypted: string;
      try {
        encrypted = await this.machine.encryptRoomEvent(new RoomId(roomId), eventType, content);
      } catch (error) {
        this.shares.forget(roomId); // whatever went wrong, the next send shares in full
        log.warn('encryption failed on the fast path', { room: roomId, error: errorText(error) });
        throw error;
      }
      this.shares.encrypted(roomId, encrypted, policy, sharedAt, rules);
      log.debug('encrypted with the last key share', { room: roomId });
      return encrypted;
    }
    this.shares.forget(roomId);
    const members = await this.recipientsUnder(roomId, rules);
    log.debug('members loaded and their devices tracked', {
      room: roomId,
      members: members.length,
      historyVisibility: rules.historyVisibility,
    });
    const claim = await this.machine.getMissingSessions(members.map((u) => u.clone()));
    if (claim) {
      await this.outgoing.processor.send(claim);
      log.debug('one-time keys claimed for devices without an Olm session', { room: roomId });
    }
    const settings = encryptionSettings(rules, collectStrategy(policy));
    // shareRoomKey right before encrypting: encrypting without a shared, unexpired session
    // never settles: the library panics inside.
    const sharedNow = Date.now(); // before the share: a session it begins is no older than this
    const toDevice = await this.machine.shareRoomKey(
      new RoomId(roomId),
      members.map((u) => u.clone()),
      settings,
    );
    for (const request of toDevice) await this.outgoing.processor.send(request);
    log.debug('room key shared', { room: roomId, policy, toDeviceRequests: toDevice.length });
    const encrypted = await this.machine.encryptRoomEvent(new RoomId(roomId), eventType, content);
    this.shares.encrypted(roomId, encrypted, policy, sharedNow, rules);
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

  /**
   * The room's members with their devices tracked and queried: who a room key would go to
   * (invited members only when the room's history visibility allows).
   */
  async recipients(roomId: string): Promise<UserId[]> {
    return this.recipientsUnder(roomId, await this.rules.current(roomId));
  }

  private async recipientsUnder(roomId: string, rules: RoomRules): Promise<UserId[]> {
    const invited = sharesWithInvited(rules);
    const members = (await this.loadMembers(roomId))
      .filter((member) => invited || !member.invited)
      .map((member) => new UserId(member.userId));
    await this.machine.updateTrackedUsers(members.map((u) => u.clone()));
    await this.outgoing.flush(); // keys/query for new or changed users
    return members;
  }

  /**
   * A sync body passed through the page, so its membership events are the page's word, not
   * the homeserver's: a forged `join` must never earn anyone a room key. Any membership event
   * of the room (state or timeline), or a gap (`limited`), is only a reason to load the list
   * (and the room's rules) again from the homeserver with the account's own token before the
   * next send. Its encryption and history visibility events may tighten the room's rules;
   * one that would loosen them has the homeserver asked again (RoomRulesBook).
   */
  observeRoom(roomId: string, events: unknown[], limited: boolean): void {
    if (this.rules.observe(roomId, events)) this.shares.forget(roomId);
    const changed = limited || (events as MemberEvent[]).some((event) => event?.type === 'm.room.member');
    if (!changed) return;
    this.members.delete(roomId);
    this.rules.forget(roomId);
    this.shares.forget(roomId);
  }

  /** Joined and invited members, from the server (`GET /rooms/{roomId}/members`) once. */
  private async loadMembers(roomId: string): Promise<Member[]> {
    let members = this.members.get(roomId);
    if (!members) {
      const body = await this.http.request<{ chunk?: MemberEvent[] }>(
        'GET',
        `/rooms/${seg(roomId)}/members?not_membership=leave`,
      );
      const byUser = new Map<string, Member>();
      for (const event of body.chunk ?? []) {
        const membership = event.content?.membership;
        if (typeof event.state_key === 'string' && (membership === 'join' || membership === 'invite')) {
          byUser.set(event.state_key, { userId: event.state_key, invited: membership === 'invite' });
        }
      }
      members = [...byUser.values()];
      this.members.set(roomId, members);
    }
    return members;
  }
}
