/**
 * Sends the worker only the part of a `/sync` body it works on, and splices its answer
 * back into the page's copy: the runtime port costs about 24 ms per MB each way (see
 * docs/architecture.md), while the worker needs only a small part of a busy sync.
 *
 * The part is itself a /sync body, so the worker processes it exactly as a whole one:
 * the machine's fields (to_device, device_lists, one-time key counts, fallback key
 * types; every sync, they are small), and per joined or left room the state and
 * timeline events the worker reads or changes (`m.room.encryption` and
 * `m.room.history_visibility` state, every `m.room.encrypted` event, any event carrying
 * Kirjava's decryption report, which the worker strips, and any event whose bundled
 * relations hold an encrypted event). Their
 * positions are remembered; everything else stays in the page. For rooms known to be
 * encrypted the part also carries what highlight counting needs (src/crypto/receive/mentions.ts):
 * `unread_notifications`, the `m.receipt` ephemeral events and the user's push rules;
 * the worker's `unread_notifications` are put back.
 */

import { ENCRYPTION_INFO_KEY, JOINED_ROOMS_KEY } from '../shared/names.ts';

export { ENCRYPTION_INFO_KEY, JOINED_ROOMS_KEY };

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** Top-level /sync fields the machine is fed (see SyncDecryptor.receiveChanges). */
const MACHINE_FIELDS = [
  'to_device',
  'device_lists',
  'device_one_time_keys_count',
  'device_unused_fallback_key_types',
  'org.matrix.msc2732.device_unused_fallback_key_types',
] as const;

const SECTIONS = ['join', 'leave'] as const;

const isEncrypted = (event: unknown): boolean =>
  isObject(event) && event.type === 'm.room.encrypted' && isObject(event.content);

/** Whether the worker reads or changes this room event (SyncDecryptor.processRoom, decryptAll). */
function concernsWorker(event: unknown): boolean {
  if (!isObject(event)) return false;
  // The worker keeps each room's member list (who gets room keys) and the user's display
  // name (mentions) current from membership events: every one of them goes.
  if (event.type === 'm.room.member') return true;
  if (isEncrypted(event)) return true;
  // The room's rules for its key: the worker may tighten them from these, never loosen them.
  if ((event.type === 'm.room.encryption' || event.type === 'm.room.history_visibility') && event.state_key === '') {
    return true;
  }
  // What the popup and options page call the room instead of its `!id`.
  if ((event.type === 'm.room.name' || event.type === 'm.room.canonical_alias') && event.state_key === '') return true;
  if (event.type === 'm.room.redaction') return true; // the search index forgets redacted events
  if (isVerification(event)) return true; // in-room verification steps sent in clear
  if (!isObject(event.unsigned)) return false;
  if (ENCRYPTION_INFO_KEY in event.unsigned) return true;
  const relations = event.unsigned['m.relations'];
  if (!isObject(relations)) return false;
  const thread = relations['m.thread'];
  return (isObject(thread) && isEncrypted(thread.latest_event)) || isEncrypted(relations['m.replace']);
}

/** `m.key.verification.*` events and requests (Matrix spec "Key verification framework"). */
const isVerification = (event: Json): boolean =>
  (typeof event.type === 'string' && event.type.startsWith('m.key.verification.')) ||
  (event.type === 'm.room.message' &&
    isObject(event.content) &&
    event.content.msgtype === 'm.key.verification.request');

const isReceipt = (event: unknown) => isObject(event) && event.type === 'm.receipt';
const isPushRules = (event: unknown) => isObject(event) && event.type === 'm.push_rules';

/**
 * One /sync body split in two: the part for the worker (`body`), and the positions its answer
 * is merged back into (`merge`).
 */
export class SyncSplice {
  /** section → room id → timeline positions of the events sent, in order. */
  private readonly positions = new Map<string, Map<string, number[]>>();

  private constructor(
    private readonly sync: Json,
    /** The part for the worker, as JSON. */
    readonly part: string,
  ) {}

  /**
   * Parses the body and cuts out the worker's part; undefined when the body is not a JSON
   * object or the part cannot be serialized: the caller then hands over the whole body.
   */
  static of(body: string, encryptedRooms: Set<string> = new Set()): SyncSplice | undefined {
    let sync: unknown;
    try {
      sync = JSON.parse(body);
    } catch {
      return undefined;
    }
    if (!isObject(sync)) return undefined;
    const part: Json = {};
    for (const field of MACHINE_FIELDS) if (field in sync) part[field] = sync[field];
    const accountData =
      isObject(sync.account_data) && Array.isArray(sync.account_data.events) ? sync.account_data.events : [];
    if (accountData.some(isPushRules)) part.account_data = { events: accountData.filter(isPushRules) };
    const positions = new Map<string, Map<string, number[]>>();
    const rooms = isObject(sync.rooms) ? sync.rooms : {};
    const partRooms: Record<string, Record<string, Json>> = {};
    for (const section of SECTIONS) {
      const byRoom = rooms[section];
      if (!isObject(byRoom)) continue;
      for (const [roomId, room] of Object.entries(byRoom)) {
        if (!isObject(room)) continue;
        const state = isObject(room.state) && Array.isArray(room.state.events) ? room.state.events : [];
        const timeline = isObject(room.timeline) && Array.isArray(room.timeline.events) ? room.timeline.events : [];
        const stateEvents = state.filter(concernsWorker);
        const indexes: number[] = [];
        timeline.forEach((event, index) => concernsWorker(event) && indexes.push(index));
        if (
          [...stateEvents, ...timeline].some(
            (event) => isEncrypted(event) || (isObject(event) && event.type === 'm.room.encryption'),
          )
        ) {
          encryptedRooms.add(roomId);
        }
        const counted = section === 'join' && encryptedRooms.has(roomId);
        // A gap in the timeline may hide membership changes: the worker must hear of it.
        const limited = isObject(room.timeline) && room.timeline.limited === true;
        const relevant = indexes.length > 0 || stateEvents.length > 0 || limited;
        if (!relevant && !counted) continue;
        const partRoom: Json = {
          state: { events: stateEvents },
          timeline: { events: indexes.map((index) => timeline[index]), ...(limited ? { limited } : {}) },
        };
        if (counted) {
          if ('unread_notifications' in room) partRoom.unread_notifications = room.unread_notifications;
          const ephemeral =
            isObject(room.ephemeral) && Array.isArray(room.ephemeral.events) ? room.ephemeral.events : [];
          if (ephemeral.some(isReceipt)) partRoom.ephemeral = { events: ephemeral.filter(isReceipt) };
        }
        (partRooms[section] ??= {})[roomId] = partRoom;
        if (indexes.length) {
          if (!positions.has(section)) positions.set(section, new Map());
          positions.get(section)!.set(roomId, indexes);
        }
      }
    }
    if (Object.keys(partRooms).length) part.rooms = partRooms;
    // The worker looks up the encryption state of joined rooms it does not know (the send
    // guard's unencrypted rooms), also of rooms whose events stayed here.
    const joined = isObject(rooms.join) ? Object.keys(rooms.join) : [];
    if (joined.length) part[JOINED_ROOMS_KEY] = joined;
    let json: string;
    try {
      json = JSON.stringify(part);
    } catch {
      return undefined;
    }
    const splice = new SyncSplice(sync, json);
    for (const [section, byRoom] of positions) splice.positions.set(section, byRoom);
    return splice;
  }

