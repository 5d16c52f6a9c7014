/**
 * The worker's account registry believes nothing a page says: a login binds only a token the
 * homeserver confirms for the very user and device, a site uses only the accounts it is bound
 * to, and a logout retires a device only on the homeserver's word about that device's own token.
 * Run against the in-process fake homeserver, with the extension's storage faked in memory.
 */
// First: installs the fake extension APIs before any module reaches webextension-polyfill.
import { clearFakeStorage, fakeBrowser } from '../fixtures/fake-browser.ts';
import 'fake-indexeddb/auto';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { AccountRegistry, LOGGED_OUT_KEEP_MS } from '../../src/background/accounts.ts';
import { AccountSites } from '../../src/background/account-sites.ts';
import { AccountUnusableError, SiteNotBoundError, UnconfirmedLoginError } from '../../src/background/account-errors.ts';
import type { AccountRecord } from '../../src/shared/storage-keys.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const ALICE = '@alice:example.test';
const SITE_A = 'https://a.example.test';
const SITE_B = 'https://b.example.test';

let hs: FakeHomeserver;
const realFetch = globalThis.fetch;

beforeEach(() => {
  clearFakeStorage();
  hs = new FakeHomeserver();
  globalThis.fetch = hs.fetchFn as typeof fetch;
});
afterEach(() => {
  globalThis.fetch = realFetch;
});

const idOf = (deviceId: string) => `${hs.baseUrl}|${ALICE}|${deviceId}`;
const records = () => (fakeBrowser.storage.local.values.get('accounts') ?? {}) as Record<string, AccountRecord>;
const tokens = () => (fakeBrowser.storage.session.values.get('tokens') ?? {}) as Record<string, string>;
/** Whether Kirjava still serves the device: a record that is not logged out. */
const active = (deviceId: string) => {
  const record = records()[idOf(deviceId)];
  return record !== undefined && record.loggedOutAt === undefined;
};
const loginAnswer = (deviceId: string, token: string, userId = ALICE) =>
  JSON.stringify({ user_id: userId, device_id: deviceId, access_token: token });

/** Alice's device `deviceId` logs in on `site` through Kirjava; returns its token. */
async function logIn(registry: AccountRegistry, deviceId: string, site: string): Promise<string> {
  const token = hs.login(ALICE, deviceId);
  await registry.fromLogin(hs.baseUrl, loginAnswer(deviceId, token), site);
  return token;
}

describe('AccountRegistry: logins', () => {
  it('binds a login the homeserver confirms, to the site that made it', async () => {
    const registry = new AccountRegistry();
    const token = await logIn(registry, 'DEV1', SITE_A);
    assert.deepEqual(records()[idOf('DEV1')].sites, [SITE_A]);
    assert.equal(tokens()[token], idOf('DEV1'));
    const account = await registry.forToken(hs.baseUrl, token, SITE_A);
    assert.equal(account.identity.deviceId, 'DEV1');
  });

  it('binds nothing for a token the homeserver does not know', async () => {
    const registry = new AccountRegistry();
    await assert.rejects(
      registry.fromLogin(hs.baseUrl, loginAnswer('DEV1', 'made-up-token'), SITE_A),
      UnconfirmedLoginError,
    );
    assert.deepEqual(records(), {});
    assert.deepEqual(tokens(), {});
  });

  it("binds nothing when the token is another device's", async () => {
    const registry = new AccountRegistry();
    const other = hs.login(ALICE, 'OTHER');
    await assert.rejects(registry.fromLogin(hs.baseUrl, loginAnswer('DEV1', other), SITE_A), UnconfirmedLoginError);
    await assert.rejects(
      registry.fromLogin(hs.baseUrl, loginAnswer('OTHER', other, '@mallory:example.test'), SITE_A),
      UnconfirmedLoginError,
    );
    assert.deepEqual(records(), {});
  });

  it('finds the account of a token by asking the homeserver, for the bound site and homeserver only', async () => {
    const registry = new AccountRegistry();
    const token = hs.login(ALICE, 'DEV1');
    const account = await registry.forToken(hs.baseUrl, token, SITE_A);
    assert.equal(account.identity.deviceId, 'DEV1');
    assert.deepEqual(records()[idOf('DEV1')].sites, [SITE_A]);
    await assert.rejects(registry.forToken(hs.baseUrl, token, SITE_B), SiteNotBoundError);
    await assert.rejects(registry.forToken('https://other.example.test', token, SITE_A), AccountUnusableError);
    await assert.rejects(registry.forToken(hs.baseUrl, 'made-up-token', SITE_A));
  });
});

