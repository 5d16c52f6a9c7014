/**
 * Sends the worker only the part of a `/sync` body it works on, and splices its answer
 * back into the page's copy: the runtime port costs about 24 ms per MB each way
 * (DESIGN.md §3), while the worker needs only a small part of a busy sync.
 *
 * The part is itself a /sync body, so the worker processes it exactly as a whole one:
 * the machine's fields (to_device, device_lists, one-time key counts, fallback key
 * types; every sync, they are small), and per joined or left room the state and
 * timeline events the worker reads or changes (`m.room.encryption` state, every
 * `m.room.encrypted` event, any event carrying Kirjava's decryption report, which the
 * worker strips). Their positions are remembered; everything else stays in the page.
 */

/**
 * event-decryptor.ts's key for Kirjava's decryption report, spelled out here: importing
 * it would pull the crypto library into the page's hook (a unit test keeps them equal).
 */
export const ENCRYPTION_INFO_KEY = 'io.kirjava.encryption';

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

/** Whether the worker reads or changes this room event (SyncDecryptor.processRoom, decryptAll). */
function concernsWorker(event: unknown): boolean {
  if (!isObject(event)) return false;
  if (event.type === 'm.room.encrypted' && isObject(event.content)) return true;
  if (event.type === 'm.room.encryption' && event.state_key === '') return true;
  return isObject(event.unsigned) && ENCRYPTION_INFO_KEY in event.unsigned;
}

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
  static of(body: string): SyncSplice | undefined {
    let sync: unknown;
    try {
      sync = JSON.parse(body);
    } catch {
      return undefined;
    }
    if (!isObject(sync)) return undefined;
    const part: Json = {};
    for (const field of MACHINE_FIELDS) if (field in sync) part[field] = sync[field];
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
        if (stateEvents.length === 0 && indexes.length === 0) continue;
        (partRooms[section] ??= {})[roomId] = {
          state: { events: stateEvents },
          timeline: { events: indexes.map((index) => timeline[index]) },
        };
        if (indexes.length) {
          if (!positions.has(section)) positions.set(section, new Map());
          positions.get(section)!.set(roomId, indexes);
        }
      }
    }
    if (Object.keys(partRooms).length) part.rooms = partRooms;
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
    const rooms = this.sync.rooms as Record<string, Record<string, { timeline: { events: unknown[] } }>>;
    const answeredRooms = isObject(answer.rooms) ? answer.rooms : {};
    for (const [section, byRoom] of this.positions) {
      for (const [roomId, indexes] of byRoom) {
        const events = (answeredRooms as any)[section]?.[roomId]?.timeline?.events;
        if (!Array.isArray(events) || events.length !== indexes.length) continue;
        const target = rooms[section][roomId].timeline.events;
        indexes.forEach((index, k) => (target[index] = events[k]));
        changed = true;
      }
    }
    return changed ? this.sync : undefined;
  }
}
