import { CryptoAccount, ForeignDeviceKeysError } from '../crypto/account.ts';
import { DecryptedEventCache } from '../crypto/receive/decrypted-cache.ts';
import { MatrixApiError, MatrixHttp } from '../crypto/core/http.ts';
import { DexieSealedStore } from './decrypted-cache-store.ts';
import { storageQuota } from './storage-health.ts';
import { IndexedDbMediaKeyStore } from './media-key-store.ts';
import { secretNames } from '../crypto/keyring/keyring.ts';
import { keyring } from './keyring.ts';
import type { AccountView } from '../shared/messages.ts';
import type { SendGuard } from './send-guard.ts';
import type { SharingDecisions } from '../crypto/send/sharing-policy.ts';
import { deleteStore, storeDatabases } from './store-wipe.ts';
import { deleteDatabase } from '../platform/databases.ts';
import { AccountUnusableError, UnconfirmedLoginError } from './account-errors.ts';
import { AccountSites } from './account-sites.ts';
import { storage } from '../platform/storage.ts';

import type { AccountRecord } from '../shared/storage-keys.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';
import { startupMark } from '../crypto/core/startup-marks.ts';

/** How long after a worker start an account's leftover outgoing requests go out (see openAccount). */
const STARTUP_FLUSH_DELAY_MS = 2000;
/** How long the store of a logged-out account whose keys are not all backed up is kept. */
export const LOGGED_OUT_KEEP_MS = 7 * 24 * 60 * 60 * 1000;

const accountKey = (baseUrl: string, userId: string, deviceId: string) => `${baseUrl}|${userId}|${deviceId}`;
const idOf = ({ identity }: CryptoAccount) => accountKey(identity.baseUrl, identity.userId, identity.deviceId);

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))].map((b) => b.toString(16).padStart(2, '0')).join('');
}

const bytesHex = (bytes: Uint8Array) => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');

/**
 * Knows the accounts: discovers them from a `/login` response or, for a client that was
 * already logged in, from `GET /account/whoami` with the token of its first request;
 * maps access tokens to accounts (a token only ever reaches the account the homeserver
 * says it belongs to) and opens one CryptoAccount per (homeserver, user, device).
 */
export class AccountRegistry {
  private readonly open = new Map<string, Promise<CryptoAccount>>();
  private readonly byToken = new Map<string, Promise<CryptoAccount>>();
  private readonly openedListeners: ((id: string, account: CryptoAccount) => void)[] = [];

  private readonly wipedListeners: ((id: string) => Promise<void>)[] = [];
  /** Accounts being wiped: no longer shown or opened, though their record is the last thing to go. */
  private readonly wiping = new Set<string>();
  /** Which sites may use which account (AccountRecord.sites), and the user's questions about it. */
  readonly sites = new AccountSites({
    get: async (id) => (await this.records())[id],
    save: (id, record) => this.saveRecord(id, record),
  });

  /** Calls `listener` when an account is wiped (logout), to remove what a feature keeps of it. */
  onAccountWiped(listener: (id: string) => Promise<void>): void {
    this.wipedListeners.push(listener);
  }

  /** Calls `listener` for each account opened from now on, before it processes anything. */
  onAccountOpened(listener: (id: string, account: CryptoAccount) => void): void {
    this.openedListeners.push(listener);
  }

  /**
   * @param guard learns which rooms are encrypted; without it (tests) nothing is guarded.
   * @param sharingFor the user's key sharing decisions for an account, given to its SendPolicy
   *   when it opens; without it (tests) room keys go to every device ('all').
   */
  constructor(
    private readonly guard?: SendGuard,
    private readonly sharingFor?: (accountId: string) => SharingDecisions,
  ) {}

  /** How many accounts this worker has opened (or is opening). */
  openAccounts(): number {
    return this.open.size;
  }

  /**
   * The account a page request's token belongs to, discovering it if needed (the homeserver
   * says whose token it is: `GET /account/whoami`), for a page of `origin`. A site may use
   * only the accounts it is bound to (see AccountRecord.sites): any other gets
   * SiteNotBoundError and the popup asks the user.
   */
  forToken(baseUrl: string, token: string, origin: string): Promise<CryptoAccount> {
    startupMark('request');
    let account = this.byToken.get(token);
    if (!account) {
      account = this.resolveToken(baseUrl, token);
      this.byToken.set(token, account);
      account.catch(() => this.byToken.delete(token));
    }
    return account.then(async (found) => {
      if (found.identity.baseUrl !== baseUrl) {
        throw new AccountUnusableError('This access token belongs to another homeserver');
      }
      await this.sites.check(idOf(found), origin);
      return found;
    });
  }