describe('AccountRegistry: logouts', () => {
  it("retires the account when the homeserver refuses the account's own token", async () => {
    const registry = new AccountRegistry();
    const token = await logIn(registry, 'DEV1', SITE_A);
    hs.logout(token);
    await registry.logOut(hs.baseUrl, token, false, SITE_A);
    assert.equal(active('DEV1'), false);
    assert.equal(tokens()[token], undefined);
  });

  it('changes nothing while the token still works', async () => {
    const registry = new AccountRegistry();
    const token = await logIn(registry, 'DEV1', SITE_A);
    await registry.logOut(hs.baseUrl, token, true, SITE_A);
    assert.equal(active('DEV1'), true);
    assert.equal(tokens()[token], idOf('DEV1'));
  });

  it('changes nothing for a made-up token, whose 401 proves nothing', async () => {
    const registry = new AccountRegistry();
    const token = await logIn(registry, 'DEV1', SITE_A);
    await registry.logOut(hs.baseUrl, 'made-up-token', true, SITE_A);
    assert.equal(active('DEV1'), true);
    assert.equal(tokens()[token], idOf('DEV1'));
  });

  it("changes nothing for a site the account is not bound to, even with the account's dead token", async () => {
    const registry = new AccountRegistry();
    const token = await logIn(registry, 'DEV1', SITE_A);
    hs.logout(token);
    await registry.logOut(hs.baseUrl, token, false, SITE_B);
    assert.equal(active('DEV1'), true);
  });

  it("with `all`, keeps another device whose own token still works (another site's session)", async () => {
    const registry = new AccountRegistry();
    const mine = await logIn(registry, 'DEV1', SITE_A);
    const theirs = await logIn(registry, 'DEV2', SITE_B);
    hs.logout(mine); // site A logged its own session out, then claims it was every device
    await registry.logOut(hs.baseUrl, mine, true, SITE_A);
    assert.equal(active('DEV1'), false);
    assert.equal(active('DEV2'), true);
    assert.equal(tokens()[theirs], idOf('DEV2'));
    assert.equal((await registry.forToken(hs.baseUrl, theirs, SITE_B)).identity.deviceId, 'DEV2');
  });

  it('with `all`, retires another device whose own token the homeserver refuses too', async () => {
    const registry = new AccountRegistry();
    const mine = await logIn(registry, 'DEV1', SITE_A);
    const theirs = await logIn(registry, 'DEV2', SITE_B);
    hs.logout(mine);
    hs.logout(theirs); // what `POST /logout/all` does on the homeserver
    await registry.logOut(hs.baseUrl, mine, true, SITE_A);
    assert.equal(active('DEV1'), false);
    assert.equal(active('DEV2'), false);
    assert.equal(tokens()[theirs], undefined);
  });

  it('with `all`, keeps another device whose token the homeserver calls a soft logout (expired)', async () => {
    const registry = new AccountRegistry();
    const mine = await logIn(registry, 'DEV1', SITE_A);
    const theirs = await logIn(registry, 'DEV2', SITE_B);
    hs.logout(mine);
    // The first whoami checks site A's own token (ended); the next, the other device's (expired).
    let whoamis = 0;
    const softLogout = () =>
      new Response(JSON.stringify({ errcode: 'M_UNKNOWN_TOKEN', error: 'expired', soft_logout: true }), {
        status: 401,
      });
    hs.intercept = (method, path) =>
      method === 'GET' && path === '/account/whoami' && ++whoamis > 1 ? softLogout() : undefined;
    hs.logout(theirs);
    await registry.logOut(hs.baseUrl, mine, true, SITE_A);
    assert.equal(whoamis, 2);
    assert.equal(active('DEV1'), false);
    assert.equal(active('DEV2'), true);
  });

  it('with `all`, keeps another device whose token Kirjava does not hold (checked when next used)', async () => {
    const registry = new AccountRegistry();
    const mine = await logIn(registry, 'DEV1', SITE_A);
    const theirs = await logIn(registry, 'DEV2', SITE_B);
    fakeBrowser.storage.session.values.set('tokens', { [mine]: idOf('DEV1') }); // a browser restart forgot it
    hs.logout(mine);
    hs.logout(theirs);
    await registry.logOut(hs.baseUrl, mine, true, SITE_A);
    assert.equal(active('DEV1'), false);
    assert.equal(active('DEV2'), true);
  });
});

