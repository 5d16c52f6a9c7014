/**
 * Keys stay with their owner, told as user stories: a page on a site the user did not allow
 * gets nothing from Kirjava (not even an answer), however it forges the bridge's messages;
 * the popup asks the user about it and Allow makes it work; a client that syncs from a Web
 * Worker is reported as not covered; logging out through the client wipes the account.
 * The allowed site is http://127.0.0.1:<port>, the hostile one http://localhost:<port>
 * (the same test page on another origin).
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { sendThrough } from '../fixtures/bypass.ts';
import { startClientServer } from '../fixtures/client-server.ts';
import { poll, sleep } from '../fixtures/net.ts';
import { StoryBed, givenEncryptedRoom } from '../fixtures/stories.ts';

const story = { timeout: 180_000 };
const bed = new StoryBed();
const newUser = (name: string) => bed.newUser(name);
/** The same page served on another origin the user never allowed. */
let hostileOrigin: string;

function extensionWorker() {
  const worker = bed.browser.context.serviceWorkers().find((w) => w.url().startsWith(`chrome-extension://${bed.browser.extensionId}/`));
  if (!worker) throw new Error('the extension service worker is not running');
  return worker;
}

/** Runs `fn` in the extension's service worker (to inspect storage, rules, IndexedDB). */
const inWorker = <T>(fn: () => Promise<T>): Promise<T> => extensionWorker().evaluate(fn);

/** Alice logged in on the allowed site, an E2EE peer, and an encrypted room with a message from the peer. */
async function givenAliceWithASecret(text: string) {
  const user = await newUser('alice');
  const { client, ...session } = await bed.givenLoggedInClient(user);
  const peer = await bed.givenPeer();
  const roomId = await givenEncryptedRoom(peer, client, session.userId, session.deviceId);
  const eventId = await peer.sendText(roomId, text);
  await client.waitForBody(roomId, text);
  const ciphertext = await peer.rawEvent(roomId, eventId);
  assert.equal(ciphertext.type, 'm.room.encrypted');
  return { user, session, client, peer, roomId, eventId, ciphertext };
}

/**
 * A hostile page on the unallowed origin that takes the bridge's MessagePort before the
 * hook can (its script runs at document creation, listening first) and keeps it for itself.
 */
async function openHostilePage(): Promise<Page> {
  const page = await bed.browser.context.newPage();
  await page.addInitScript(() => {
    window.addEventListener(
      'message',
      (event) => {
        if (event.data?.kirjava === 'bridge-port' && event.ports[0]) {
          event.stopImmediatePropagation();
          (window as any).stolenPort = event.ports[0];
        }
      },
      true,
    );
  });
  await page.goto(`${hostileOrigin}/`);
  await page.waitForFunction(() => 'kirjavaTest' in window);
  return page;
}

/** Sends a forged page request over the stolen bridge port; what comes back within `ms`. */
function forgeOverBridge(page: Page, request: unknown, ms = 2500): Promise<unknown> {
  return page.evaluate(
    ([request, ms]) =>
      new Promise((resolve) => {
        const port = (window as any).stolenPort as MessagePort | undefined;
        if (!port) return resolve({ noPort: true });
        const id = Math.floor(Math.random() * 1e9);
        port.onmessage = (event) => event.data?.id === id && resolve({ reply: event.data.reply });
        port.postMessage({ id, request });
        setTimeout(() => resolve({ timeout: true }), ms);
      }),
    [request, ms] as const,
  );
}

