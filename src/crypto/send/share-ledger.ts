import type { SharingPolicy } from '../../shared/messages.ts';
import { type RoomRules, rotationLimits } from './room-rules.ts';

/**
 * What the last full key share of a room (members loaded, devices tracked, Olm sessions
 * claimed, room key shared) established.
 */
interface ShareRecord {
  policy: SharingPolicy;
  /** The room's rules the share followed (RoomRules as JSON). */
  rules: string;
  /** The rotation limits in force when the session began: the library holds a session to those. */
  limits: { messages: number; ms: number };
  /** The outbound Megolm session the share was for. */
  sessionId: string;
  /** When the share that began the session started (no later than the session itself). */
  startedAt: number;
  /** The session's next message index: how many messages it has encrypted. */
  nextIndex: number;
  /** When the full share last ran. */
  sharedAt: number;
}

/**
 * A share older than this runs again in full even if nothing changed that Kirjava saw: the
 * library retries one-time key claims for devices that had none, and the user may have
 * changed something Kirjava does not watch.
 */
const SHARE_FRESH_MS = 5 * 60_000;
/**
 * Margin kept to the session rotation limits: a tenth of the period, at most an hour, and
 * two messages.
 */
const ROTATION_MARGIN_MS = 60 * 60_000;
const ROTATION_MARGIN_SHARE = 0.1;
const ROTATION_MARGIN_MESSAGES = 2;

/**
 * Remembers, per room, whether its last full key share still holds, so that RoomEncryptor
 * can encrypt the next sends at once. The owner forgets a room when its members change and
 * every room when anything about devices or trust may have changed; the ledger itself
 * watches the outbound session: encrypting on an expired one panics inside the library
 * (it never settles), so a room only holds while its session is well inside the room's
 * rotation limits (`rotation_period_msgs`, `rotation_period_ms`; the ones in force when
 * the session began, which the library keeps to, and the current ones, whichever are
 * lower), and only for a session whose first message this ledger saw (its age and message
 * count are then known from the ciphertexts). A change of the room's rules (history
 * visibility, rotation) ends the hold too. Worker memory only: a new worker shares in full
 * once per room.
 */
export class ShareLedger {
  private readonly records = new Map<string, ShareRecord>();

  /**
   * When the room's still valid full share ran, if it may be skipped for a send under
   * `policy` and the room's current `rules`.
   */
  holds(roomId: string, policy: SharingPolicy, rules: RoomRules): number | undefined {
    const record = this.records.get(roomId);
    if (!record) return undefined;
    const now = Date.now();
    const current = rotationLimits(rules);
    const messages = Math.min(record.limits.messages, current.messages);
    const ms = Math.min(record.limits.ms, current.ms);
    const holds =
      record.policy === policy &&
      record.rules === JSON.stringify(rules) &&
      now - record.sharedAt < SHARE_FRESH_MS &&
      now - record.startedAt < ms - Math.min(ROTATION_MARGIN_MS, ms * ROTATION_MARGIN_SHARE) &&
      record.nextIndex < messages - ROTATION_MARGIN_MESSAGES;
    return holds ? record.sharedAt : undefined;
  }

  /**
   * An event of the room was encrypted (`encrypted`: its content) after the share that
   * began at `sharedAt` under `rules` (a session begun by that share began after it).
   */
  encrypted(roomId: string, encrypted: string, policy: SharingPolicy, sharedAt: number, rules: RoomRules): void {
    const used = megolmIndex(encrypted);
    const previous = this.records.get(roomId);
    let began: Pick<ShareRecord, 'startedAt' | 'limits'> | undefined;
    if (used?.index === 0) began = { startedAt: sharedAt, limits: rotationLimits(rules) };
    else if (used && previous?.sessionId === used.sessionId) began = previous;
    if (!used || !began) {
      this.records.delete(roomId);
      return;
    }
    this.records.set(roomId, {
      policy,
      rules: JSON.stringify(rules),
      limits: began.limits,
      sessionId: used.sessionId,
      startedAt: began.startedAt,
      nextIndex: used.index + 1,
      sharedAt,
    });
  }

  forget(roomId: string): void {
    this.records.delete(roomId);
  }

  forgetAll(): void {
    this.records.clear();
  }
}

/**
 * The session id and message index of a Megolm ciphertext (Megolm message format: version
 * byte 0x03, then the message index as protobuf field 1, a varint), or undefined.
 */
export function megolmIndex(content: string): { sessionId: string; index: number } | undefined {
  let parsed: { ciphertext?: unknown; session_id?: unknown };
  try {
    parsed = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (typeof parsed?.ciphertext !== 'string' || typeof parsed.session_id !== 'string') return undefined;
  let head: string;
  try {
    // 16 base64 characters are 12 bytes: version, tag and a varint of up to 10 bytes.
    head = atob(parsed.ciphertext.slice(0, 16));
  } catch {
    return undefined;
  }
  if (head.charCodeAt(0) !== 0x03 || head.charCodeAt(1) !== 0x08) return undefined;
  let index = 0;
  for (let i = 2, shift = 0; i < head.length && shift < 35; i++, shift += 7) {
    const byte = head.charCodeAt(i);
    index += (byte & 0x7f) * 2 ** shift;
    if ((byte & 0x80) === 0) return { sessionId: parsed.session_id, index };
  }
  return undefined;
}