  /** Whether the worker has nothing at all to do with this body. */
  get empty(): boolean {
    return this.part === '{}';
  }

  /**
   * Whether the page must wait for the worker before handing the body over: it has
   * events to decrypt or strip, room encryption state, to-device events (room keys for
   * this very sync) or device list changes. A part of nothing but one-time key counts and
   * fallback key types is still sent, but nothing in the body depends on its answer.
   */
  get needsAnswer(): boolean {
    const { rooms, to_device: toDevice, device_lists: lists } = JSON.parse(this.part) as Json;
    const nonEmpty = (value: unknown) => Array.isArray(value) && value.length > 0;
    return (
      rooms !== undefined ||
      (isObject(toDevice) && nonEmpty(toDevice.events)) ||
      (isObject(lists) && (nonEmpty(lists.changed) || nonEmpty(lists.left)))
    );
  }

  /** The parsed body as the page got it (no worker answer needed or wanted). */
  get body(): Json {
    return this.sync;
  }

  /**
   * The page's body with the worker's processed part put back; undefined when that
   * changes nothing (the original body can be handed over as it is).
   */
  merge(processed: string): Json | undefined {
    let answer: unknown;
    try {
      answer = JSON.parse(processed);
    } catch {
      return undefined;
    }
    if (!isObject(answer)) return undefined;
    let changed = false;
    const toDevice = this.sync.to_device;
    const answered = answer.to_device;
    if (isObject(toDevice) && Array.isArray(toDevice.events) && isObject(answered) && Array.isArray(answered.events)) {
      if (answered.events.length !== toDevice.events.length) {
        toDevice.events = answered.events;
        changed = true;
      }
    }
    const rooms = this.sync.rooms as Record<string, Record<string, { unread_notifications?: unknown }>>;
    const answeredRooms = isObject(answer.rooms) ? answer.rooms : {};
    const answeredJoins = isObject(answeredRooms.join) ? answeredRooms.join : {};
    for (const [roomId, answeredRoom] of Object.entries(answeredJoins)) {
      const room = rooms?.join?.[roomId];
      if (!isObject(answeredRoom) || !isObject(room) || !isObject(answeredRoom.unread_notifications)) continue;
      if (JSON.stringify(answeredRoom.unread_notifications) !== JSON.stringify(room.unread_notifications)) {
        room.unread_notifications = answeredRoom.unread_notifications;
        changed = true;
      }
    }
    // Decrypted events go back to their positions; events the worker added after them
    // (edits that heal earlier "unable to decrypt" notices) are appended, creating the
    // room's section when this sync did not carry the room.
    for (const section of SECTIONS) {
      const answeredSection = answeredRooms[section];
      if (!isObject(answeredSection)) continue;
      for (const [roomId, answeredRoom] of Object.entries(answeredSection)) {
        const events =
          isObject(answeredRoom) && isObject(answeredRoom.timeline) ? answeredRoom.timeline.events : undefined;
        const indexes = this.positions.get(section)?.get(roomId) ?? [];
        if (!Array.isArray(events) || events.length < indexes.length) continue;
        if (events.length === 0) continue;
        const target = timelineOf(this.sync, section, roomId);
        indexes.forEach((index, k) => (target[index] = events[k]));
        target.push(...events.slice(indexes.length));
        changed = true;
      }
    }
    return changed ? this.sync : undefined;
  }
}

/** The page body's timeline event list of a room, created when missing. */
function timelineOf(sync: Json, section: string, roomId: string): unknown[] {
  const rooms = isObject(sync.rooms) ? sync.rooms : (sync.rooms = {});
  const bySection = isObject(rooms[section]) ? (rooms[section] as Json) : (rooms[section] = {});
  const room = isObject(bySection[roomId]) ? (bySection[roomId] as Json) : (bySection[roomId] = {});
  const timeline = isObject(room.timeline) ? room.timeline : (room.timeline = {});
  if (!Array.isArray(timeline.events)) timeline.events = [];
  return timeline.events as unknown[];
}
