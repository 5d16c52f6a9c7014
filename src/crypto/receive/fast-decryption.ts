import {
  DecryptionErrorCode,
  DecryptionSettings,
  type EncryptionInfo,
  type OlmMachine,
  RoomId,
  type ShieldColor,
  type ShieldStateCode,
  TrustRequirement,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { RoomKeyMirror, type SessionRef } from './room-key-mirror.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';

/** What the sender's device and the library's shield say about one decrypted event. */
export interface SenderInfo {
  senderDevice: string | null;
  senderCurve25519Key: string;
  shield: { color: ShieldColor; code: ShieldStateCode | undefined; message: string | undefined };
}

/** One decryption, from either machine: the plaintext event (JSON) and what is known of its sender. */
export interface Decryption extends SenderInfo {
  event: string;
}

/** The sender facts of a decryption or an EncryptionInfo (both carry the same, non-strict shield). */
export function senderInfoOf(source: Pick<EncryptionInfo, 'senderDevice' | 'senderCurve25519Key' | 'shieldState'>) {
  const shield = source.shieldState(false);
  return {
    senderDevice: source.senderDevice?.toString() ?? null,
    senderCurve25519Key: source.senderCurve25519Key,
    shield: { color: shield.color, code: shield.code, message: shield.message },
  } satisfies SenderInfo;
}

/** More (session, sender) pairs than this and the shield cache starts over. */
const SHIELD_LIMIT = 20_000;

/**
 * The shield and sender device of each (room, session, sender), taken once from the
 * persistent machine (`getRoomEventEncryptionInfo`, which gives what `decryptRoomEvent`
 * would) and kept until something it depends on may have changed: the sender's devices or
 * identity, our trust in them (every trust action), or the session's key itself.
 */
class SenderShields {
  private bySession = new Map<string, Map<string, Promise<SenderInfo>>>();
  private count = 0;

  constructor(private readonly machine: OlmMachine) {}

  of(roomId: string, sessionId: string, sender: string, envelopeJson: string): Promise<SenderInfo> {
    if (this.count >= SHIELD_LIMIT) this.clear();
    let entries = this.bySession.get(sessionId);
    if (!entries) this.bySession.set(sessionId, (entries = new Map()));
    const key = `${roomId}\u0000${sender}`;
    const known = entries.get(key);
    if (known) return known;
    const info = this.machine.getRoomEventEncryptionInfo(envelopeJson, new RoomId(roomId)).then(senderInfoOf);
    entries.set(key, info);
    this.count += 1;
    // A failed lookup is not kept: the event falls back, the next one asks again.
    const holder = entries;
    info.catch(() => {
      if (holder.get(key) === info && holder.delete(key)) this.count -= 1;
    });
    return info;
  }

  forgetSessions(sessionIds: Iterable<string>): void {
    for (const id of sessionIds) {
      this.count -= this.bySession.get(id)?.size ?? 0;
      this.bySession.delete(id);
    }
  }

  clear(): void {
    this.bySession = new Map();
    this.count = 0;
  }
}

/**
 * Decrypts room events on the decrypt-only mirror of the room keys (RoomKeyMirror) with
 * the persistent machine's shield for the sender (SenderShields), giving what the
 * persistent machine's `decryptRoomEvent` gives, without its per-event store reads.
 * Anything it cannot do (session not copied, any error) it declines, and the caller
 * decrypts on the persistent machine: undecryptable events, withheld keys, key requests
 * and late keys stay the persistent machine's business.
 */
export class FastDecryption {
  private readonly settings = new DecryptionSettings(TrustRequirement.Untrusted);
  private readonly shields: SenderShields;
  readonly mirror: RoomKeyMirror;

  constructor(
    machine: OlmMachine,
    identity: { userId: string; deviceId: string },
    private readonly log: Logger = defaultLog,
    options: ConstructorParameters<typeof RoomKeyMirror>[3] = {},
  ) {
    this.shields = new SenderShields(machine);
    this.mirror = new RoomKeyMirror(machine, identity, log, options);
  }

  /** The decryption, or undefined when the persistent machine must do it. */
  async decrypt(
    roomId: string,
    sessionId: string,
    sender: string,
    envelopeJson: string,
  ): Promise<Decryption | undefined> {
    const machine = this.mirror.machineFor(roomId, sessionId);
    if (!machine) return undefined;
    try {
      const [decrypted, info] = await Promise.all([
        machine.then((m) => m.decryptRoomEvent(envelopeJson, new RoomId(roomId), this.settings)),
        this.shields.of(roomId, sessionId, sender, envelopeJson),
      ]);
      return { event: decrypted.event, ...info };
    } catch (error) {
      // The copy lacks the earlier part of the session the persistent machine may have since.
      if ((error as { code?: unknown }).code === DecryptionErrorCode.UnknownMessageIndex) {
        this.mirror.refresh({ roomId, sessionId });
      }
      this.log.debug('fast decryption declined; the persistent machine decrypts', { error: errorText(error) });
      return undefined;
    }
  }

  /** Devices, identities or trust may have changed: every shield is asked again. */
  trustChanged(): void {
    this.shields.clear();
  }

  /** The persistent machine received or improved these sessions' keys. */
  keysUpdated(sessions: SessionRef[]): void {
    this.shields.forgetSessions(sessions.map((s) => s.sessionId));
    this.mirror.keysUpdated(sessions);
  }

  /** Before decrypting these events: copies waiting keys first when that is the faster way. */
  async prepare(sessions: SessionRef[]): Promise<void> {
    if (this.mirror.worthFeedingFor(sessions)) await this.mirror.feed();
  }

  close(): void {
    this.shields.clear();
    this.mirror.close();
  }
}