describe('AccountRegistry: logged-out accounts kept for a week', () => {
  const keptRecord = (loggedOutAt: number): AccountRecord => ({
    baseUrl: hs.baseUrl,
    userId: ALICE,
    deviceId: 'OLD',
    storeName: 'kirjava-0123456789abcdef',
    rawStoreKey: true,
    claimed: true,
    sites: [],
    loggedOutAt,
  });

  it('keeps the store until LOGGED_OUT_KEEP_MS have passed, then deletes it', async () => {
    const registry = new AccountRegistry();
    const loggedOutAt = Date.UTC(2026, 0, 1);
    const id = `${idOf('OLD')}|logged-out|${loggedOutAt}`;
    fakeBrowser.storage.local.values.set('accounts', { [id]: keptRecord(loggedOutAt) });
    await registry.sweepLoggedOut(loggedOutAt + LOGGED_OUT_KEEP_MS - 1);
    assert.deepEqual(Object.keys(records()), [id]);
    assert.equal(LOGGED_OUT_KEEP_MS, 7 * 24 * 60 * 60 * 1000);
    await registry.sweepLoggedOut(loggedOutAt + LOGGED_OUT_KEEP_MS);
    assert.deepEqual(records(), {});
  });

  it('leaves accounts that are not logged out alone', async () => {
    const registry = new AccountRegistry();
    await logIn(registry, 'DEV1', SITE_A);
    await registry.sweepLoggedOut(Date.now() + 10 * LOGGED_OUT_KEEP_MS);
    assert.equal(active('DEV1'), true);
  });
});

describe('AccountSites', () => {
  function sitesOver(initial: AccountRecord) {
    const store = new Map<string, AccountRecord>([['acc', initial]]);
    const sites = new AccountSites({
      get: async (id) => store.get(id),
      save: async (id, record) => {
        store.set(id, record);
        sites.remember(id, record);
      },
    });
    return { sites, store };
  }
  const record = (recordSites?: string[]): AccountRecord => ({
    baseUrl: 'https://hs.example.test',
    userId: ALICE,
    deviceId: 'DEV1',
    storeName: 'kirjava-x',
    claimed: true,
    ...(recordSites ? { sites: recordSites } : {}),
  });

  it('binds an account no site uses yet to the first site that uses it', async () => {
    const { sites, store } = sitesOver(record());
    await sites.check('acc', SITE_A);
    assert.deepEqual(store.get('acc')?.sites, [SITE_A]);
    await sites.check('acc', SITE_A);
    await assert.rejects(sites.check('acc', SITE_B), SiteNotBoundError);
  });

  it("lets another site use the account only after the popup's Allow", async () => {
    const { sites, store } = sitesOver(record([SITE_A]));
    await assert.rejects(sites.check('acc', SITE_B), SiteNotBoundError);
    assert.deepEqual(
      (await sites.requests()).map((r) => [r.accountId, r.origin]),
      [['acc', SITE_B]],
    );
    await assert.rejects(sites.check('acc', SITE_B), SiteNotBoundError); // asked once, still refused
    assert.equal((await sites.requests()).length, 1);
    await sites.decide('acc', SITE_B, true);
    await sites.check('acc', SITE_B);
    assert.deepEqual(store.get('acc')?.sites, [SITE_A, SITE_B]);
    assert.deepEqual(await sites.requests(), []);
  });

  it('keeps another site out after Deny, and answers no question nobody asked', async () => {
    const { sites, store } = sitesOver(record([SITE_A]));
    await assert.rejects(sites.check('acc', SITE_B), SiteNotBoundError);
    await sites.decide('acc', SITE_B, false);
    assert.deepEqual(store.get('acc')?.sites, [SITE_A]);
    await assert.rejects(sites.decide('acc', 'https://c.example.test', true));
    await assert.rejects(sites.check('acc', SITE_B), SiteNotBoundError);
  });

  it('refuses an account that is gone', async () => {
    const { sites, store } = sitesOver(record());
    store.clear();
    await assert.rejects(sites.check('acc', SITE_A), AccountUnusableError);
  });
});
