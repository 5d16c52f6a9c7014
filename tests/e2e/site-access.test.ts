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
import { OlmMachine, initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import fc from 'fast-check';
import type { Page } from 'playwright-core';
import { sendThrough } from '../fixtures/bypass.ts';
import { startClientServer } from '../fixtures/client-server.ts';
import { poll, sleep } from '../fixtures/net.ts';
import { StoryBed, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 180_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  const newUser = (name: string) => bed.newUser(name);
  /** The same page served on another origin the user never allowed. */
  let hostileOrigin: string;

  /** Runs `fn` with the extension's APIs (to inspect storage, rules, IndexedDB). */
  const inWorker = <T>(fn: () => Promise<T>): Promise<T> => bed.browser.inExtension(fn);

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
   * A page of `origin` whose script takes the bridge's MessagePort before the hook can (it runs
   * at document creation, listening first) and keeps it for itself: an XSS in a client, or a
   * hostile site. `path` may ask the test server for a CSP-sandboxed (opaque-origin) page.
   */
  async function openPortThief(origin: string, path = '/'): Promise<Page> {
    const page = await bed.browser.context.newPage();
    bed.track(page);
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
    await page.goto(`${origin}${path}`);
    await page.waitForFunction(() => 'stolenPort' in window, undefined, { timeout: 10_000 });
    return page;
  }

  /** The hostile page on the unallowed origin. */
  const openHostilePage = () => openPortThief(hostileOrigin);

  /** Account records Kirjava keeps, by id (`<homeserver>|<user>|<device>`). */
  async function accountRecords(): Promise<
    Record<string, { userId: string; deviceId: string; loggedOutAt?: number; storeName: string }>
  > {
    const { accounts } = await inWorker(() => chrome.storage.local.get('accounts'));
    return (accounts ?? {}) as Awaited<ReturnType<typeof accountRecords>>;
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

  describe(`Keys stay with their owner: unallowed sites, site prompts, coverage, logout (${browserName})`, () => {
    before(
      async () => {
        await bed.start();
        await initAsync();
        hostileOrigin = bed.site.origin.replace('127.0.0.1', 'localhost');
      },
      { timeout: 180_000 },
    );

    afterEach(async () => {
      await bed.cleanUp();
      bed.assertNoPageErrors();
    });

    after(() => bed.stop());

    it(
      'A page on an unallowed site that forges bridge messages gets nothing: ' +
        'no decryption, no keys, no tokens, and its own traffic stays encrypted',
      story,
      async () => {
        const secret = 'Only for the allowed client';
        const { user, session, roomId, ciphertext } = await givenAliceWithASecret(secret);
        const page = await openHostilePage();
        assert.equal(
          await page.evaluate(() => (window as any).stolenPort instanceof MessagePort),
          true,
          'the hostile page did not get the bridge port',
        );

        const forged = [
          {
            kind: 'events',
            baseUrl: bed.synapse.baseUrl,
            token: user.accessToken,
            roomId,
            body: JSON.stringify({ chunk: [ciphertext] }),
          },
          {
            kind: 'sync',
            baseUrl: bed.synapse.baseUrl,
            token: user.accessToken,
            body: JSON.stringify({ rooms: { join: { [roomId]: { timeline: { events: [ciphertext] } } } } }),
          },
          {
            kind: 'login',
            baseUrl: bed.synapse.baseUrl,
            body: JSON.stringify({ user_id: session.userId, access_token: user.accessToken, device_id: 'FORGED' }),
          },
          {
            kind: 'send',
            baseUrl: bed.synapse.baseUrl,
            token: user.accessToken,
            roomId,
            eventType: 'm.room.message',
            txnId: 'x',
            body: '{"msgtype":"m.text","body":"forged"}',
          },
          { kind: 'export-keys', baseUrl: bed.synapse.baseUrl, token: user.accessToken },
          { kind: 'accounts', channel: 'kirjava:ui' },
        ];
        for (const request of forged) {
          const answer = JSON.stringify(await forgeOverBridge(page, request));
          // The bridge's own words when the worker stays silent; never anything from the worker.
          assert.ok(!answer.includes(secret), `${request.kind}: the plaintext came back`);
          assert.ok(!answer.includes(user.accessToken), `${request.kind}: a token came back`);
          assert.ok(
            !/"ok":true|session_key|ed25519|curve25519|"accounts"/.test(answer),
            `${request.kind}: got ${answer}`,
          );
          assert.match(answer, /did not answer|timeout/, `${request.kind}: ${answer}`);
        }
        // The worker answers nothing at all: the bridge's sendMessage sees the channel close.
        const direct = await page.evaluate(() => typeof (window as any).chrome?.runtime?.sendMessage);
        assert.equal(direct, 'undefined', 'the page can message the extension directly');

        // The page's own client, with Alice's real token, sees the event as the server has it.
        const hostile = await bed.givenClientTab(hostileOrigin);
        await hostile.startWithToken(bed.synapse.baseUrl, session.userId, user.accessToken, session.deviceId);
        const timeline = await poll(
          'the room on the unallowed page',
          async () => {
            const events = await hostile.timeline(roomId).catch(() => undefined);
            return events?.some((e) => e.eventId === ciphertext.event_id) ? events : undefined;
          },
          20_000,
        );
        const seen = timeline.find((e) => e.eventId === ciphertext.event_id)!;
        assert.equal(seen.type, 'm.room.encrypted');
        assert.notEqual(seen.body, secret);
        await page.close();
      },
    );

    it(
      'An allowed page that sends a made-up token gets a Matrix error ' +
        'and nothing of any account; a forged logout wipes nothing',
      story,
      async () => {
        const secret = 'Not for a stranger token';
        const { roomId, ciphertext, session } = await givenAliceWithASecret(secret);
        const page = await openPortThief(bed.site.origin);
        const answer = (await forgeOverBridge(
          page,
          {
            kind: 'events',
            baseUrl: bed.synapse.baseUrl,
            token: 'syt_made_up_token',
            roomId,
            body: JSON.stringify({ chunk: [ciphertext] }),
          },
          15_000,
        )) as { reply?: { ok: boolean; errcode?: string } };
        assert.equal(answer.reply?.ok, false, JSON.stringify(answer));
        assert.equal(answer.reply?.errcode, 'M_UNKNOWN_TOKEN');
        assert.ok(!JSON.stringify(answer).includes(secret));

        // A logout claimed while the token still works is not a logout.
        const logout = (await forgeOverBridge(
          page,
          { kind: 'logout', baseUrl: bed.synapse.baseUrl, token: session.accessToken, all: true },
          15_000,
        )) as {
          reply?: { ok: boolean };
        };
        assert.equal(logout.reply?.ok, true, JSON.stringify(logout));
        const { accounts } = await inWorker(() => chrome.storage.local.get('accounts'));
        assert.ok(
          (accounts as Record<string, unknown>)[`${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`],
          'a forged logout wiped the account',
        );
        await page.close();
      },
    );

    it(
      'An allowed page cannot forget an account or reset Kirjava: those are popup and options requests only, ' +
        'and the worker answers a page that forges them with nothing',
      story,
      async () => {
        const secret = 'Still readable after the forgery';
        const { session, client, peer, roomId } = await givenAliceWithASecret(secret);
        const accountId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
        const page = await openPortThief(bed.site.origin);
        const forged = [
          { channel: 'kirjava:ui', kind: 'account-forget', accountId },
          { kind: 'account-forget', accountId },
          { channel: 'kirjava:ui', kind: 'kirjava-reset' },
          { kind: 'kirjava-reset' },
        ];
        for (const request of forged) {
          const answer = JSON.stringify(await forgeOverBridge(page, request));
          assert.ok(!/"ok":true/.test(answer), `${request.kind}: got ${answer}`);
        }
        const records = await accountRecords();
        assert.ok(records[accountId], 'a forged request forgot the account');
        const { settings } = await inWorker(() => chrome.storage.local.get('settings'));
        assert.ok(JSON.stringify(settings).includes(bed.site.origin), 'a forged reset cleared the settings');
        // The account still works: a new message reaches the client decrypted.
        const after = 'Sent after the forged requests';
        await peer.sendText(roomId, after);
        await client.waitForBody(roomId, after);
        await page.close();
      },
    );

    it(
      'A forged login from an allowed page binds nothing the homeserver does not confirm: ' +
        'no account, no decryption; a logout forged after it wipes nothing',
      story,
      async () => {
        const secret = 'Not for a forged login';
        const { user, session, client, peer, roomId, ciphertext } = await givenAliceWithASecret(secret);
        const aliceId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
        const before = Object.keys(await accountRecords()).sort();
        const page = await openPortThief(bed.site.origin);
        const madeUp = 'syt_forged_login_token';
        const forgedLogins = [
          // A made-up token for Alice's very device, and for a device nobody has.
          { user_id: session.userId, device_id: session.deviceId, access_token: madeUp },
          { user_id: session.userId, device_id: 'FORGEDDEVICE', access_token: madeUp },
          // Alice's real token of another device, claimed for the client's device and for another user.
          { user_id: session.userId, device_id: session.deviceId, access_token: user.accessToken },
          { user_id: '@mallory:localhost', device_id: 'MALLORY', access_token: user.accessToken },
        ];
        for (const login of forgedLogins) {
          const body = JSON.stringify(login);
          const answer = (await forgeOverBridge(
            page,
            { kind: 'login', baseUrl: bed.synapse.baseUrl, body },
            15_000,
          )) as {
            reply?: { ok: boolean; errcode?: string };
          };
          assert.equal(answer.reply?.ok, false, `the forged login ${body} was accepted: ${JSON.stringify(answer)}`);
        }
        assert.deepEqual(
          Object.keys(await accountRecords()).sort(),
          before,
          'a forged login created an account record',
        );

        // The made-up token reaches no account: the homeserver's M_UNKNOWN_TOKEN and nothing else.
        const events = JSON.stringify(
          await forgeOverBridge(
            page,
            {
              kind: 'events',
              baseUrl: bed.synapse.baseUrl,
              token: madeUp,
              roomId,
              body: JSON.stringify({ chunk: [ciphertext] }),
            },
            15_000,
          ),
        );
        assert.ok(!events.includes(secret), 'the made-up token got the plaintext');
        assert.match(events, /M_UNKNOWN_TOKEN/);

        // Its 401 proves nothing about Alice's account: a logout with it wipes nothing.
        await forgeOverBridge(page, { kind: 'logout', baseUrl: bed.synapse.baseUrl, token: madeUp, all: true }, 15_000);
        const records = await accountRecords();
        assert.ok(
          records[aliceId] && !records[aliceId].loggedOutAt,
          'a logout with a made-up token retired the account',
        );
        const next = 'Still readable after the forged logout';
        await peer.sendText(roomId, next);
        assert.equal((await client.waitForBody(roomId, next, 20_000)).type, 'm.room.message');
      },
    );

    it(
      'A page that logged its own session out and then claims a logout of every device retires only its own: ' +
        "the user's device on another site, whose token still works, keeps reading",
      story,
      async () => {
        const { user, session, client, peer, roomId } = await givenAliceWithASecret('Before the claimed logout');
        const aliceId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
        const otherSite = await startClientServer('127.0.0.3');
        try {
          await bed.allowSite(otherSite.origin);
          // Alice's second device, logged in on the other site (bound to it, its token live).
          const second = await bed.givenClientTab(otherSite.origin);
          const secondSession = await second.login(bed.homeserverUrl, user.userId, user.password);
          const secondId = `${bed.synapse.baseUrl}|${secondSession.userId}|${secondSession.deviceId}`;
          await poll('the second device bound to the other site', async () =>
            (await accountRecords())[secondId] ? true : undefined,
          );
          await peer.waitForDeviceKeys(secondSession.userId, secondSession.deviceId, 20_000);

          // Site A ends its own session for real past the hook (as a Web Worker of the page could)...
          await client.close();
          const ended = await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/logout`, {
            method: 'POST',
            headers: { Authorization: `Bearer ${session.accessToken}`, 'Content-Type': 'application/json' },
            body: '{}',
          });
          assert.equal(ended.status, 200);
          // ...then claims, with its dead token, that every device of the user logged out.
          const page = await openPortThief(bed.site.origin);
          const claimed = (await forgeOverBridge(
            page,
            { kind: 'logout', baseUrl: bed.synapse.baseUrl, token: session.accessToken, all: true },
            15_000,
          )) as { reply?: { ok: boolean } };
          assert.equal(claimed.reply?.ok, true, JSON.stringify(claimed));
          const records = await accountRecords();
          assert.ok(!records[aliceId] || records[aliceId].loggedOutAt, "site A's own device was not retired");
          assert.ok(
            records[secondId] && !records[secondId].loggedOutAt,
            "the claimed logout of every device retired the other site's live device",
          );

          // The second device still decrypts what the peer sends.
          const next = 'Still readable on the other site';
          await peer.sendText(roomId, next);
          assert.equal((await second.waitForBody(roomId, next, 30_000)).type, 'm.room.message');
          await second.close();
        } finally {
          await inWorker(async () => {
            const { settings } = await chrome.storage.local.get('settings');
            const s = settings as { allowedSites: string[] };
            await chrome.storage.local.set({
              settings: { ...s, allowedSites: s.allowedSites.filter((o) => !o.includes('127.0.0.3')) },
            });
          });
          await otherSite.stop();
        }
      },
    );

    it(
      'A page whose origin is opaque (CSP sandbox) is never served, though its URL names an allowed site',
      story,
      async () => {
        const secret = 'Not for an opaque origin';
        const { session, roomId, ciphertext } = await givenAliceWithASecret(secret);
        const page = await openPortThief(bed.site.origin, '/?csp-sandbox');
        assert.equal(await page.evaluate(() => self.origin), 'null', 'the page is not sandboxed');
        assert.ok(page.url().startsWith(bed.site.origin));
        const answer = JSON.stringify(
          await forgeOverBridge(
            page,
            {
              kind: 'events',
              baseUrl: bed.synapse.baseUrl,
              token: session.accessToken,
              roomId,
              body: JSON.stringify({ chunk: [ciphertext] }),
            },
            5_000,
          ),
        );
        assert.ok(!answer.includes(secret), `the opaque-origin page got the plaintext: ${answer}`);
        assert.match(answer, /did not answer|timeout/, answer);
      },
    );

    it(
      'Forged page messages in bulk (login, logout, sync, events with random fields) ' +
        'create no account, retire none, and leave the worker serving',
      { timeout: 300_000 },
      async () => {
        const { session, client, peer, roomId } = await givenAliceWithASecret('Before the fuzzing');
        const aliceId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
        const before = Object.keys(await accountRecords()).sort();
        const page = await openPortThief(bed.site.origin);
        const base = bed.synapse.baseUrl;
        // Mostly the configured homeserver: a request about any other gets no answer at all (slow to see).
        const baseUrl = fc.oneof(
          { weight: 6, arbitrary: fc.constant(base) },
          { weight: 1, arbitrary: fc.string({ maxLength: 20 }) },
        );
        const text = fc.oneof(
          fc.string({ maxLength: 20 }),
          fc.constantFrom(session.userId, session.deviceId, '', '@x:localhost', '\u0000', '__proto__'),
        );
        const token = fc.oneof(text, fc.constant(session.accessToken), fc.constant(null), fc.integer());
        const json = fc.jsonValue({ maxDepth: 3 });
        const forged = fc.oneof(
          fc.record({
            kind: fc.constant('login'),
            baseUrl,
            body: fc.oneof(
              text,
              json.map((v) => JSON.stringify(v)),
              fc.record({ user_id: text, device_id: text, access_token: token }).map((v) => JSON.stringify(v)),
            ),
          }),
          fc.record({ kind: fc.constant('logout'), baseUrl, token, all: fc.oneof(fc.boolean(), json) }),
          fc.record({ kind: fc.constant('logout-prepare'), baseUrl: fc.constant(base), token }),
          fc.record({
            kind: fc.constantFrom('sync', 'events', 'notifications'),
            baseUrl: fc.constant(base),
            token: fc.oneof(fc.constant(session.accessToken), token),
            roomId: fc.oneof(fc.constant(roomId), text),
            body: fc.oneof(
              text,
              json.map((v) => JSON.stringify(v)),
            ),
          }),
          json,
        );
        const samples = fc.sample(forged, { numRuns: 40, seed: 11 });
        for (const request of samples) {
          const answer = (await forgeOverBridge(page, request, 4_000)) as { reply?: { ok?: boolean } };
          if ((request as { kind?: unknown })?.kind === 'login') {
            assert.notEqual(answer.reply?.ok, true, `a forged login was accepted: ${JSON.stringify(request)}`);
          }
        }
        assert.deepEqual(
          Object.keys(await accountRecords()).sort(),
          before,
          'forged messages created or retired an account',
        );
        assert.equal((await accountRecords())[aliceId]?.loggedOutAt, undefined);
        const next = 'Readable after the fuzzing';
        await peer.sendText(roomId, next);
        assert.equal((await client.waitForBody(roomId, next, 20_000)).type, 'm.room.message');
      },
    );

    it(
      'The popup asks "Allow <origin> to use encryption for <account>?"; the badge shows it; ' +
        'Allow makes that site work',
      story,
      async () => {
        const secret = 'Readable once allowed';
        const { session, roomId } = await givenAliceWithASecret(secret);
        // The same session opened on a second site (its token is one Kirjava knows, so the prompt names the account).
        const hostile = await bed.givenClientTab(hostileOrigin);
        await hostile.startWithToken(bed.synapse.baseUrl, session.userId, session.accessToken, session.deviceId);

        await poll('the badge to show a pending site', async () =>
          (await inWorker(() => chrome.action.getBadgeText({}))) === '?' ? true : undefined,
        );
        const popup = await bed.browser.openPopup();
        const ask = popup.getByRole('region', { name: `Site request from ${hostileOrigin}` });
        await ask.waitFor({ timeout: 10_000 });
        assert.match(
          await ask.innerText(),
          new RegExp(`Allow ${hostileOrigin.replace(/[.]/g, '\\.')} to use encryption for ${session.userId}\\?`),
        );
        await ask.getByRole('button', { name: 'Allow' }).click();
        await ask.waitFor({ state: 'detached', timeout: 10_000 });
        const settings = await inWorker(() => chrome.storage.local.get('settings'));
        assert.ok((settings.settings as { allowedSites: string[] }).allowedSites.includes(hostileOrigin));
        assert.equal(await inWorker(() => chrome.action.getBadgeText({})), '');
        await popup.close();

        // Reloaded, the newly allowed site still may not use Alice's account: another site logged
        // it in. Its syncs fail (no to-device event is lost to it) until the user says yes.
        await hostile.close();
        const allowed = await bed.givenClientTab(hostileOrigin);
        await assert.rejects(
          allowed.startWithToken(bed.synapse.baseUrl, session.userId, session.accessToken, session.deviceId),
          /first sync/,
          'the second site synced through Kirjava before the user allowed it the account',
        );
        const accountPopup = bed.track(await bed.browser.openPopup());
        const accountAsk = accountPopup.getByRole('region', { name: `Account request from ${hostileOrigin}` });
        await accountAsk.waitFor({ timeout: 15_000 });
        assert.match(await accountAsk.innerText(), new RegExp(`use ${session.userId.replace(/[.]/g, '\\.')} too\\?`));
        assert.ok(
          !(await allowed.timeline(roomId).catch(() => [])).some((e) => e.body === secret),
          'the second site read before the user allowed it',
        );
        const refused = await allowed.rawFetch('GET', '/_matrix/client/v3/sync?timeout=0');
        assert.equal(refused.status, 403, JSON.stringify(refused));
        assert.ok(!JSON.stringify(refused.json).includes(secret));
        await accountAsk.getByRole('button', { name: 'Allow' }).click();
        await accountAsk.waitFor({ state: 'detached', timeout: 10_000 });
        const entry = await allowed.waitForBody(roomId, secret, 30_000);
        assert.equal(entry.type, 'm.room.message');
        // Later stories want the hostile origin unallowed again (and its page gone, or it would ask again).
        await allowed.close();
        await inWorker(async () => {
          const { settings } = await chrome.storage.local.get('settings');
          const s = settings as { allowedSites: string[] };
          await chrome.storage.local.set({
            settings: { ...s, allowedSites: s.allowedSites.filter((o) => !o.includes('localhost')) },
          });
        });
      },
    );

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

    it(
      'A client that syncs from a Web Worker is reported in the popup as not covered; the hooked client is not',
      story,
      async () => {
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
      },
    );

    it(
      'Logging out through the client without a key backup: tokens, rules, ' +
        'caches and search index go at once; the keys are kept sealed for export, then deleted',
      story,
      async () => {
        const secret = 'Before logging out';
        const { client, session, peer, roomId } = await givenAliceWithASecret(secret);
        const plainRoom = await peer.createPlainRoom([session.userId]);
        assert.equal(await client.waitForInvite(), plainRoom);
        await client.joinRoom(plainRoom);
        await client.sendText(plainRoom, 'A plain message, so the guard knows this room');
        const accountId = `${bed.synapse.baseUrl}|${session.userId}|${session.deviceId}`;
        const storeName = await poll('the account record', async () => (await accountRecords())[accountId]?.storeName);
        const databases = () => inWorker(async () => (await indexedDB.databases()).map((db) => db.name ?? ''));
        assert.ok(
          (await databases()).some((name) => name.startsWith(`${storeName}::`)),
          'no store before logout',
        );
        // The decrypted secret is in the account's search index and decrypted-event cache.
        const searchDb = `kirjava-search-${createHash('sha256').update(accountId).digest('hex').slice(0, 16)}`;
        await poll('the search index', async () => ((await databases()).includes(searchDb) ? true : undefined));
        assert.ok(
          (await databases()).includes(`${storeName}-decrypted-events`),
          'no decrypted-event cache before logout',
        );
        const rulesMention = async (text: string) =>
          (await inWorker(() => chrome.declarativeNetRequest.getSessionRules())).some((r) =>
            (r.condition.regexFilter ?? '').includes(text),
          );
        await poll('the allow rule of the plain room', async () =>
          (await rulesMention(plainRoom.slice(1, 10))) ? true : undefined,
        );

        const logout = await client.rawFetch('POST', '/_matrix/client/v3/logout', {});
        assert.equal(logout.status, 200);

        const keptId = await poll(
          'the account to be retired',
          async () =>
            Object.entries(await accountRecords()).find(
              ([id, record]) => id.startsWith(`${accountId}|logged-out|`) && record.loggedOutAt,
            )?.[0],
          20_000,
        );
        assert.equal((await accountRecords())[accountId], undefined, 'the active record is still there');
        assert.ok(
          (await databases()).some((name) => name.startsWith(`${storeName}::`)),
          'the crypto store was deleted although no backup holds its keys',
        );
        assert.ok(
          !(await databases()).includes(`${storeName}-decrypted-events`),
          'the decrypted-event cache is still there',
        );
        await poll('the search index to go', async () => ((await databases()).includes(searchDb) ? undefined : true));
        const { searchIndexKeys } = await inWorker(() => chrome.storage.local.get('searchIndexKeys'));
        assert.equal(
          (searchIndexKeys as Record<string, unknown> | undefined)?.[accountId],
          undefined,
          'the search index keys are still there',
        );
        const { tokens } = await inWorker(() => chrome.storage.session.get('tokens'));
        assert.ok(
          !Object.values((tokens as Record<string, string>) ?? {}).includes(accountId),
          'a token still maps to the account',
        );
        const plain = await inWorker(() => chrome.storage.local.get('guard.plainRooms'));
        assert.equal((plain['guard.plainRooms'] as Record<string, unknown> | undefined)?.[accountId], undefined);
        assert.equal(await rulesMention(plainRoom.slice(1, 10)), false, 'the plain room still has an allow rule');

        // The popup offers the kept keys for export, then deletes them on request.
        const popup = bed.track(await bed.browser.openPopup());
        const card = popup.getByRole('article', { name: session.userId });
        await card.getByText(/Logged out: keys kept until/).waitFor({ timeout: 10_000 });
        assert.equal(
          await card.getByRole('button', { name: 'Recover', exact: true }).count(),
          0,
          'a logged-out account offers recovery',
        );
        const panel = card.getByRole('region', { name: 'Encryption keys' });
        await panel.getByLabel('Export passphrase', { exact: true }).fill('kept keys passphrase');
        await panel.getByLabel('Repeat the export passphrase').fill('kept keys passphrase');
        const { text: file } = await bed.browser.download(popup, async () => {
          await panel.getByRole('button', { name: 'Export keys' }).click();
          await panel
            .getByRole('status')
            .filter({ hasText: /exported to kirjava-keys\.txt/ })
            .waitFor({ timeout: 60_000 });
        });
        const exported = JSON.parse(OlmMachine.decryptExportedRoomKeys(file, 'kept keys passphrase')) as Array<{
          room_id: string;
        }>;
        assert.ok(
          exported.some((key) => key.room_id === roomId),
          "the export lacks the encrypted room's key",
        );

        popup.once('dialog', (dialog) => void dialog.accept());
        await card.getByRole('button', { name: 'Delete now' }).click();
        await card.waitFor({ state: 'detached', timeout: 15_000 });
        assert.equal((await accountRecords())[keptId], undefined, 'the logged-out record is still there');
        await poll('the kept store to go', async () =>
          (await databases()).some((name) => name.startsWith(storeName)) ? undefined : true,
        );
      },
    );
  });
}
