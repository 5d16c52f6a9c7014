import { ENCRYPTION_INFO_KEY, type RoomEvent, type RoomEventDecryptor } from './event-decryptor.ts';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

interface Waiting {
  roomId: string;
  envelope: RoomEvent;
}

/**
 * Late keys heal the timeline without a reload. A plain client keeps the
 * "** Unable to decrypt **" notice it was given and never asks for that event again, so
 * when the key arrives later (to-device forward, key backup, key file import) Kirjava
 * adds to the client's next `/sync` an edit of the notice (`m.replace`, Matrix spec
 * "Event replacements") whose `m.new_content` is the plaintext: clients that render
 * edits show the message in place. The edit exists only in that sync response, never on
 * the server; after a reload the event decrypts directly, since the key is now stored.
 *
 * Remembers undecryptable events per megolm session (bounded), learns which sessions
 * got keys, and re-decrypts only those.
 */
export class TimelineHealer {
  private readonly waiting = new Map<string, Map<string, Waiting>>();
  private readonly arrived = new Set<string>();
  private count = 0;

  constructor(private readonly limit = 5_000) {}

  /** Called for each event that could not be decrypted. */
  remember(roomId: string, envelope: RoomEvent): void {
    const sessionId = (envelope.content as { session_id?: unknown } | undefined)?.session_id;
    if (typeof sessionId !== 'string' || typeof envelope.event_id !== 'string') return;
    let events = this.waiting.get(sessionId);
    if (!events) this.waiting.set(sessionId, (events = new Map()));
    if (events.has(envelope.event_id)) return;
    if (this.count >= this.limit) this.dropOldest();
    events.set(envelope.event_id, { roomId, envelope });
    this.count += 1;
  }

  /** Keys for these sessions were received or imported. */
  keysArrived(sessionIds: Iterable<string>): void {
    for (const id of sessionIds) if (this.waiting.has(id)) this.arrived.add(id);
  }

  /** Whether keys arrived for events that wait to be healed. */
  get hasArrivals(): boolean {
    return this.arrived.size > 0;
  }

  /** (room, session) pairs still waiting for a key, for a per-session backup fetch. */
  missing(): { roomId: string; sessionId: string }[] {
    return [...this.waiting].map(([sessionId, events]) => ({
      roomId: events.values().next().value!.roomId,
      sessionId,
    }));
  }

  /**
   * Re-decrypts the events whose sessions got keys and adds an edit for each to the
   * sync body's joined rooms. Events that still fail stay remembered.
   */
  async heal(decryptor: RoomEventDecryptor, sync: Json): Promise<number> {
    if (this.arrived.size === 0) return 0;
    const sessions = [...this.arrived];
    this.arrived.clear();
    let healed = 0;
    for (const sessionId of sessions) {
      const events = this.waiting.get(sessionId);
      if (!events) continue;
      for (const [eventId, { roomId, envelope }] of events) {
        const decrypted = await decryptor.decrypt(roomId, envelope);
        const info = decrypted.unsigned?.[ENCRYPTION_INFO_KEY] as
          { decrypted?: boolean; error_code?: string } | undefined;
        if (!info?.decrypted && info?.error_code !== undefined) continue; // still no key
        events.delete(eventId);
        this.count -= 1;
        if (info?.decrypted && decrypted.type === 'm.room.message') {
          appendToTimeline(sync, roomId, replacementOf(envelope, decrypted));
          healed += 1;
        }
      }
      if (events.size === 0) this.waiting.delete(sessionId);
    }
    return healed;
  }

  private dropOldest(): void {
    const [sessionId, events] = this.waiting.entries().next().value!;
    const [eventId] = events.keys();
    events.delete(eventId!);
    this.count -= 1;
    if (events.size === 0) this.waiting.delete(sessionId);
  }
}

/** An `m.replace` edit of the notice, from the original sender, carrying the plaintext. */
function replacementOf(envelope: RoomEvent, decrypted: RoomEvent): RoomEvent {
  const { 'm.relates_to': _relation, ...newContent } = decrypted.content ?? {};
  const body = typeof newContent.body === 'string' ? newContent.body : '';
  const random = [...globalThis.crypto.getRandomValues(new Uint8Array(8))]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
  return {
    type: 'm.room.message',
    event_id: `$kirjava-heal-${random}`,
    sender: envelope.sender,
    room_id: envelope.room_id,
    origin_server_ts: Date.now(),
    content: {
      msgtype: newContent.msgtype ?? 'm.text',
      body: `* ${body}`,
      'm.new_content': newContent,
      'm.relates_to': { rel_type: 'm.replace', event_id: envelope.event_id },
    },
    unsigned: {
      [ENCRYPTION_INFO_KEY]: { ...(decrypted.unsigned?.[ENCRYPTION_INFO_KEY] as Json), healed: envelope.event_id },
    },
  };
}

function appendToTimeline(sync: Json, roomId: string, event: RoomEvent): void {
  if (!isObject(sync.rooms)) sync.rooms = {};
  const rooms = sync.rooms as Json;
  if (!isObject(rooms.join)) rooms.join = {};
  const join = rooms.join as Json;
  if (!isObject(join[roomId])) join[roomId] = {};
  const room = join[roomId] as Json;
  if (!isObject(room.timeline)) room.timeline = { events: [] };
  const timeline = room.timeline as Json;
  if (!Array.isArray(timeline.events)) timeline.events = [];
  (timeline.events as unknown[]).push(event);
}
