import { EncryptionSettings } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { SharingPolicy } from '../../shared/messages.ts';

/**
 * What the last full key share of a room (members loaded, devices tracked, Olm sessions
 * claimed, room key shared) established.
 */
interface ShareRecord {
  policy: SharingPolicy;
  /** The outbound Megolm session the share was for. */
  sessionId: string;
  /** When this worker saw the session's message index 0, i.e. when the session began. */
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
/** Margin kept to the library's session rotation limits (time and message count). */
const ROTATION_MARGIN_MS = 60 * 60_000;
const ROTATION_MARGIN_MESSAGES = 2;

/**
 * Remembers, per room, whether its last full key share still holds, so that RoomEncryptor
 * can encrypt the next sends at once. The owner forgets a room when its members change and
 * every room when anything about devices or trust may have changed; the ledger itself
 * watches the outbound session: encrypting on an expired one panics inside the library
 * (it never settles), so a room only holds while its session is well inside the library's
 * rotation limits, and only for a session whose first message this ledger saw (its age
 * and message count are then known from the ciphertexts). Worker memory only: a new worker
 * shares in full once per room.
 */
export class ShareLedger {
  private readonly records = new Map<string, ShareRecord>();
  private readonly rotation = (() => {
    const defaults = new EncryptionSettings();
    const limits = { messages: Number(defaults.rotationPeriodMessages), ms: Number(defaults.rotationPeriod) / 1000 };
    defaults.free();
    return limits;
  })();

  /** When the room's still valid full share ran, if it may be skipped for a send under `policy`. */
  holds(roomId: string, policy: SharingPolicy): number | undefined {
    const record = this.records.get(roomId);
    if (!record) return undefined;
    const now = Date.now();
    const holds =
      record.policy === policy &&
      now - record.sharedAt < SHARE_FRESH_MS &&
      now - record.startedAt < this.rotation.ms - ROTATION_MARGIN_MS &&
      record.nextIndex < this.rotation.messages - ROTATION_MARGIN_MESSAGES;
    return holds ? record.sharedAt : undefined;
  }

  /** An event of the room was encrypted (`encrypted`: its content) after the share at `sharedAt`. */
  encrypted(roomId: string, encrypted: string, policy: SharingPolicy, sharedAt: number): void {
    const used = megolmIndex(encrypted);
    const previous = this.records.get(roomId);
    let startedAt: number | undefined;
    if (used?.index === 0) startedAt = Date.now();
    else if (used && previous?.sessionId === used.sessionId) startedAt = previous.startedAt;
    if (!used || startedAt === undefined) {
      this.records.delete(roomId);
      return;
    }
    this.records.set(roomId, { policy, sessionId: used.sessionId, startedAt, nextIndex: used.index + 1, sharedAt });
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
