import {
  DecryptionErrorCode,
  DecryptionSettings,
  type OlmMachine,
  RoomId,
  ShieldColor,
  ShieldStateCode,
  TrustRequirement,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { DecryptedEventCache } from './decrypted-cache.ts';
import { type Decryption, type FastDecryption, senderInfoOf } from './fast-decryption.ts';
import type { MediaKeyRing } from '../media/media-keys.ts';
import { ENCRYPTION_INFO_KEY } from '../../shared/names.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';

/** A room event as it travels in client-server API bodies. */
export interface RoomEvent {
  event_id?: string;
  type?: string;
  sender?: string;
  room_id?: string;
  origin_server_ts?: number;
  state_key?: string;
  content?: Record<string, unknown>;
  unsigned?: Record<string, unknown>;
  [key: string]: unknown;
}

/** Called with each genuinely decrypted event; must not modify it. */
export type DecryptionListener = (roomId: string, event: RoomEvent) => void;

export { ENCRYPTION_INFO_KEY };

const REASONS: Partial<Record<DecryptionErrorCode, string>> = {
  [DecryptionErrorCode.MissingRoomKey]: "the sender's device has not sent this session the key for this message yet",
  [DecryptionErrorCode.UnknownMessageIndex]: 'this session only has the key for later messages in this conversation',
  [DecryptionErrorCode.MismatchedIdentityKeys]: "the sender's keys do not match its device",
  [DecryptionErrorCode.UnknownSenderDevice]: "the sender's device is unknown",
  [DecryptionErrorCode.UnsignedSenderDevice]: "the sender's device is not signed by its owner",
  [DecryptionErrorCode.SenderIdentityVerificationViolation]: "the sender's identity changed after it was verified",
  [DecryptionErrorCode.MismatchedSender]: 'the event claims a sender that did not encrypt it',
};

const SHIELD_COLORS: Record<ShieldColor, string> = {
  [ShieldColor.Red]: 'red',
  [ShieldColor.Grey]: 'grey',
  [ShieldColor.None]: 'none',
};

/**
 * Decrypts one `m.room.encrypted` event into the event the client would have seen had
 * the sender not encrypted it: same event_id, sender, origin_server_ts and unsigned;
 * type and content from the plaintext; the envelope's `m.relates_to` kept (it is sent
 * in clear, Matrix spec "Mentions and relations in encrypted events"). An event that
 * cannot be decrypted becomes a readable notice that says why.
 */
export class RoomEventDecryptor {
  private readonly settings = new DecryptionSettings(TrustRequirement.Untrusted);
  private readonly replays = new ReplayDetector();
  /** Told of every event decrypted genuinely (not of notices), e.g. to index it for search. */
  readonly listeners = new Set<DecryptionListener>();
  /** Told of every redaction seen in a room (they travel in clear), with the redacted event's id. */
  readonly redactionListeners = new Set<(roomId: string, redactedId: string) => void>();

  constructor(
    private readonly machine: OlmMachine,
    /** Learns the keys of encrypted files in decrypted content and exposes them to the client. */
    private readonly media?: MediaKeyRing,
    /** Late keys: told of events that lack their key; decryptions already made. */
    private readonly late: {
      onUndecryptable?: (roomId: string, envelope: RoomEvent) => void;
      cache?: DecryptedEventCache;
    } = {},
    private readonly log: Logger = defaultLog,
    /** Decrypts without the persistent store's per-event reads when it can; the machine otherwise. */
    private readonly fast?: FastDecryption,
  ) {}

  /** Devices, identities or trust may have changed: shields the fast path holds are asked again. */
  trustChanged(): void {
    this.fast?.trustChanged();
  }

  /** Before decrypting many events: lets the fast path copy the keys they need when that is cheaper. */
  async prepare(events: { roomId: string; envelope: RoomEvent }[]): Promise<void> {
    if (!this.fast) return;
    const sessions = events.flatMap(({ roomId, envelope }) => {
      const sessionId = (envelope.content as { session_id?: unknown } | undefined)?.session_id;
      return typeof sessionId === 'string' ? [{ roomId, sessionId }] : [];
    });
    await this.fast.prepare(sessions);
  }

  /** The fast path's decryption when it has one, else the persistent machine's (it throws what it cannot decrypt). */
  private async decryptWithMachine(roomId: string, envelope: RoomEvent): Promise<Decryption> {
    const json = JSON.stringify(envelope);
    const sessionId = (envelope.content as { session_id?: unknown } | undefined)?.session_id;
    if (this.fast && typeof sessionId === 'string' && typeof envelope.sender === 'string') {
      const fast = await this.fast.decrypt(roomId, sessionId, envelope.sender, json);
      if (fast) return fast;
    }
    const decrypted = await this.machine.decryptRoomEvent(json, new RoomId(roomId), this.settings);
    return { event: decrypted.event, ...senderInfoOf(decrypted) };
  }

  /** Reports an `m.room.redaction` (`redacts` at the top level, or in content from room v11). */
  noteRedaction(roomId: string, event: RoomEvent): void {
    const redacts = typeof event.redacts === 'string' ? event.redacts : event.content?.redacts;
    if (typeof redacts !== 'string') return;
    for (const listener of this.redactionListeners) {
      try {
        listener(roomId, redacts);
      } catch (error) {
        this.log.warn('a redaction listener failed', { error: errorText(error) });
      }
    }
  }

  /** Hands a genuinely decrypted event to the listeners, then returns it. */
  private deliver(roomId: string, event: RoomEvent): RoomEvent {
    for (const listener of this.listeners) {
      try {
        listener(roomId, event);
      } catch (error) {
        this.log.warn('a decryption listener failed', { error: errorText(error) });
      }
    }
    return event;
  }

  async decrypt(roomId: string, envelope: RoomEvent): Promise<RoomEvent> {
    const cacheId = this.late.cache && DecryptedEventCache.idOf(roomId, envelope);
    const cached = cacheId ? await this.late.cache!.get(cacheId) : undefined;
    if (cached && !this.replays.check(envelope)) {
      return this.deliver(roomId, {
        ...envelope,
        type: cached.type,
        content: exposeMedia(this.media, withRelation(cached.content, envelope.content)),
        unsigned: { ...(envelope.unsigned ?? {}), [ENCRYPTION_INFO_KEY]: { ...cached.info, cached: true } },
      });
    }
    try {
      const decrypted = await this.decryptWithMachine(roomId, envelope);
      const plaintext = JSON.parse(decrypted.event) as RoomEvent;
      const shield = decrypted.shield;
      const info = {
        decrypted: true,
        sender_device: decrypted.senderDevice,
        sender_curve25519_key: decrypted.senderCurve25519Key,
        shield: { color: SHIELD_COLORS[shield.color], message: shield.message ?? null },
      };
      // The claimed sender is only authenticated by the shield: MismatchedSender means the
      // device that encrypted this does not belong to the envelope's sender.
      if (shield.code === ShieldStateCode.MismatchedSender) {
        return notice(
          envelope,
          `** Warning: this message claims to be from ${envelope.sender} but was not encrypted by any of their ` +
            `devices; it is not shown. **`,
          { ...info, decrypted: false, forged_sender: true },
        );
      }
      const replayOf = this.replays.check(envelope);
      if (replayOf) {
        return notice(
          envelope,
          `** Warning: this message is a replay of an earlier message (${replayOf}); it is not shown. **`,
          { ...info, decrypted: false, replay_of: replayOf },
        );
      }
      const type = typeof plaintext.type === 'string' ? plaintext.type : 'm.room.message';
      if (cacheId) this.late.cache!.put(cacheId, { type, content: withRelation(plaintext.content, undefined), info });
      return this.deliver(roomId, {
        ...envelope,
        type,
        content: exposeMedia(this.media, withRelation(plaintext.content, envelope.content)),
        unsigned: { ...(envelope.unsigned ?? {}), [ENCRYPTION_INFO_KEY]: info },
      });
    } catch (error) {
      const code = (error as { code?: DecryptionErrorCode }).code;
      const reason =
        (code !== undefined && REASONS[code]) ||
        `it could not be decrypted (${(error as Error)?.message ?? String(error)})`;
      this.late.onUndecryptable?.(roomId, envelope);
      return notice(envelope, `** Unable to decrypt: ${reason}. **`, {
        decrypted: false,
        error_code: code === undefined ? 'UnableToDecrypt' : DecryptionErrorCode[code],
        session_id: (envelope.content as { session_id?: unknown } | undefined)?.session_id ?? null,
      });
    }
  }
}

const exposeMedia = (media: MediaKeyRing | undefined, content: Record<string, unknown>) =>
  media ? media.expose(content) : content;

/** The plaintext content with the envelope's `m.relates_to` when the plaintext has none. */
function withRelation(content: unknown, envelopeContent: Record<string, unknown> | undefined): Record<string, unknown> {
  const out: Record<string, unknown> =
    content && typeof content === 'object' ? { ...(content as Record<string, unknown>) } : {};
  const relation = envelopeContent?.['m.relates_to'];
  if (relation !== undefined && out['m.relates_to'] === undefined) out['m.relates_to'] = relation;
  return out;
}

/** A readable `m.notice` in place of an event the client must not take as genuine. */
function notice(envelope: RoomEvent, body: string, info: Record<string, unknown>): RoomEvent {
  const content: Record<string, unknown> = { msgtype: 'm.notice', body };
  // Keep thread and reply placement, but never let a notice act as an edit or reaction.
  const relation = envelope.content?.['m.relates_to'];
  if (
    relation &&
    typeof relation === 'object' &&
    ((relation as { rel_type?: unknown }).rel_type === 'm.thread' || 'm.in_reply_to' in relation)
  ) {
    content['m.relates_to'] = relation;
  }
  return {
    ...envelope,
    type: 'm.room.message',
    content,
    unsigned: { ...(envelope.unsigned ?? {}), [ENCRYPTION_INFO_KEY]: info },
  };
}

/**
 * Flags a ciphertext seen before under another event id: megolm decryption alone does
 * not stop a homeserver from replaying a message. Megolm ciphertexts
 * embed the message index, so the same (session id, ciphertext) is the same message.
 * Bounded, in memory: replays are caught within a worker lifetime.
 */
class ReplayDetector {
  private readonly seen = new Map<string, string>();

  constructor(private readonly limit = 50_000) {}

  /** The earlier event id when this envelope replays one, else undefined. */
  check(envelope: RoomEvent): string | undefined {
    const content = envelope.content as { session_id?: unknown; ciphertext?: unknown } | undefined;
    if (typeof content?.ciphertext !== 'string' || typeof envelope.event_id !== 'string') return undefined;
    const key = `${String(content.session_id)}|${content.ciphertext.slice(0, 64)}|${content.ciphertext.length}`;
    const earlier = this.seen.get(key);
    if (earlier !== undefined) return earlier === envelope.event_id ? undefined : earlier;
    if (this.seen.size >= this.limit) this.seen.delete(this.seen.keys().next().value as string);
    this.seen.set(key, envelope.event_id);
    return undefined;
  }
}
