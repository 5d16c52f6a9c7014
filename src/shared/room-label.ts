/**
 * How a room is named to the user: its name and canonical alias as the worker saw them in
 * syncs, kept per account, with its `!id` as the last resort.
 */

/** What people call a room: its name and canonical alias, when the room has them. */
export interface RoomLabel {
  name?: string;
  alias?: string;
}

/** "Name (#alias)", the name or the alias alone, or undefined when the room has neither. */
export function roomLabelText(label: RoomLabel | undefined): string | undefined {
  if (!label) return undefined;
  if (label.name && label.alias) return `${label.name} (${label.alias})`;
  return label.name ?? label.alias;
}

/** A room alias as the directory API takes it: `#localpart:server`. */
export function isRoomAlias(text: string): boolean {
  return /^#[^\s:]+:[^\s]+$/.test(text);
}
