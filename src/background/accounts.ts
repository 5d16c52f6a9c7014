import browser from 'webextension-polyfill';
import { CryptoAccount, ForeignDeviceKeysError } from '../crypto/account.js';
import { DecryptedEventCache } from '../crypto/decrypted-cache.js';
import { MatrixApiError, MatrixHttp } from '../crypto/http.js';
import { DexieSealedStore } from './decrypted-cache-store.js';
import { IndexedDbMediaKeyStore } from './media-key-store.js';
import { secretNames } from '../crypto/keyring.js';
import { keyring } from './keyring.js';
import type { AccountView } from '../shared/messages.js';
import type { SendGuard } from './send-guard.js';
import { deleteStore } from './store-wipe.js';

/** What is remembered of an account on disk. Never a token. */
interface AccountRecord {
  baseUrl: string;
  userId: string;
  deviceId: string;
  storeName: string;
  /**
   * The store was made with its keyring secret (`store:<storeName>`, 32 random bytes) as a
   * raw key (no PBKDF2 on every worker start); stores made before that keep opening with
   * the secret's 64 hex digits as a passphrase, as older versions kept it in this record.
   */
  rawStoreKey?: boolean;
  /** Set once our device keys are on the server (or known to be ours). */
  claimed: boolean;
  /** The device's ed25519 key, for the popup while the machine is not open. */
  ed25519?: string;
  error?: string;
}

const RECORDS_KEY = 'accounts';
/** How long after a worker start an account's leftover outgoing requests go out (see openAccount). */
const STARTUP_FLUSH_DELAY_MS = 2000;
/** token → account key, in `storage.session`: memory only, survives worker restarts. */
const TOKENS_KEY = 'tokens';

const accountKey = (baseUrl: string, userId: string, deviceId: string) =>
  `${baseUrl}|${userId}|${deviceId}`;

function randomHex(bytes: number): string {
  return [...crypto.getRandomValues(new Uint8Array(bytes))]
    .map((b) => b.toString(16).padStart(2, '0'))
    .join('');
}

const bytesHex = (bytes: Uint8Array) => [...bytes].map((byte) => byte.toString(16).padStart(2, '0')).join('');