describe('Keys stay with their owner: unallowed sites, site prompts, coverage, logout', () => {
  before(
    async () => {
      await bed.start();
      hostileOrigin = bed.site.origin.replace('127.0.0.1', 'localhost');
    },
    { timeout: 180_000 },
  );

  afterEach(() => bed.cleanUp());

  after(() => bed.stop());

  it('A page on an unallowed site that forges bridge messages gets nothing: no decryption, no keys, no tokens, and its own traffic stays encrypted', story, async () => {
    const secret = 'Only for the allowed client';
    const { user, session, roomId, ciphertext } = await givenAliceWithASecret(secret);
    const page = await openHostilePage();
    assert.equal(await page.evaluate(() => (window as any).stolenPort instanceof MessagePort), true, 'the hostile page did not get the bridge port');

    const forged = [
      { kind: 'events', baseUrl: bed.synapse.baseUrl, token: user.accessToken, roomId, body: JSON.stringify({ chunk: [ciphertext] }) },
      { kind: 'sync', baseUrl: bed.synapse.baseUrl, token: user.accessToken, body: JSON.stringify({ rooms: { join: { [roomId]: { timeline: { events: [ciphertext] } } } } }) },
      { kind: 'login', baseUrl: bed.synapse.baseUrl, body: JSON.stringify({ user_id: session.userId, access_token: user.accessToken, device_id: 'FORGED' }) },
      { kind: 'send', baseUrl: bed.synapse.baseUrl, token: user.accessToken, roomId, eventType: 'm.room.message', txnId: 'x', body: '{"msgtype":"m.text","body":"forged"}' },
      { kind: 'export-keys', baseUrl: bed.synapse.baseUrl, token: user.accessToken },
      { kind: 'accounts', channel: 'kirjava:ui' },
    ];
    for (const request of forged) {
      const answer = JSON.stringify(await forgeOverBridge(page, request));
      // The bridge's own words when the worker stays silent; never anything from the worker.
      assert.ok(!answer.includes(secret), `${request.kind}: the plaintext came back`);
      assert.ok(!answer.includes(user.accessToken), `${request.kind}: a token came back`);
      assert.ok(!/"ok":true|session_key|ed25519|curve25519|"accounts"/.test(answer), `${request.kind}: got ${answer}`);
      assert.match(answer, /did not answer|timeout/, `${request.kind}: ${answer}`);
    }
    // The worker answers nothing at all: the bridge's sendMessage sees the channel close.
    const direct = await page.evaluate(() => typeof (window as any).chrome?.runtime?.sendMessage);
    assert.equal(direct, 'undefined', 'the page can message the extension directly');

    // The page's own client, with Alice's real token, sees the event as the server has it.
    const hostile = await bed.givenClientTab(hostileOrigin);
    await hostile.startWithToken(bed.synapse.baseUrl, session.userId, user.accessToken, session.deviceId);
    const timeline = await poll('the room on the unallowed page', async () => {
      const events = await hostile.timeline(roomId).catch(() => undefined);
      return events?.some((e) => e.eventId === ciphertext.event_id) ? events : undefined;
    }, 20_000);
    const seen = timeline.find((e) => e.eventId === ciphertext.event_id)!;
    assert.equal(seen.type, 'm.room.encrypted');
    assert.notEqual(seen.body, secret);
    await page.close();
  });

  it('An allowed page that sends a made-up token gets a Matrix error and nothing of any account; a forged logout wipes nothing', story, async () => {
    const secret = 'Not for a stranger token';
    const { roomId, ciphertext, session } = await givenAliceWithASecret(secret);
    const page = await bed.browser.context.newPage();
    await page.addInitScript(() => {
      window.addEventListener('message', (event) => {
        if (event.data?.kirjava === 'bridge-port' && event.ports[0]) {
          event.stopImmediatePropagation();
          (window as any).stolenPort = event.ports[0];
        }
      }, true);
    });
    await page.goto(`${bed.site.origin}/`);
    const answer = (await forgeOverBridge(page, {
      kind: 'events',
      baseUrl: bed.synapse.baseUrl,
      token: 'syt_made_up_token',
      roomId,
      body: JSON.stringify({ chunk: [ciphertext] }),
    }, 15_000)) as { reply?: { ok: boolean; errcode?: string } };
    assert.equal(answer.reply?.ok, false, JSON.stringify(answer));
    assert.equal(answer.reply?.errcode, 'M_UNKNOWN_TOKEN');
    assert.ok(!JSON.stringify(answer).includes(secret));

    // A logout claimed while the token still works is not a logout.
    const logout = (await forgeOverBridge(page, { kind: 'logout', baseUrl: bed.synapse.baseUrl, token: session.accessToken, all: true }, 15_000)) as {
      reply?: { ok: boolean };
    };
    assert.equal(logout.reply?.ok, true, JSON.stringify(logout));
    const { accounts } = await inWorker(() => chrome.storage.local.get('accounts'));
    assert.ok((accounts as Record<string, unknown>)[`${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`], 'a forged logout wiped the account');
    await page.close();
  });

  it('The popup asks "Allow <origin> to use encryption for <account>?"; the badge shows it; Allow makes that site work', story, async () => {
    const secret = 'Readable once allowed';
    const { session, roomId } = await givenAliceWithASecret(secret);
    // The same session opened on a second site (its token is one Kirjava knows, so the prompt names the account).
    const hostile = await bed.givenClientTab(hostileOrigin);
    await hostile.startWithToken(bed.synapse.baseUrl, session.userId, session.accessToken, session.deviceId);

    await poll('the badge to show a pending site', async () => ((await inWorker(() => chrome.action.getBadgeText({}))) === '?' ? true : undefined));
    const popup = await bed.browser.openPopup();
    const ask = popup.getByRole('region', { name: `Site request from ${hostileOrigin}` });
    await ask.waitFor({ timeout: 10_000 });
    assert.match(await ask.innerText(), new RegExp(`Allow ${hostileOrigin.replace(/[.]/g, '\\.')} to use encryption for ${session.userId}\\?`));
    await ask.getByRole('button', { name: 'Allow' }).click();
    await ask.waitFor({ state: 'detached', timeout: 10_000 });
    const settings = await inWorker(() => chrome.storage.local.get('settings'));
    assert.ok((settings.settings as { allowedSites: string[] }).allowedSites.includes(hostileOrigin));
    assert.equal(await inWorker(() => chrome.action.getBadgeText({})), '');
    await popup.close();

    // Reloaded, the newly allowed site reads the encrypted room.
    await hostile.close();
    const allowed = await bed.givenClientTab(hostileOrigin);
    await allowed.startWithToken(bed.synapse.baseUrl, session.userId, session.accessToken, session.deviceId);
    const entry = await allowed.waitForBody(roomId, secret, 20_000);
    assert.equal(entry.type, 'm.room.message');
    // Later stories want the hostile origin unallowed again (and its page gone, or it would ask again).
    await allowed.close();
    await inWorker(async () => {
      const { settings } = await chrome.storage.local.get('settings');
      const s = settings as { allowedSites: string[] };
      await chrome.storage.local.set({ settings: { ...s, allowedSites: s.allowedSites.filter((o) => !o.includes('localhost')) } });
    });
  });

  it('Deny keeps a site out for good: no access, no badge, and it is not asked again', story, async () => {
    const { user, session } = await givenAliceWithASecret('Denied sites never read this');
    const other = await startClientServer('127.0.0.2');
    try {
      const denied = await bed.givenClientTab(other.origin);
      await denied.startWithToken(bed.synapse.baseUrl, session.userId, user.accessToken, session.deviceId);
      const popup = await bed.browser.openPopup();
      const ask = popup.getByRole('region', { name: `Site request from ${other.origin}` });
      await ask.waitFor({ timeout: 15_000 });
      await ask.getByRole('button', { name: 'Deny' }).click();
      await ask.waitFor({ state: 'detached', timeout: 10_000 });
      await popup.close();
      const { settings } = await inWorker(() => chrome.storage.local.get('settings'));
      assert.ok(!(settings as { allowedSites: string[] }).allowedSites.includes(other.origin));
      assert.equal(await inWorker(() => chrome.action.getBadgeText({})), '');

      // The page keeps talking to the homeserver; nobody asks again.
      await denied.rawFetch('GET', '/_matrix/client/v3/account/whoami');
      await sleep(1_000);
      const { 'site.pending': pending } = await inWorker(() => chrome.storage.session.get('site.pending'));
      assert.deepEqual(pending, []);
    } finally {
      await other.stop();
    }
  });

  it('A client that syncs from a Web Worker is reported in the popup as not covered; the hooked client is not', story, async () => {
    const { user, client } = await givenAliceWithASecret('Coverage baseline');
    await sleep(9_000); // longer than the window in which the hook reports a sync
    const before = await inWorker(() => chrome.storage.session.get('coverage.uncovered'));
    assert.deepEqual(before['coverage.uncovered'] ?? {}, {}, 'the hooked client was reported as not covered');

    const outcome = await sendThrough(client.page, 'page Web Worker fetch', {
      url: `${bed.synapse.baseUrl}/_matrix/client/v3/sync?timeout=0`,
      method: 'GET',
      headers: { Authorization: `Bearer ${user.accessToken}` },
    });
    assert.equal(outcome.status, 200);
    const popup = await bed.browser.openPopup();
    const warning = popup.getByRole('status', { name: `Not covered: ${bed.site.origin}` });
    await warning.waitFor({ timeout: 20_000 });
    assert.match(await warning.innerText(), /is not covered/);
    await popup.close();
  });

  it('Logging out through the client leaves no crypto store, no record, no token, no rules for that account', story, async () => {
    const { client, session, peer } = await givenAliceWithASecret('Before logging out');
    const plainRoom = await peer.createPlainRoom([session.userId]);
    assert.equal(await client.waitForInvite(), plainRoom);
    await client.joinRoom(plainRoom);
    await client.sendText(plainRoom, 'A plain message, so the guard knows this room');
    const accountId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
    const storeName = await poll('the account record', async () => {
      const { accounts } = await inWorker(() => chrome.storage.local.get('accounts'));
      return (accounts as Record<string, { storeName: string }> | undefined)?.[accountId]?.storeName;
    });
    const databases = () => inWorker(async () => (await indexedDB.databases()).map((db) => db.name ?? ''));
    assert.ok((await databases()).some((name) => name.startsWith(`${storeName}::`)), 'no store before logout');
    // The decrypted secret is in the account's search index and decrypted-event cache.
    const searchDb = `kirjava-search-${createHash('sha256').update(accountId).digest('hex').slice(0, 16)}`;
    await poll('the search index', async () => ((await databases()).includes(searchDb) ? true : undefined));
    assert.ok((await databases()).includes(`${storeName}-decrypted-events`), 'no decrypted-event cache before logout');
    const rulesMention = async (text: string) =>
      (await inWorker(() => chrome.declarativeNetRequest.getSessionRules())).some((r) => (r.condition.regexFilter ?? '').includes(text));
    await poll('the allow rule of the plain room', async () => ((await rulesMention(plainRoom.slice(1, 10))) ? true : undefined));

    const logout = await client.rawFetch('POST', '/_matrix/client/v3/logout', {});
    assert.equal(logout.status, 200);

    await poll('the account to be wiped', async () => {
      const { accounts } = await inWorker(() => chrome.storage.local.get('accounts'));
      return (accounts as Record<string, unknown>)?.[accountId] ? undefined : true;
    }, 20_000);
    assert.deepEqual((await databases()).filter((name) => name.startsWith(storeName)), [], 'the crypto store is still there');
    assert.ok(!(await databases()).includes(searchDb), 'the search index (decrypted plaintext) is still there');
    const { searchIndexKeys } = await inWorker(() => chrome.storage.local.get('searchIndexKeys'));
    assert.equal((searchIndexKeys as Record<string, unknown> | undefined)?.[accountId], undefined, 'the search index keys are still there');
    const { tokens } = await inWorker(() => chrome.storage.session.get('tokens'));
    assert.ok(!Object.values((tokens as Record<string, string>) ?? {}).includes(accountId), 'a token still maps to the account');
    const plain = await inWorker(() => chrome.storage.local.get('guard.plainRooms'));
    assert.equal((plain['guard.plainRooms'] as Record<string, unknown> | undefined)?.[accountId], undefined);
    assert.equal(await rulesMention(plainRoom.slice(1, 10)), false, 'the plain room still has an allow rule');
    const popup = await bed.browser.openPopup();
    await popup.getByText(/Kirjava/).first().waitFor();
    await sleep(500);
    assert.equal(await popup.getByRole('article', { name: session.userId }).count(), 0, 'the popup still shows the account');
    await popup.close();
  });
});
