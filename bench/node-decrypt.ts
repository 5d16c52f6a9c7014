/**
 * Item 1: the worker's sync processor (CryptoAccount.processSync: parse, receiveSyncChanges,
 * SyncDecryptor, stringify) on a /sync body with the corpus's megolm events, against a bare
 * loop of `decryptRoomEvent` over the same events on the same machine, same WASM build.
 */
import { DecryptionSettings, RoomId, TrustRequirement } from '@matrix-org/matrix-sdk-crypto-wasm';
import { performance } from 'node:perf_hooks';
import { CryptoAccount } from '../src/crypto/account.ts';
import { ENCRYPTION_INFO_KEY } from '../src/crypto/receive/event-decryptor.ts';
import type { FakeHomeserver } from '../tests/fixtures/fake-homeserver.ts';
import { ME, syncBody } from './corpus.ts';
import { paired } from './stats.ts';

type Json = Record<string, any>;

/** The Node receiver: a device of ME that must exist before the corpus is encrypted. */
export async function openReceiver(hs: FakeHomeserver): Promise<CryptoAccount> {
  const account = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId: ME,
    deviceId: 'NODEDEV',
    accessToken: hs.login(ME, 'NODEDEV'),
    fetchFn: hs.fetchFn,
  });
  await account.claimDevice();
  return account;
}

/** Feeds the receiver its pending to-device room keys. */
export async function receiveKeys(hs: FakeHomeserver, receiver: CryptoAccount): Promise<void> {
  await receiver.processSync(hs.syncFor(ME, 'NODEDEV'));
  await receiver.flushOutgoingQueued();
}

/** A bare loop of decryptRoomEvent: the library's floor for these events. */
export function bareLoop(receiver: CryptoAccount, timeline: Record<string, Json[]>): () => Promise<number> {
  const settings = new DecryptionSettings(TrustRequirement.Untrusted);
  const inputs = Object.entries(timeline).flatMap(([roomId, events]) =>
    events.map((e) => [roomId, JSON.stringify(e)] as const),
  );
  return async () => {
    const start = performance.now();
    for (const [roomId, json] of inputs) await receiver.machine.decryptRoomEvent(json, new RoomId(roomId), settings);
    return performance.now() - start;
  };
}

export function countDecrypted(body: string): number {
  const sync = JSON.parse(body);
  let n = 0;
  for (const room of Object.values<Json>(sync.rooms?.join ?? {})) {
    for (const event of room.timeline?.events ?? []) if (event.unsigned?.[ENCRYPTION_INFO_KEY]?.decrypted === true) n++;
  }
  return n;
}

export async function benchSyncProcessor(receiver: CryptoAccount, timeline: Record<string, Json[]>, runs: number) {
  const body = syncBody(timeline);
  const total = Object.values(timeline).reduce((n, events) => n + events.length, 0);
  const check = countDecrypted(await receiver.processSync(body));
  if (check !== total) throw new Error(`bench: the sync processor decrypted ${check} of ${total} events`);
  const kirjava = async () => {
    const start = performance.now();
    await receiver.processSync(body);
    return performance.now() - start;
  };
  return { ...(await paired(runs, bareLoop(receiver, timeline), kirjava)), events: total, bytes: body.length };
}
