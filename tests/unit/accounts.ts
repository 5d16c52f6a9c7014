/**
 * Opens CryptoAccounts (real OlmMachines, in-memory store) on the unit tests' fake
 * homeserver, and closes them after each test (`afterEach(closeOpenedAccounts)`).
 */
import { CryptoAccount } from '../../src/crypto/account.ts';
import type { FetchLike } from '../../src/crypto/core/http.ts';
import type { RetryPolicy } from '../../src/crypto/core/retry.ts';
import { FakeHomeserver } from './fake-homeserver.ts';

const opened: CryptoAccount[] = [];

export function closeOpenedAccounts(): void {
  for (const account of opened.splice(0)) account.close();
}

export async function openAccount(
  hs: FakeHomeserver,
  userId: string,
  deviceId: string,
  options: { claim?: boolean; fetchFn?: FetchLike; accessToken?: string; retry?: Partial<RetryPolicy> } = {},
): Promise<CryptoAccount> {
  const account = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId,
    deviceId,
    accessToken: options.accessToken ?? hs.login(userId, deviceId),
    fetchFn: options.fetchFn ?? hs.fetchFn,
    retry: options.retry,
  });
  opened.push(account);
  if (options.claim) await account.claimDevice();
  return account;
}

type Json = Record<string, any>;

/** `sender` sends a text into the encrypted `roomId`; returns the event as the server would serve it. */
export async function sendText(hs: FakeHomeserver, sender: CryptoAccount, roomId: string, body: string): Promise<Json> {
  const decision = await sender.prepareSend(roomId, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body }));
  if (decision === 'passthrough') throw new Error('expected an encrypted send');
  return hs.event(roomId, sender.identity.userId, decision.eventType, JSON.parse(decision.body));
}

/** The body `reader` gets for `event` in its next sync (a notice when it cannot decrypt it). */
export async function readText(
  hs: FakeHomeserver,
  reader: CryptoAccount,
  roomId: string,
  event: Json,
): Promise<string> {
  const { userId, deviceId } = reader.identity;
  const body = JSON.parse(await reader.processSync(hs.syncFor(userId, deviceId, { timeline: { [roomId]: [event] } })));
  return body.rooms.join[roomId].timeline.events[0].content.body;
}

/** A fake homeserver where Alice and Bob (devices with their keys uploaded) are in the encrypted `roomId`. */
export async function aliceAndBobIn(
  roomId: string,
): Promise<{ hs: FakeHomeserver; alice: CryptoAccount; bob: CryptoAccount }> {
  const hs = new FakeHomeserver();
  const alice = await openAccount(hs, '@alice:example.test', 'ALICEDEV', { claim: true });
  const bob = await openAccount(hs, '@bob:example.test', 'BOBDEV', { claim: true });
  hs.setEncrypted(roomId);
  for (const account of [alice, bob]) hs.setMembership(roomId, account.identity.userId, 'join');
  return { hs, alice, bob };
}
