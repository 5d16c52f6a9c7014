/**
 * Room names for people: what a sync says of each joined room's `m.room.name` and
 * `m.room.canonical_alias` state (spec "Room events"), so that settings and questions can say
 * "Project chat (#project:example.org)" instead of only `!abc:example.org`.
 */

import type { RoomLabel } from '../../shared/room-label.ts';

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The longest name or alias kept: a room's state is the homeserver's and its members' to fill. */
const MAX_TEXT = 255;

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() ? value.trim().slice(0, MAX_TEXT) : undefined;
}

/**
 * The name and alias changes of each joined room in a `/sync` body, state first, then the
 * timeline in order (a later event wins). A removed name or alias (empty content) is an
 * empty string, so the caller forgets it. Rooms that change neither are absent.
 */
export function roomLabelsIn(sync: Record<string, unknown>): Map<string, RoomLabel> {
  const labels = new Map<string, RoomLabel>();
  const rooms = isObject(sync.rooms) && isObject(sync.rooms.join) ? sync.rooms.join : {};
  for (const [roomId, room] of Object.entries(rooms)) {
    if (!isObject(room)) continue;
    const events = [room.state, room.timeline].flatMap((part) =>
      isObject(part) && Array.isArray(part.events) ? part.events : [],
    );
    let label: RoomLabel | undefined;
    for (const event of events) {
      if (!isObject(event) || event.state_key !== '' || !isObject(event.content)) continue;
      if (event.type === 'm.room.name') label = { ...label, name: text(event.content.name) ?? '' };
      else if (event.type === 'm.room.canonical_alias') label = { ...label, alias: text(event.content.alias) ?? '' };
    }
    if (label) labels.set(roomId, label);
  }
  return labels;
}

/**
 * `known` with `changes` applied: the rooms changed move to the end, empty fields are
 * removed, rooms left with neither name nor alias are dropped, and only the last `limit`
 * rooms are kept (the least recently changed go first).
 */
export function mergeRoomLabels(
  known: Record<string, RoomLabel>,
  changes: Map<string, RoomLabel>,
  limit: number,
): Record<string, RoomLabel> {
  const merged = new Map(Object.entries(known));
  for (const [roomId, change] of changes) {
    const label: RoomLabel = { ...merged.get(roomId), ...change };
    merged.delete(roomId);
    if (!label.name) delete label.name;
    if (!label.alias) delete label.alias;
    if (label.name || label.alias) merged.set(roomId, label);
  }
  return Object.fromEntries([...merged].slice(Math.max(0, merged.size - limit)));
}