  /**
   * The open account with this id (see AccountView.id), for the popup and options pages.
   * It needs a live token of the account: after a browser restart that is the client's
   * next request.
   */
  async forAccount(id: string): Promise<CryptoAccount> {
    const open = this.open.get(id);
    const record = (await this.records())[id];
    if (record?.loggedOutAt)
      throw new AccountUnusableError('This account is logged out: only "Export keys" and "Delete now" are left');
    if (this.wiping.has(id)) throw new AccountUnusableError('This account is being removed from Kirjava');
    if (open) return open;
    const token = Object.entries(await this.tokens()).find(([, key]) => key === id)?.[0];
    if (!token || !record) {
      throw new AccountUnusableError('Waiting for login: open your Matrix client so Kirjava can reach this account');
    }
    return this.attach(record.baseUrl, token, record.userId, record.deviceId);
  }

  /**
   * The page saw a successful `POST /login` answer. Nothing in it is believed: its token
   * must be one the homeserver confirms (`GET /account/whoami`) for the very user and device
   * the answer names, or nothing is bound and nothing created.
   */
  async fromLogin(baseUrl: string, body: string, origin: string): Promise<void> {
    let login: { user_id?: unknown; access_token?: unknown; device_id?: unknown } | null;
    try {
      login = JSON.parse(body) as typeof login;
    } catch {
      login = null;
    }
    const { user_id: userId, access_token: token, device_id: deviceId } = login ?? {};
    // A successful `POST /login` always names all three (Matrix spec, client-server API).
    if (typeof userId !== 'string' || typeof token !== 'string' || typeof deviceId !== 'string') {
      throw new UnconfirmedLoginError('This is not the answer of a successful login');
    }
    const whoami = await this.whoami(baseUrl, token).catch((error) => {
      if (error instanceof MatrixApiError && error.status === 401) {
        throw new UnconfirmedLoginError("The homeserver does not know this login's access token");
      }
      throw error;
    });
    if (whoami.user_id !== userId || whoami.device_id !== deviceId) {
      throw new UnconfirmedLoginError("The homeserver says this login's access token is another session's");
    }
    const account = this.attach(baseUrl, token, userId, deviceId);
    this.byToken.set(token, account);
    account.catch(() => this.byToken.delete(token));
    await this.sites.check(idOf(await account), origin);
  }

  /** Forgets a token (the client logged out); the account's store stays for now. */
  async forgetToken(token: string): Promise<void> {
    this.byToken.delete(token);
    const tokens = await this.tokens();
    delete tokens[token];
    await storage.session.set('tokens', tokens);
  }

  /**
   * The client is about to log out with `token`: while the token still works, the account's
   * room keys go to the key backup (when one is enabled), so that the logout can delete the
   * store without losing history. Harmless whoever asks: it only backs up.
   */
  async beforeLogout(baseUrl: string, token: string, origin: string): Promise<void> {
    const key = (await this.tokens())[token];
    if (!key) return;
    const account = await this.forToken(baseUrl, token, origin);
    await account.backUpAllRoomKeys();
  }

  /**
   * The client logged out with `token` (`POST /logout`, or `/logout/all` for every device of
   * the user). Believed only when the token is the account's own (bound after the homeserver
   * confirmed it), the site is bound to the account, and the homeserver now refuses that very
   * token (`M_UNKNOWN_TOKEN`): a page that merely claims a logout, or presents a made-up token
   * whose 401 proves nothing, changes nothing. Then the account's store is deleted if its
   * room keys are all in the key backup, and otherwise kept sealed for LOGGED_OUT_KEEP_MS as
   * "recently logged out" (export or delete from the popup). With `all` (the page's word, not
   * the homeserver's), another device of the user goes too only when Kirjava holds that
   * device's own tokens and the homeserver refuses each of them; a device whose token still
   * works, or whose token Kirjava does not hold, stays (it is checked when next used).
   */
  async logOut(baseUrl: string, token: string, all: boolean, origin: string): Promise<void> {
    const tokens = await this.tokens();
    const records = await this.records();
    const key = tokens[token];
    const record = key ? records[key] : undefined;
    if (!key || !record || record.baseUrl !== baseUrl || !(record.sites ?? []).includes(origin)) return;
    if (!(await this.refused(baseUrl, token))) return; // the token still works: not a logout
    this.byToken.delete(token);
    delete tokens[token];
    await storage.session.set('tokens', tokens);
    const doomed = [key];
    if (all) {
      // The page's "every device" is a claim: each other device goes only on its own token's word.
      const others = Object.keys(records).filter(
        (k) =>
          k !== key && records[k].baseUrl === baseUrl && records[k].userId === record.userId && !records[k].loggedOutAt,
      );
      for (const id of others) if (await this.loggedOutElsewhere(baseUrl, id, tokens)) doomed.push(id);
    }
    for (const id of doomed) await this.retire(id);
  }

