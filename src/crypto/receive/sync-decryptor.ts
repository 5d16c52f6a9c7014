import { DeviceLists, type OlmMachine, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { ENCRYPTION_INFO_KEY, type RoomEvent, type RoomEventDecryptor } from './event-decryptor.ts';
import type { MentionTracker } from './mentions.ts';
import type { RoomEncryptor } from '../send/room-encryptor.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const arrayOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);
const stringsOf = (value: unknown): string[] => arrayOf(value).filter((v): v is string => typeof v === 'string');

/**
 * Processes a `/sync` response (Matrix spec "Syncing"): to-device events, device list
 * changes, one-time key counts and fallback key types go to the machine first, so room
 * keys that arrive in this sync decrypt this sync's timeline; then every
 * `m.room.encrypted` timeline event of joined and left rooms is replaced by its
 * plaintext. Anything malformed is left as the server sent it.
 *
 * In the browser it sees only the part of a sync that src/content/sync-splice.ts cuts
 * out (the port is the slow part): reading more of a sync here means selecting it there.
 */
export class SyncDecryptor {
  constructor(
    private readonly machine: OlmMachine,
    private readonly decryptor: RoomEventDecryptor,
    private readonly rooms: RoomEncryptor,
    private readonly mentions?: MentionTracker,
    /** Receives in-room `m.key.verification.*` events once decrypted (in-room verification). */
    private readonly onVerificationEvent?: (roomId: string, event: Json) => Promise<void>,
    private readonly log: Logger = defaultLog,
  ) {}

  async process(sync: Json): Promise<Json> {
    await this.receiveChanges(sync);
    this.mentions?.observeAccountData(sync);
    const rooms = isObject(sync.rooms) ? sync.rooms : {};
    await this.decryptor.prepare(encryptedTimelineEvents(rooms));
    const jobs: Promise<void>[] = [];
    for (const section of ['join', 'leave'] as const) {
      const byRoom = rooms[section];
      if (!isObject(byRoom)) continue;
      for (const [roomId, room] of Object.entries(byRoom)) {
        if (!isObject(room)) continue;
        jobs.push(
          this.processRoom(roomId, room).then(() => {
            if (section === 'join') this.mentions?.applyToRoom(roomId, room);
          }),
        );
      }
    }
    await Promise.all(jobs);
    return sync;
  }

  private async receiveChanges(sync: Json): Promise<void> {
    const toDevice = isObject(sync.to_device) ? arrayOf(sync.to_device.events) : [];
    const deviceLists = isObject(sync.device_lists) ? sync.device_lists : {};
    const counts = new Map<string, number>();
    const rawCounts = sync.device_one_time_keys_count;
    if (isObject(rawCounts)) {
      for (const [algorithm, count] of Object.entries(rawCounts)) {
        if (typeof count === 'number') counts.set(algorithm, count);
      }
    }
    const rawFallback =
      sync.device_unused_fallback_key_types ?? sync['org.matrix.msc2732.device_unused_fallback_key_types'];
    // Absent means the server does not report fallback keys: pass undefined, not empty.
    const fallback = Array.isArray(rawFallback) ? new Set(stringsOf(rawFallback)) : undefined;
    const validUsers = (ids: string[]) =>
      ids.flatMap((id) => {
        try {
          return [new UserId(id)];
        } catch {
          return [];
        }
      });
    await this.machine.receiveSyncChanges(
      JSON.stringify(toDevice.filter(isObject)),
      new DeviceLists(validUsers(stringsOf(deviceLists.changed)), validUsers(stringsOf(deviceLists.left))),
      counts,
      fallback,
    );
    // Device list changes and to-device events (keys, verifications) may change who a room
    // key goes to: the next sends share in full.
    if (toDevice.length > 0 || arrayOf(deviceLists.changed).length > 0 || arrayOf(deviceLists.left).length > 0) {
      this.rooms.forgetShares();
      this.decryptor.trustChanged();
    }
    if (isObject(sync.to_device) && Array.isArray(sync.to_device.events)) {
      // Encrypted to-device events are the machine's business; a plain client cannot use them.
      sync.to_device.events = toDevice.filter((event) => !(isObject(event) && event.type === 'm.room.encrypted'));
    }
  }

  private async processRoom(roomId: string, room: Json): Promise<void> {
    const state = isObject(room.state) ? arrayOf(room.state.events) : [];
    const timeline = isObject(room.timeline) ? room.timeline : undefined;
    const events = timeline ? arrayOf(timeline.events) : [];
    for (const event of [...state, ...events]) {
      if (isObject(event) && event.type === 'm.room.encryption' && event.state_key === '') {
        await this.rooms.markEncrypted(roomId);
      }
    }
    this.rooms.observeRoom(roomId, [...state, ...events], timeline?.limited === true);
    if (timeline && Array.isArray(timeline.events)) {
      const decrypted = await decryptAll(this.decryptor, roomId, timeline.events);
      timeline.events = decrypted;
      for (const event of decrypted) {
        if (this.onVerificationEvent && isObject(event) && isVerificationEvent(event)) {
          await this.onVerificationEvent(roomId, event).catch((error) =>
            this.log.warn('in-room verification event failed', { error: errorText(error) }),
          );
        }
      }
    }
  }
}

/** The `m.room.encrypted` timeline events of the joined and left rooms of a sync. */
function encryptedTimelineEvents(rooms: Json): { roomId: string; envelope: RoomEvent }[] {
  const out: { roomId: string; envelope: RoomEvent }[] = [];
  for (const section of [rooms.join, rooms.leave]) {
    if (!isObject(section)) continue;
    for (const [roomId, room] of Object.entries(section)) {
      const events = isObject(room) && isObject(room.timeline) ? arrayOf(room.timeline.events) : [];
      for (const event of events) {
        if (isObject(event) && event.type === 'm.room.encrypted') out.push({ roomId, envelope: event as RoomEvent });
      }
    }
  }
  return out;
}

/** An in-room key verification event: the request message, or any `m.key.verification.*`. */
function isVerificationEvent(event: Json): boolean {
  if (typeof event.type !== 'string') return false;
  if (event.type.startsWith('m.key.verification.')) return true;
  return (
    event.type === 'm.room.message' && isObject(event.content) && event.content.msgtype === 'm.key.verification.request'
  );
}

/**
 * Replaces every `m.room.encrypted` event in the list by its decryption, in place order,
 * including the events the server bundles under `unsigned["m.relations"]` (the latest
 * event of a thread, the latest edit). Kirjava's decryption report under `unsigned` is
 * removed from every other event: only Kirjava may say that an event was decrypted,
 * never the homeserver.
 */
export async function decryptAll(decryptor: RoomEventDecryptor, roomId: string, events: unknown[]): Promise<unknown[]> {
  return Promise.all(events.map((event) => decryptOne(decryptor, roomId, event)));
}

async function decryptOne(decryptor: RoomEventDecryptor, roomId: string, event: unknown): Promise<unknown> {
  if (!isObject(event)) return event;
  if (event.type === 'm.room.redaction') decryptor.noteRedaction(roomId, event as RoomEvent);
  let out: Json = event;
  if (event.type === 'm.room.encrypted' && isObject(event.content)) {
    out = await decryptor.decrypt(roomId, event as RoomEvent);
  } else if (isObject(event.unsigned) && ENCRYPTION_INFO_KEY in event.unsigned) {
    const { [ENCRYPTION_INFO_KEY]: _forged, ...unsigned } = event.unsigned;
    out = { ...event, unsigned };
  }
  return decryptBundledRelations(decryptor, roomId, out);
}

/** Server-side aggregations (Matrix spec "Aggregations of child events") carry whole events. */
async function decryptBundledRelations(decryptor: RoomEventDecryptor, roomId: string, event: Json): Promise<Json> {
  const relations = isObject(event.unsigned) ? event.unsigned['m.relations'] : undefined;
  if (!isObject(relations)) return event;
  const thread = relations['m.thread'];
  const edit = relations['m.replace'];
  const needsThread = isObject(thread) && isObject(thread.latest_event);
  const needsEdit = isObject(edit) && typeof edit.type === 'string';
  if (!needsThread && !needsEdit) return event;
  const copy: Json = { ...relations };
  if (needsThread) {
    const latest = await decryptOne(decryptor, roomId, (thread as Json).latest_event);
    copy['m.thread'] = { ...(thread as Json), latest_event: latest };
  }
  if (needsEdit) copy['m.replace'] = await decryptOne(decryptor, roomId, edit);
  return { ...event, unsigned: { ...(event.unsigned as Json), 'm.relations': copy } };
}

/**
 * Decrypts a history response: `/rooms/{roomId}/messages` (chunk, state),
 * `/rooms/{roomId}/context/{eventId}` (event, events_before, events_after, state),
 * `/rooms/{roomId}/event/{eventId}` (the event itself), `/rooms/{roomId}/relations/...`
 * and `/rooms/{roomId}/threads` (chunk).
 */
export async function decryptHistory(
  decryptor: RoomEventDecryptor,
  rooms: RoomEncryptor,
  roomId: string,
  body: Json,
): Promise<Json> {
  for (const event of [...arrayOf(body.state), ...arrayOf(body.chunk)]) {
    if (isObject(event) && event.type === 'm.room.encryption' && event.state_key === '') {
      await rooms.markEncrypted(roomId);
    }
  }
  if (typeof body.type === 'string' && typeof body.event_id === 'string') {
    return (await decryptOne(decryptor, roomId, body)) as Json;
  }
  for (const key of ['chunk', 'events_before', 'events_after'] as const) {
    if (Array.isArray(body[key])) body[key] = await decryptAll(decryptor, roomId, body[key]);
  }
  if (isObject(body.event)) body.event = (await decryptAll(decryptor, roomId, [body.event]))[0];
  return body;
}

/** Whether a push rule's actions highlight (`{"set_tweak":"highlight"}`, whose value defaults to true). */
const highlightsBy = (actions: unknown): boolean =>
  arrayOf(actions).some((action) => isObject(action) && action.set_tweak === 'highlight' && action.value !== false);

/**
 * Decrypts a `/notifications` response: each notification names its own room. A decrypted
 * message that mentions the user gets the highlight its push rules would have given it
 * (the server saw only ciphertext), so this list agrees with the sync's highlight counts
 * (`MentionTracker`). `onlyHighlight`: the page asked for `only=highlight`, which the server
 * cannot answer for encrypted rooms; the body is then the full list, and only the
 * notifications that highlight are kept (the server's `next_token` pages through the full list).
 */
export async function decryptNotifications(
  decryptor: RoomEventDecryptor,
  body: Json,
  mentions?: MentionTracker,
  onlyHighlight = false,
): Promise<Json> {
  if (!Array.isArray(body.notifications)) return body;
  const decrypted = await Promise.all(
    body.notifications.map(async (notification) => {
      if (!isObject(notification) || typeof notification.room_id !== 'string') return notification;
      const event = await decryptOne(decryptor, notification.room_id, notification.event);
      const out: Json = { ...notification, event };
      if (mentions?.highlights(notification.room_id, event) && !highlightsBy(notification.actions)) {
        const others = arrayOf(notification.actions).filter(
          (action) => !(isObject(action) && action.set_tweak === 'highlight'),
        );
        out.actions = [...others, { set_tweak: 'highlight', value: true }];
      }
      return out;
    }),
  );
  body.notifications = onlyHighlight
    ? decrypted.filter((notification) => isObject(notification) && highlightsBy(notification.actions))
    : decrypted;
  return body;
}

export { isObject };
