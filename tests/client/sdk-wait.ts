/**
 * Waiting on a matrix-js-sdk client's view of the world: shared by the plain test client page
 * (browser) and the E2EE peer (Node, tests/fixtures/peer.ts), which both need "resolve once the
 * store shows X". Lives here so that changing it rebuilds the client page.
 */
import {
  ClientEvent,
  MatrixEventEvent,
  RoomEvent,
  SyncState,
  type IStartClientOpts,
  type MatrixClient,
} from 'matrix-js-sdk';

/** Everything after which the client's rooms, memberships or timelines may look different. */
const changes = [
  ClientEvent.Sync,
  ClientEvent.Room,
  RoomEvent.Timeline,
  RoomEvent.MyMembership,
  MatrixEventEvent.Decrypted,
] as const;

/**
 * Resolves with `probe()`'s first defined value, checking now and after every change the client
 * reports; fails with `what` after `timeoutMs`. A probe that throws (say, the room is not known
 * yet) counts as "not yet".
 */
export function waitForClient<T>(
  client: MatrixClient,
  what: string,
  probe: () => T | undefined,
  timeoutMs: number,
): Promise<T> {
  return new Promise((resolve, reject) => {
    const check = () => {
      let value: T | undefined;
      try {
        value = probe();
      } catch {
        return;
      }
      if (value === undefined) return;
      finish();
      resolve(value);
    };
    const timer = setTimeout(() => {
      finish();
      reject(new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      for (const change of changes) client.off(change, check);
    };
    for (const change of changes) client.on(change, check);
    check();
  });
}

/** `startClient`, resolving once the first sync is processed (PREPARED), failing if it errors. */
export function startClientPrepared(client: MatrixClient, options: IStartClientOpts): Promise<void> {
  return new Promise((resolve, reject) => {
    const onSync = (state: SyncState) => {
      if (state !== SyncState.Prepared && state !== SyncState.Error) return;
      client.off(ClientEvent.Sync, onSync);
      if (state === SyncState.Prepared) resolve();
      else reject(new Error(`The first sync of ${client.getUserId()} failed`));
    };
    client.on(ClientEvent.Sync, onSync);
    client.startClient(options).catch(reject);
  });
}