  /**
   * Whether the homeserver refuses `token` as unknown (`401 M_UNKNOWN_TOKEN`) for good; false
   * when it still accepts it, or calls it a soft logout (an expired token of a device that still
   * exists: its client refreshes it). Any other failure (network, server error) is thrown: it
   * proves nothing.
   */
  private async refused(baseUrl: string, token: string): Promise<boolean> {
    try {
      await this.whoami(baseUrl, token);
      return false;
    } catch (error) {
      if (error instanceof MatrixApiError && error.status === 401 && error.errcode === 'M_UNKNOWN_TOKEN')
        return error.body?.soft_logout !== true;
      throw error;
    }
  }

  /**
   * Whether the account `id` is logged out as far as Kirjava can prove it: it holds tokens of
   * the account (bound after the homeserver confirmed them) and the homeserver refuses every
   * one. An account without a held token stays (its next request is checked), and so does one
   * whose token could not be checked.
   */
  private async loggedOutElsewhere(baseUrl: string, id: string, tokens: Record<string, string>): Promise<boolean> {
    const held = Object.keys(tokens).filter((token) => tokens[token] === id);
    if (held.length === 0) return false;
    for (const token of held) {
      const dead = await this.refused(baseUrl, token).catch((error: unknown) => {
        log.warn('could not check a token after a logout of every device', { error: errorText(error) });
        return false;
      });
      if (!dead) return false;
    }
    return true;
  }

  /**
   * Deletes a logged-out account's kept store now (the popup's "Delete now"); only accounts
   * that are logged out: an active one is removed by logging out in the client.
   */
  async deleteLoggedOut(id: string): Promise<void> {
    const record = (await this.records())[id];
    if (!record?.loggedOutAt) throw new Error('Only a logged-out account can be deleted here');
    await this.wipe(id);
  }

  /**
   * "Forget this account" (popup) and "Reset Kirjava" (options): every trace of the account
   * leaves this browser whatever its state, as a logout whose keys are all backed up does
   * (machine, tokens, crypto store, caches, search index, send guard rules, keyring secrets).
   * With a live token the session is logged out first (`POST /logout`): the homeserver deletes
   * the device and its keys, so nobody keeps encrypting for keys that are gone, and the
   * client's next request cannot bring the account back with a device Kirjava has no keys of.
   */
  async forget(id: string): Promise<void> {
    const record = (await this.records())[id];
    if (!record) throw new Error('Kirjava does not know this account (any more)');
    const token = Object.entries(await this.tokens()).find(([, key]) => key === id)?.[0];
    if (token && !record.loggedOutAt) {
      await new MatrixHttp(record.baseUrl, token)
        .request('POST', '/logout', {})
        .catch((error) => log.warn('logout before forgetting failed', { error: errorText(error) }));
    }
    await this.wipe(id);
  }

  /** The ids of every account Kirjava remembers, logged out or not. */
  async ids(): Promise<string[]> {
    return Object.keys(await this.records());
  }

  /** Deletes the kept stores of accounts logged out more than LOGGED_OUT_KEEP_MS ago. */
  async sweepLoggedOut(now = Date.now()): Promise<void> {
    const records = await this.records();
    for (const [id, record] of Object.entries(records)) {
      if (record.loggedOutAt !== undefined && now - record.loggedOutAt >= LOGGED_OUT_KEEP_MS) await this.wipe(id);
    }
  }

  /**
   * The machine of a logged-out account, opened without a token for the popup's "Export keys"
   * (nothing on this path talks to the homeserver).
   */
  async openLoggedOut(id: string): Promise<CryptoAccount> {
    const open = this.open.get(id);
    if (open) return open;
    const record = (await this.records())[id];
    if (!record?.loggedOutAt) throw new AccountUnusableError('This account is not logged out');
    const account = this.openAccount(id, record.baseUrl, '', record.userId, record.deviceId);
    this.open.set(id, account);
    account.catch(() => this.open.delete(id));
    return account;
  }

