/**
 * What each account's rooms are called: names and canonical aliases seen in syncs, kept in
 * `storage.local` per account (at most ROOM_LABELS_PER_ACCOUNT rooms, the least recently
 * changed dropped first), for the options page's room policies and the "send anyway?"
 * question. Also resolves a `#alias` the user types to its room through the account's
 * homeserver.
 */
import { mergeRoomLabels } from '../crypto/receive/room-labels.ts';
import { storage } from '../platform/storage.ts';
import type { RoomLabel } from '../shared/room-label.ts';
import type { AccountRegistry } from './accounts.ts';
import { errorText } from '../crypto/core/log.ts';
import { log } from './log.ts';
import { onUiRequest } from './ui-router.ts';

/** The most rooms whose names are kept per account. */
export const ROOM_LABELS_PER_ACCOUNT = 500;

/** Writes one after another: each is a read-modify-write of the same storage value. */
let writes: Promise<void> = Promise.resolve();

function edit(change: (all: Record<string, Record<string, RoomLabel>>) => void): Promise<void> {
  writes = writes
    .then(() =>
      storage.local.update('rooms.labels', (all) => {
        change(all);
        return all;
      }),
    )
    .then(
      () => {},
      (error) => log.warn('room names not saved', { error: errorText(error) }),
    );
  return writes;
}

/** The name and alias of a room of the account, when a sync showed them. */
export async function roomLabel(accountId: string, roomId: string): Promise<RoomLabel | undefined> {
  return (await storage.local.get('rooms.labels'))[accountId]?.[roomId];
}

/**
 * Keeps the room names of every account opened from now on, forgets those of a wiped account,
 * and answers the pages' `room-labels` and `room-alias` requests.
 */
export function registerRoomLabelsService(registry: AccountRegistry): void {
  registry.onAccountOpened((id, account) => {
    account.roomLabelsChanged.add((changes) => {
      void edit((all) => {
        all[id] = mergeRoomLabels(all[id] ?? {}, changes, ROOM_LABELS_PER_ACCOUNT);
      });
    });
  });
  registry.onAccountWiped((id) =>
    edit((all) => {
      delete all[id];
    }),
  );

  onUiRequest('room-labels', async () => ({ accounts: await storage.local.get('rooms.labels') }));

  onUiRequest('room-alias', async ({ accountId, alias }) => {
    const account = await registry.forAccount(accountId);
    return { roomId: await account.resolveRoomAlias(alias) };
  });
}
