/**
 * Opens CryptoAccounts (real OlmMachines, in-memory store) on the unit tests' fake
 * homeserver, and closes them after each test (`afterEach(closeOpenedAccounts)`).
 */
import { CryptoAccount } from '../../src/crypto/account.ts';
import type { FetchLike } from '../../src/crypto/http.ts';
import type { FakeHomeserver } from './fake-homeserver.ts';

const opened: CryptoAccount[] = [];

export function closeOpenedAccounts(): void {
  for (const account of opened.splice(0)) account.close();
}

export async function openAccount(
  hs: FakeHomeserver,
  userId: string,
  deviceId: string,
  options: { claim?: boolean; fetchFn?: FetchLike; accessToken?: string } = {},
): Promise<CryptoAccount> {
  const account = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId,
    deviceId,
    accessToken: options.accessToken ?? hs.login(userId, deviceId),
    fetchFn: options.fetchFn ?? hs.fetchFn,
  });
  opened.push(account);
  if (options.claim) await account.claimDevice();
  return account;
}