  /** The account whose keys the popup exports: an active one, or a logged-out one's kept store. */
  async forKeyExport(id: string): Promise<CryptoAccount> {
    const record = (await this.records())[id];
    return record?.loggedOutAt ? this.openLoggedOut(id) : this.forAccount(id);
  }

  /** Looks up the encryption state of the account's new rooms, for the send guard. */
  learnRoomEncryption(account: CryptoAccount): Promise<void> {
    const { baseUrl, userId, deviceId } = account.identity;
    const id = accountKey(baseUrl, userId, deviceId);
    const guard = this.guard;
    return account.learnRoomEncryption((roomId) => guard?.isKnownPlain(id, roomId) ?? Promise.resolve(true));
  }

  /**
   * The account logged out: its machine closes, its tokens, guard rules, search index and
   * decrypted-event cache go. If every room key it holds is in the key backup, the crypto
   * store goes too; otherwise it is kept sealed under a new id (so a new login of the same
   * device id starts afresh) until the user exports it or LOGGED_OUT_KEEP_MS pass.
   */
  private async retire(id: string): Promise<void> {
    const open = this.open.get(id);
    const account = open ? await open.catch(() => undefined) : undefined;
    const counts = await account?.machine.roomKeyCounts().catch(() => undefined);
    if (counts && counts.backedUp >= counts.total) return this.wipe(id);
    this.open.delete(id);
    await account?.shutdown();
    await this.dropTokensOf(id);
    await this.guard?.forgetAccount(id);
    for (const listener of this.wipedListeners) await listener(id);
    const records = await this.records();
    const record = records[id];
    if (!record) return;
    for (const name of await storeDatabases(record.storeName)) {
      if (name.startsWith(`${record.storeName}-`)) await deleteDatabase(name); // caches: plaintext, sealed
    }
    delete records[id];
    const loggedOutAt = Date.now();
    records[`${id}|logged-out|${loggedOutAt}`] = { ...record, loggedOutAt, sites: [] };
    await storage.local.set('accounts', records);
    this.sites.forget(id);
  }

  private async dropTokensOf(id: string): Promise<void> {
    const tokens = await this.tokens();
    for (const [token, key] of Object.entries(tokens)) {
      if (key !== id) continue;
      delete tokens[token];
      this.byToken.delete(token);
    }
    await storage.session.set('tokens', tokens);
  }

  /** `GET /account/whoami` with `token`: the homeserver's word on whose token it is. */
  private whoami(baseUrl: string, token: string): Promise<{ user_id?: string; device_id?: string }> {
    return new MatrixHttp(baseUrl, token).request('GET', '/account/whoami');
  }

  /** Removes every trace of one account from the extension. */
  private async wipe(id: string): Promise<void> {
    this.wiping.add(id);
    try {
      await this.wipeNow(id);
    } finally {
      this.wiping.delete(id);
    }
  }

  private async wipeNow(id: string): Promise<void> {
    const open = this.open.get(id);
    this.open.delete(id);
    const account = open ? await open.catch(() => undefined) : undefined;
    await account?.shutdown();
    await this.dropTokensOf(id);
    const record = (await this.records())[id];
    this.sites.forget(id);
    await this.sites.dropRequests(id);
    await this.guard?.forgetAccount(id);
    for (const listener of this.wipedListeners) await listener(id);
    // The record goes last: until the stores are gone the account still shows, and a failed wipe can be retried.
    if (record) await deleteStore(record.storeName).then(() => keyring.forget(secretNames.store(record.storeName)));
    const records = await this.records();
    delete records[id];
    await storage.local.set('accounts', records);
  }

  /** The user id of a token Kirjava already knows, without asking the homeserver. */
  async userOfKnownToken(token: string): Promise<string | undefined> {
    const key = (await this.tokens())[token];
    return key ? (await this.records())[key]?.userId : undefined;
  }

  async views(): Promise<AccountView[]> {
    const records = await this.records();
    const tokens = await this.tokens();
    const withToken = new Set(Object.values(tokens));
    return Promise.all(
      Object.entries(records)
        .filter(([key]) => !this.wiping.has(key))
        .map(async ([key, record]): Promise<AccountView> => {
          const view: AccountView = {
            id: key,
            baseUrl: record.baseUrl,
            userId: record.userId,
            deviceId: record.deviceId,
            ed25519: record.ed25519 ?? null,
            state: 'waiting-for-login',
            sites: record.sites ?? [],
          };
          if (record.loggedOutAt !== undefined) {
            return { ...view, state: 'logged-out', deleteAfter: record.loggedOutAt + LOGGED_OUT_KEEP_MS };
          }
          if (record.error) return { ...view, state: 'error', error: record.error };
          const open = this.open.get(key);
          const account = open ? await open.catch(() => undefined) : undefined;
          if (account) return { ...view, ed25519: account.ed25519, state: 'active' };
          return withToken.has(key) ? { ...view, state: 'active' } : view;
        }),
    );
  }