/** The account cannot do encryption; the popup says why and what to do. */
export class AccountUnusableError extends Error {}

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

  /** Calls `listener` when an account is wiped (logout), to remove what a feature keeps of it. */
  onAccountWiped(listener: (id: string) => Promise<void>): void {
    this.wipedListeners.push(listener);
  }

  /** Calls `listener` for each account opened from now on, before it processes anything. */
  onAccountOpened(listener: (id: string, account: CryptoAccount) => void): void {
    this.openedListeners.push(listener);
  }

  /** `guard` learns which rooms are encrypted; without it (tests) nothing is guarded. */
  constructor(private readonly guard?: SendGuard) {}

  /** How many accounts this worker has opened (or is opening). */
  openAccounts(): number {
    return this.open.size;
  }

  /** The account a page request's token belongs to, discovering it if needed. */
  forToken(baseUrl: string, token: string): Promise<CryptoAccount> {
    let account = this.byToken.get(token);
    if (!account) {
      account = this.resolveToken(baseUrl, token);
      this.byToken.set(token, account);
      account.catch(() => this.byToken.delete(token));
    }
    return account.then((found) => {
      if (found.identity.baseUrl !== baseUrl) {
        throw new AccountUnusableError('This access token belongs to another homeserver');
      }
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
    if (open) return open;
    const token = Object.entries(await this.tokens()).find(([, key]) => key === id)?.[0];
    const record = (await this.records())[id];
    if (!token || !record) {
      throw new AccountUnusableError('Waiting for login: open your Matrix client so Kirjava can reach this account');
    }
    return this.attach(record.baseUrl, token, record.userId, record.deviceId);
  }

  /** Learns the account from the body of a successful `POST /login`. */
  async fromLogin(baseUrl: string, body: string): Promise<void> {
    const login = JSON.parse(body) as { user_id?: unknown; access_token?: unknown; device_id?: unknown };
    if (typeof login.user_id !== 'string' || typeof login.access_token !== 'string' || typeof login.device_id !== 'string') {
      return; // not a login we can use (e.g. a UIA step)
    }
    const account = this.attach(baseUrl, login.access_token, login.user_id, login.device_id);
    this.byToken.set(login.access_token, account);
    account.catch(() => this.byToken.delete(login.access_token as string));
    await account;
  }

  /** Forgets a token (the client logged out); the account's store stays for now. */
  async forgetToken(token: string): Promise<void> {
    this.byToken.delete(token);
    const tokens = await this.tokens();
    delete tokens[token];
    await browser.storage.session.set({ [TOKENS_KEY]: tokens });
  }

  /**
   * The client logged out with `token` (`POST /logout`, or `/logout/all` for every device
   * of the user): once the homeserver confirms the token is dead, the account's crypto
   * store, record, tokens, guard rules and caches are wiped. A page that merely claims a
   * logout while its token still works changes nothing.
   */
  async logOut(baseUrl: string, token: string, all: boolean): Promise<void> {
    try {
      await new MatrixHttp(baseUrl, token).request('GET', '/account/whoami');
      return; // the token still works: not a logout
    } catch (error) {
      if (!(error instanceof MatrixApiError && error.status === 401)) throw error;
    }
    const tokens = await this.tokens();
    const records = await this.records();
    const key = tokens[token];
    const record = key ? records[key] : undefined;
    this.byToken.delete(token);
    delete tokens[token];
    await browser.storage.session.set({ [TOKENS_KEY]: tokens });
    if (!key || !record) return;
    const doomed = all
      ? Object.keys(records).filter((k) => records[k].baseUrl === record.baseUrl && records[k].userId === record.userId)
      : [key];
    for (const id of doomed) await this.wipe(id);
  }

  /** Looks up the encryption state of the account's new rooms, for the send guard. */
  learnRoomEncryption(account: CryptoAccount): Promise<void> {
    const { baseUrl, userId, deviceId } = account.identity;
    const id = accountKey(baseUrl, userId, deviceId);
    const guard = this.guard;
    return account.learnRoomEncryption((roomId) => guard?.isKnownPlain(id, roomId) ?? Promise.resolve(true));
  }

  /** Removes every trace of one account from the extension. */
  private async wipe(id: string): Promise<void> {
    const open = this.open.get(id);
    this.open.delete(id);
    const account = open ? await open.catch(() => undefined) : undefined;
    await account?.shutdown();
    const tokens = await this.tokens();
    for (const [token, key] of Object.entries(tokens)) {
      if (key !== id) continue;
      delete tokens[token];
      this.byToken.delete(token);
    }
    await browser.storage.session.set({ [TOKENS_KEY]: tokens });
    const records = await this.records();
    const record = records[id];
    delete records[id];
    await browser.storage.local.set({ [RECORDS_KEY]: records });
    await this.guard?.forgetAccount(id);
    for (const listener of this.wipedListeners) await listener(id);
    if (record) await deleteStore(record.storeName).then(() => keyring.forget(secretNames.store(record.storeName)));
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
      Object.entries(records).map(async ([key, record]): Promise<AccountView> => {
        const view: AccountView = {
          id: key,
          baseUrl: record.baseUrl,
          userId: record.userId,
          deviceId: record.deviceId,
          ed25519: record.ed25519 ?? null,
          state: 'waiting-for-login',
        };
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
    if (known && records[known]) {
      const record = records[known];
      return this.attach(record.baseUrl, token, record.userId, record.deviceId);
    }
    const whoami = await new MatrixHttp(baseUrl, token).request<{ user_id?: string; device_id?: string }>(
      'GET',
      '/account/whoami',
    );
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
      if (tokens[token] !== key) await browser.storage.session.set({ [TOKENS_KEY]: { ...tokens, [token]: key } });
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
    const decryptedCache = await DecryptedEventCache.create(
      storePassphrase,
      new DexieSealedStore(`${record.storeName}-decrypted-events`),
    );
    const account = await CryptoAccount.open({
      ...record,
      accessToken: token,
      mediaKeyStore: new IndexedDbMediaKeyStore(`${record.storeName}-media`, storePassphrase),
      ...(record.rawStoreKey ? { storeKey } : { storePassphrase }),
      decryptedCache,
      roomObserver,
    });
    if (!record.claimed) {
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
      setTimeout(() => account.flushOutgoingQueued().catch((error) => console.warn('Kirjava: outgoing requests failed', error)), STARTUP_FLUSH_DELAY_MS);
    }
    for (const listener of this.openedListeners) listener(key, account);
    return account;
  }

  private async records(): Promise<Record<string, AccountRecord>> {
    const stored = await browser.storage.local.get(RECORDS_KEY);
    return (stored[RECORDS_KEY] as Record<string, AccountRecord> | undefined) ?? {};
  }

  private async saveRecord(key: string, record: AccountRecord): Promise<void> {
    const records = await this.records();
    await browser.storage.local.set({ [RECORDS_KEY]: { ...records, [key]: record } });
  }

  private async tokens(): Promise<Record<string, string>> {
    const stored = await browser.storage.session.get(TOKENS_KEY);
    return (stored[TOKENS_KEY] as Record<string, string> | undefined) ?? {};
  }
}