  private async resolveToken(baseUrl: string, token: string): Promise<CryptoAccount> {
    const known = (await this.tokens())[token];
    const records = await this.records();
    if (known && records[known] && !records[known].loggedOutAt) {
      const record = records[known];
      return this.attach(record.baseUrl, token, record.userId, record.deviceId);
    }
    const whoami = await this.whoami(baseUrl, token);
    if (!whoami.user_id || !whoami.device_id) {
      throw new AccountUnusableError('The homeserver did not say which device this session is');
    }
    return this.attach(baseUrl, token, whoami.user_id, whoami.device_id);
  }

  /** Opens (or reuses) the account's machine and binds the token to it. */
  private attach(baseUrl: string, token: string, userId: string, deviceId: string): Promise<CryptoAccount> {
    const key = accountKey(baseUrl, userId, deviceId);
    let account = this.open.get(key);
    if (!account) {
      account = this.openAccount(key, baseUrl, token, userId, deviceId);
      this.open.set(key, account);
      account.catch(() => this.open.delete(key));
    }
    return account.then(async (opened) => {
      const tokens = await this.tokens();
      if (tokens[token] !== key) await storage.session.set('tokens', { ...tokens, [token]: key });
      return opened;
    });
  }

  private async openAccount(
    key: string,
    baseUrl: string,
    token: string,
    userId: string,
    deviceId: string,
  ): Promise<CryptoAccount> {
    const records = await this.records();
    startupMark('records');
    let record = records[key];
    if (record?.error) throw new AccountUnusableError(record.error);
    if (!record) {
      record = {
        baseUrl,
        userId,
        deviceId,
        storeName: `kirjava-${randomHex(8)}`,
        rawStoreKey: true,
        claimed: false,
      };
      await this.saveRecord(key, record);
    }
    const guard = this.guard;
    const roomObserver = guard && {
      encrypted: (roomId: string) => guard.roomIsEncrypted(baseUrl, roomId),
      plain: (roomId: string) => guard.roomIsPlain(key, baseUrl, roomId),
    };
    const storeKey = await keyring.secret(secretNames.store(record.storeName));
    const storePassphrase = bytesHex(storeKey);
    startupMark('store-key');
    const decryptedCache = await DecryptedEventCache.create(
      storePassphrase,
      new DexieSealedStore(`${record.storeName}-decrypted-events`),
      undefined,
      log,
      storageQuota,
    );
    startupMark('cache');
    const account = await CryptoAccount.open({
      ...record,
      log,
      accessToken: token,
      mediaKeyStore: new IndexedDbMediaKeyStore(`${record.storeName}-media`, storePassphrase),
      ...(record.rawStoreKey ? { storeKey } : { storePassphrase }),
      sharing: this.sharingFor?.(key),
      decryptedCache,
      roomObserver,
    });
    if (!token) {
      // A logged-out account, opened for its key export only: no server, no listeners.
    } else if (!record.claimed) {
      try {
        await account.claimDevice();
        await this.saveRecord(key, { ...record, claimed: true, ed25519: account.ed25519 });
      } catch (error) {
        account.close();
        if (error instanceof ForeignDeviceKeysError) {
          await this.saveRecord(key, { ...record, error: error.message });
          throw new AccountUnusableError(error.message);
        }
        throw error;
      }
    } else {
      // Keys may not have reached the server before a worker stop: the machine knows. Not
      // before the request that woke the worker: a sync or a send flushes anyway.
      setTimeout(
        () =>
          account
            .flushOutgoingQueued()
            .catch((error) => log.warn('outgoing requests failed', { error: errorText(error) })),
        STARTUP_FLUSH_DELAY_MS,
      );
    }
    if (token) for (const listener of this.openedListeners) listener(key, account);
    return account;
  }

  private records(): Promise<Record<string, AccountRecord>> {
    return storage.local.get('accounts');
  }

  private async saveRecord(key: string, record: AccountRecord): Promise<void> {
    const records = await this.records();
    await storage.local.set('accounts', { ...records, [key]: record });
    this.sites.remember(key, record);
  }

  private tokens(): Promise<Record<string, string>> {
    return storage.session.get('tokens');
  }
}
