/**
 * Safe whatever the settings say, told as user stories: a client that talks to a homeserver
 * Kirjava does not handle has its sends refused and the popup offers, with the badge, to add
 * that server (one click, never without it), also as the first setup; removing a site or a
 * homeserver asks first, keeps the open pages' sends blocked until they are reloaded, and the
 * popup stops saying "Encryption active"; the account-wide sharing policy persists and takes
 * effect. The popup and options pages throw no uncaught error in any of them.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Page } from 'playwright-core';
import { sendThrough, type Bypass } from '../fixtures/bypass.ts';
import { launchBrowser, type ExtensionBrowser, storyBrowsers } from '../fixtures/browser.ts';
import { poll, sleep } from '../fixtures/net.ts';
import type { Peer } from '../fixtures/peer.ts';
import { openPlainClient, type PlainClient } from '../fixtures/plain-client.ts';
import {
  StoryBed,
  assertClientReads,
  assertEncryptedOnServer,
  assertPeerDecrypts,
  givenEncryptedRoom,
} from '../fixtures/stories.ts';

const story = { timeout: 240_000 };
/** KIRJAVA_SCREENSHOTS=1 writes the README's first-run pictures into docs/screenshots/, from the Chromium run. */
const SCREENSHOTS = process.env.KIRJAVA_SCREENSHOTS === '1';
const screenshotDir = resolve(import.meta.dirname, '../../docs/screenshots');
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  /** The extension's service worker of `browser`. */
  /** Runs `fn` with the extension's APIs of `browser` (storage, rules, badge). */
  const inWorker = <T>(fn: () => Promise<T>, browser: ExtensionBrowser = bed.browser): Promise<T> =>
    browser.inExtension(fn);

  /** The toolbar title of the tab whose URL is `url`. */
  const titleOf = (url: string): Promise<string> =>
    bed.browser.inExtension(async (url) => {
      const tab = (await chrome.tabs.query({})).find((t) => t.url === url);
      return tab?.id === undefined ? 'no such tab' : chrome.action.getTitle({ tabId: tab.id });
    }, url);

  /**
   * What the worker last set as the toolbar icon of the tab whose URL is `url`: a digest of the
   * pixels it handed to `action.setIcon`, the plain icon's file, or undefined (never set: the
   * manifest's icon).
   */
  const iconOf = async (url: string): Promise<string | undefined> => {
    const tabId = await bed.browser.inExtension(
      async (url) => (await chrome.tabs.query({})).find((t) => t.url === url)?.id,
      url,
    );
    assert.ok(tabId !== undefined, `no tab shows ${url}`);
    return (await bed.browser.toolbarIcons())[tabId];
  };

  interface StoredSettings {
    homeservers: string[];
    allowedSites: string[];
  }

  const storedSettings = async (browser?: ExtensionBrowser) =>
    ((await inWorker(() => chrome.storage.local.get('settings'), browser)).settings ?? {
      homeservers: [],
      allowedSites: [],
    }) as StoredSettings;

  /** One of the README's pictures: the popup's top `height` pixels, from Chromium only (the same look each time). */
  async function readmeScreenshot(page: Page, name: string, height: number): Promise<void> {
    if (!SCREENSHOTS || browserName !== 'chromium') return;
    await mkdir(screenshotDir, { recursive: true });
    await page.setViewportSize({ width: 380, height });
    await page.screenshot({ path: `${screenshotDir}/${name}.png` });
  }

  const badge = (browser?: ExtensionBrowser) => inWorker(() => chrome.action.getBadgeText({}), browser);

  /** The test Synapse under a name Kirjava is not configured with (as `example.org` vs `matrix.example.org`). */
  const unhandledName = () => `http://localhost:${new URL(bed.synapse.baseUrl).port}`;

  /** A plaintext send into `roomId` from the client's page, through `bypass`. */
  function plainSend(
    client: PlainClient,
    token: string,
    roomId: string,
    body: string,
    bypass: Bypass = 'page fetch (hooked)',
  ) {
    const room = encodeURIComponent(roomId);
    return sendThrough(client.page, bypass, {
      url: `${bed.homeserverUrl}/_matrix/client/v3/rooms/${room}/send/m.room.message/t${Date.now()}`,
      method: 'PUT',
      headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ msgtype: 'm.text', body }),
    });
  }

  /** The events of the room the homeserver stores from `userId` in clear (none may exist). */
  async function plaintextOnServer(peer: Peer, roomId: string, userId: string): Promise<string[]> {
    const url = `${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=200`;
    const response = await fetch(url, { headers: { Authorization: `Bearer ${peer.accessToken}` } });
    const { chunk } = (await response.json()) as { chunk: Array<Record<string, any>> };
    return chunk.filter((e) => e.sender === userId && e.type === 'm.room.message').map((e) => e.content?.body);
  }

  /** Clicks Remove on `entry` in the options section `section`; answers the question with `accept`; its text. */
  async function removeInOptions(options: Page, section: string, entry: string, accept: boolean): Promise<string> {
    const asked = options.waitForEvent('dialog');
    const click = options
      .getByRole('region', { name: section })
      .getByRole('button', { name: `Remove ${entry}` })
      .click();
    const dialog = await asked;
    const message = dialog.message();
    await (accept ? dialog.accept() : dialog.dismiss());
    await click;
    return message;
  }

  /** The popup's card of `userId`, once it shows a state line. */
  async function accountStateLine(popup: Page, userId: string): Promise<string> {
    const card = popup.getByRole('article', { name: userId });
    await card.locator('.state').waitFor({ timeout: 15_000 });
    return card.locator('.state').innerText();
  }

  describe(
    `Safe whatever the settings say: unhandled homeservers, removed sites and servers, saved policies ` +
      `(${browserName})`,
    () => {
      before(() => bed.start(), { timeout: 180_000 });

      afterEach(() => bed.cleanUp());

      after(() => bed.stop());

      it(
        'A client on an allowed site that talks to the homeserver under a name Kirjava does not handle: ' +
          'its send is refused with a Matrix error, the popup offers to add the server with the badge, ' +
          'nothing is added without the click, and one click makes its next message encrypted',
        story,
        async () => {
          const alias = unhandledName();
          const user = await bed.newUser('alice');
          const client = await bed.givenClientTab();
          const session = await client.login(alias, user.userId, user.password);
          const peer = await bed.givenPeer();
          const roomId = await peer.createEncryptedRoom([user.userId]);
          assert.equal(await client.waitForInvite(), roomId);
          await client.joinRoom(roomId);
          await peer.waitForMembership(roomId, user.userId, 'join');

          const refused = await sendThrough(client.page, 'page fetch (hooked)', {
            url: `${alias}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/t1`,
            method: 'PUT',
            headers: { Authorization: `Bearer ${session.accessToken}`, 'Content-Type': 'application/json' },
            body: JSON.stringify({ msgtype: 'm.text', body: 'Plaintext to an unhandled name' }),
          });
          assert.equal(refused.status, 403, refused.text);
          assert.equal(JSON.parse(refused.text).errcode, 'M_FORBIDDEN');

          await poll('the badge to ask', async () => ((await badge()) === '?' ? true : undefined), 15_000);
          const popup = bed.track(await bed.browser.openPopup());
          const offer = popup.getByRole('region', { name: `Homeserver not handled: ${alias}` });
          await offer.waitFor({ timeout: 10_000 });
          assert.match(
            await offer.innerText(),
            new RegExp(
              `${bed.site.origin} talks to ${alias}, which Kirjava does not handle — add it\\?`.replace(/\./g, '\\.'),
            ),
          );
          await sleep(2_500); // the popup polls: nothing changes while nobody clicks
          assert.ok(!(await storedSettings()).homeservers.includes(alias), 'the server was added without a click');

          await offer.getByRole('button', { name: 'Add it' }).click();
          await offer.waitFor({ state: 'detached', timeout: 10_000 });
          assert.ok((await storedSettings()).homeservers.includes(alias));
          assert.equal(await badge(), '');

          // The client's next requests go through Kirjava: its device gets keys, its message is encrypted.
          await peer.waitForDeviceKeys(session.userId, session.deviceId, 30_000);
          const text = 'Encrypted once the server was added';
          const eventId = await client.sendText(roomId, text);
          await assertEncryptedOnServer(peer, roomId, eventId, text);
          await assertPeerDecrypts(peer, roomId, eventId, text, session.userId);
          assert.deepEqual(await plaintextOnServer(peer, roomId, session.userId), []);

          await inWorker(async () => {
            const { settings } = await chrome.storage.local.get('settings');
            const s = settings as { homeservers: string[] };
            await chrome.storage.local.set({
              settings: { ...s, homeservers: s.homeservers.filter((h) => !h.includes('localhost')) },
            });
          });
        },
      );

      it(
        'First run, as the README tells it: Kirjava installed and nothing configured, the user opens the client ' +
          'and logs in; the badge asks and the popup offers to set up its site and server; one click on ' +
          '"Set up", and the popup shows the account with "Encryption active", a message from an E2EE peer ' +
          'reads in clear and one sent into the encrypted room reaches the peer while the server holds only ciphertext',
        story,
        async () => {
          // 1. Install: a fresh browser with Kirjava and nothing configured.
          const fresh = await launchBrowser({ browser: browserName });
          try {
            assert.deepEqual(await storedSettings(fresh), { homeservers: [], allowedSites: [] });
            // 2. Open the client and log in.
            const user = await bed.newUser('alice');
            const client = await openPlainClient(fresh.context, bed.site.origin);
            const session = await client.login(bed.synapse.baseUrl, user.userId, user.password);
            // 3. The toolbar badge shows "?"; the popup offers to set the client up.
            await poll('the badge to ask', async () => ((await badge(fresh)) === '?' ? true : undefined), 15_000);
            const popup = await fresh.openPopup();
            await popup.setViewportSize({ width: 380, height: 600 });
            const offer = popup.getByRole('region', { name: `Homeserver not handled: ${bed.synapse.baseUrl}` });
            await offer.waitFor({ timeout: 10_000 });
            assert.match(await offer.innerText(), /which Kirjava does not handle — add it\?/);
            assert.match(await offer.innerText(), /Only add a Matrix client you trust/);
            assert.ok(await offer.getByRole('button', { name: 'Not now' }).isVisible());
            assert.deepEqual(await storedSettings(fresh), { homeservers: [], allowedSites: [] });
            await readmeScreenshot(popup, 'first-run-offer', 340);

            // 4. "Set up" adds both the site and its homeserver.
            await offer.getByRole('button', { name: 'Set up' }).click();
            await offer.waitFor({ state: 'detached', timeout: 10_000 });
            assert.deepEqual(await storedSettings(fresh), {
              homeservers: [bed.synapse.baseUrl],
              allowedSites: [bed.site.origin],
            });

            // 5. At the client's next sync (its long poll may run 30 s) the popup shows the account.
            const peer = await bed.givenPeer();
            await peer.waitForDeviceKeys(session.userId, session.deviceId, 45_000);
            const card = popup.getByRole('article', { name: session.userId });
            await card.getByText('Encryption active').waitFor({ timeout: 15_000 });
            assert.match(await card.innerText(), new RegExp(session.deviceId));
            assert.equal(await badge(fresh), '', 'the badge still asks after the setup');

            // 6. Read and send in an encrypted room.
            const roomId = await givenEncryptedRoom(peer, client, session.userId, session.deviceId);
            const greeting = 'Hello from an E2EE client, after a one-click setup';
            const greetingId = await peer.sendText(roomId, greeting);
            await assertEncryptedOnServer(peer, roomId, greetingId, greeting);
            await assertClientReads(client, roomId, greeting, peer.userId);
            const reply = 'Encrypted by Kirjava on its first run';
            const replyId = await client.sendText(roomId, reply);
            await assertEncryptedOnServer(peer, roomId, replyId, reply);
            await assertPeerDecrypts(peer, roomId, replyId, reply, session.userId);
            assert.deepEqual(await plaintextOnServer(peer, roomId, session.userId), []);
            await popup.reload();
            await popup.getByRole('article', { name: session.userId }).getByText('Encryption active').waitFor();
            await readmeScreenshot(popup, 'first-run-popup', 260);
            assert.deepEqual(fresh.pageErrors, []);
            await popup.close();
            await client.close();
          } finally {
            await fresh.close();
          }
        },
      );

      it(
        'Removing the allowed site while its client is open asks first, naming the consequence; ' +
          'until the page is reloaded its sends into the encrypted room stay blocked (also across a worker restart), ' +
          'and the popup no longer says "Encryption active"',
        story,
        async () => {
          const site = bed.site.origin;
          const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
          const peer = await bed.givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
          const options = bed.track(await bed.browser.openOptions());

          const question = await removeInOptions(options, 'Allowed sites', site, false);
          assert.ok(
            question.includes(`Messages you send from ${site} into encrypted rooms will no longer be encrypted`),
            question,
          );
          await sleep(500);
          assert.ok((await storedSettings()).allowedSites.includes(site), 'removed although the user said Cancel');

          await removeInOptions(options, 'Allowed sites', site, true);
          await options
            .getByRole('status')
            .filter({ hasText: `Removed ${site}` })
            .waitFor({ timeout: 10_000 });
          assert.ok(!(await storedSettings()).allowedSites.includes(site));

          const popup = bed.track(await bed.browser.openPopup());
          await popup.getByRole('status', { name: `Reload ${site}` }).waitFor({ timeout: 10_000 });
          const state = await accountStateLine(popup, userId);
          assert.doesNotMatch(state, /Encryption active/);
          assert.match(state, /no longer allowed/);
          await sleep(1_500); // the page's hook has been told it is no longer served

          // A navigation inside the page is not a reload: the client still believes it encrypts.
          await client.page.evaluate(() => history.pushState({}, '', '/#/room'));
          for (const bypass of ['page fetch (hooked)', 'page Web Worker fetch'] as const) {
            const outcome = await plainSend(
              client,
              accessToken,
              roomId,
              `Plaintext after removal via ${bypass}`,
              bypass,
            );
            assert.equal(outcome.status, 0, `${bypass}: ${outcome.status} ${outcome.text}`);
          }
          await bed.browser.stopWorker();
          const afterRestart = await plainSend(client, accessToken, roomId, 'Plaintext after a worker restart');
          assert.equal(afterRestart.status, 0, `${afterRestart.status} ${afterRestart.text}`);
          assert.deepEqual(await plaintextOnServer(peer, roomId, userId), []);

          // Reloaded, the page is an unprotected site's like any other: nothing is blocked for it any more.
          await client.page.reload();
          await poll(
            'the guard to let go of the reloaded page',
            async () =>
              (await inWorker(() => chrome.declarativeNetRequest.getSessionRules())).length === 0 ? true : undefined,
            10_000,
          );
          await popup.getByRole('status', { name: `Reload ${site}` }).waitFor({ state: 'detached', timeout: 10_000 });

          // Allowed again in the options page.
          const sites = options.getByRole('region', { name: 'Allowed sites' });
          await sites.getByRole('textbox', { name: 'Add site' }).fill(site);
          await sites.getByRole('button', { name: 'Add', exact: true }).click();
          await poll('the site to be allowed again', async () =>
            (await storedSettings()).allowedSites.includes(site) ? true : undefined,
          );
        },
      );

      it(
        'Removing the homeserver asks first; sends to it are refused with a Matrix error, ' +
          'the popup no longer says "Encryption active" and offers to add it back',
        story,
        async () => {
          const server = bed.homeserverUrl;
          const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
          const peer = await bed.givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
          const options = bed.track(await bed.browser.openOptions());
          const question = await removeInOptions(options, 'Homeservers', server, true);
          assert.match(question, /will no longer be encrypted/);
          assert.ok(question.includes(server), question);
          await options
            .getByRole('status')
            .filter({ hasText: `Removed ${server}` })
            .waitFor({ timeout: 10_000 });

          const popup = bed.track(await bed.browser.openPopup());
          await poll('the popup to see the removal', async () =>
            /no longer a homeserver/.test(await accountStateLine(popup, userId)) ? true : undefined,
          );
          assert.doesNotMatch(await accountStateLine(popup, userId), /Encryption active/);
          await sleep(1_500);
          const refused = await plainSend(client, accessToken, roomId, 'Plaintext after the server was removed');
          assert.equal(refused.status, 403, refused.text);
          assert.match(JSON.parse(refused.text).error, /Kirjava does not handle/);
          const fromWorker = await plainSend(
            client,
            accessToken,
            roomId,
            'Plaintext from a worker',
            'page Web Worker fetch',
          );
          assert.equal(fromWorker.status, 0, fromWorker.text);
          assert.deepEqual(await plaintextOnServer(peer, roomId, userId), []);

          // The client keeps syncing with the server: the popup offers to add it back.
          const offer = popup.getByRole('region', { name: `Homeserver not handled: ${server}` });
          await offer.getByRole('button', { name: 'Add it' }).click({ timeout: 20_000 });
          await offer.waitFor({ state: 'detached', timeout: 10_000 });
          assert.ok((await storedSettings()).homeservers.includes(server));
          await popup
            .getByRole('article', { name: userId })
            .getByText('Encryption active')
            .waitFor({ timeout: 10_000 });
        },
      );

      it(
        'The Homeserver URL field refuses a client page and an API path, saying what to enter, ' +
          'and resolves a server name to the base URL that answers before saving it',
        story,
        async () => {
          const options = bed.track(await bed.browser.openOptions());
          const region = options.getByRole('region', { name: 'Homeservers' });
          const field = region.getByRole('textbox', { name: 'Homeserver URL' });
          const save = region.getByRole('button', { name: 'Save', exact: true });
          const before = await storedSettings();
          const base = bed.synapse.baseUrl;
          const refusals: Array<[string, string]> = [
            [`${bed.site.origin}/#/home`, 'looks like the page of a Matrix client'],
            [
              `${base}/_matrix/client/versions`,
              `is an API path, not a homeserver. Enter the part before /_matrix/: ${base}`,
            ],
            [bed.site.origin, 'does not answer as a Matrix homeserver: it answered 404'],
          ];
          for (const [typed, message] of refusals) {
            await field.fill(typed);
            await save.click();
            const alert = region.getByRole('alert').filter({ hasText: message });
            await alert.waitFor({ timeout: 15_000 });
          }
          assert.deepEqual(await storedSettings(), before, 'a refused entry was saved');

          // A user id whose server name has no well-known and no homeserver: say so, offer the base URL.
          await field.fill('@alice:localhost');
          await save.click();
          await region
            .getByRole('alert')
            .filter({
              hasText: /Could not find the homeserver of localhost.*Enter the homeserver’s full base URL instead/,
            })
            .waitFor({ timeout: 20_000 });

          // A server name (here with its port, on this computer) is resolved through its well-known
          // (Synapse names its base URL there) and checked before it is saved.
          const serverName = new URL(unhandledName()).host;
          await field.fill(serverName);
          await save.click();
          const saved = region.getByRole('status');
          await saved.waitFor({ timeout: 20_000 });
          assert.equal(await saved.innerText(), `Saved: ${serverName} is ${base}, already listed`);
          assert.deepEqual(await storedSettings(), before);
        },
      );

      it(
        'The toolbar icon says per tab whether it is protected, not covered, or not a Matrix client ' +
          '(its title, and an image of its own for each)',
        story,
        async () => {
          const other = bed.track(await bed.browser.context.newPage());
          await other.goto(`${bed.site.origin}/not-a-client`);
          // Offers left open by earlier stories may follow in the title: what the tab is comes first.
          assert.match(await titleOf(other.url()), /^Kirjava: not a Matrix client( · |$)/);
          const plainIcon = await iconOf(other.url());
          assert.ok(plainIcon === undefined || plainIcon.startsWith('path:'), `not a client, yet icon ${plainIcon}`);

          const { client } = await bed.givenLoggedInClient();
          await client.page.evaluate(() => history.replaceState({}, '', '/?protected'));
          await poll('the protected title', async () =>
            (await titleOf(client.page.url())) === 'Kirjava: this tab is protected' ? true : undefined,
          );

          const alias = unhandledName();
          const uncovered = await bed.givenClientTab();
          await uncovered.page.evaluate(() => history.replaceState({}, '', '/?uncovered'));
          const user = await bed.newUser('carol');
          await uncovered.login(alias, user.userId, user.password);
          await poll('the not-covered title', async () =>
            (await titleOf(uncovered.page.url())).startsWith(
              `Kirjava: not covered — this page talks to ${alias}, which Kirjava does not handle`,
            )
              ? true
              : undefined,
          );
          assert.equal(await titleOf(client.page.url()), 'Kirjava: this tab is protected');
          // Each state has an image of its own: the worker handed setIcon different pixels.
          const protectedIcon = await iconOf(client.page.url());
          const uncoveredIcon = await iconOf(uncovered.page.url());
          assert.match(protectedIcon ?? 'none', /^drawn:/, 'the protected tab got no drawn icon');
          assert.match(uncoveredIcon ?? 'none', /^drawn:/, 'the not-covered tab got no drawn icon');
          assert.notEqual(protectedIcon, uncoveredIcon, 'protected and not covered show the same image');

          // A new page in the protected tab is not a client until it talks to a homeserver.
          await client.page.goto(`${bed.site.origin}/not-a-client?after-the-client`);
          await poll('the title to reset', async () =>
            (await titleOf(client.page.url())) !== 'Kirjava: this tab is protected' ? true : undefined,
          );
          assert.doesNotMatch(await titleOf(client.page.url()), /protected/);
          const resetIcon = await poll('the plain icon back', async () => {
            const icon = await iconOf(client.page.url());
            return icon?.startsWith('path:') ? icon : undefined;
          });
          assert.notEqual(resetIcon, protectedIcon);

          const popup = bed.track(await bed.browser.openPopup());
          const offer = popup.getByRole('region', { name: `Homeserver not handled: ${alias}` });
          await offer.getByRole('button', { name: 'Not now' }).click({ timeout: 10_000 });
          await offer.waitFor({ state: 'detached', timeout: 10_000 });
          assert.ok(!(await storedSettings()).homeservers.includes(alias));
        },
      );

      // Firefox only, and why: Chromium grants the manifest's host access at install and an
      // extension cannot give it back (permissions.remove refuses a required grant), so there is
      // nothing for the popup to miss. In Firefox the user can take it back at any time.
      if (browserName === 'firefox')
        it(
          'Firefox: host access taken back: the popup names each origin Kirjava has no access to, ' +
            'and a send from a page loaded without the hook is blocked, never stored in clear',
          story,
          async () => {
            const fresh = await launchBrowser({ browser: browserName });
            try {
              await fresh.configure(bed.homeserverUrl, bed.site.origin);
              const user = await bed.newUser('alice');
              const client = await openPlainClient(fresh.context, bed.site.origin);
              const session = await client.login(bed.homeserverUrl, user.userId, user.password);
              const peer = await bed.givenPeer();
              const roomId = await givenEncryptedRoom(peer, client, session.userId, session.deviceId);

              assert.equal(await fresh.inExtension(() => chrome.permissions.remove({ origins: ['<all_urls>'] })), true);
              const popup = await fresh.openPopup();
              for (const origin of [bed.homeserverUrl, bed.site.origin]) {
                const missing = popup.getByRole('alert', { name: `No access to ${origin}` });
                await missing.waitFor({ timeout: 10_000 });
                assert.match(await missing.innerText(), new RegExp(`Kirjava has no access to ${origin}`));
                await missing.getByRole('button', { name: `Give access to ${origin}` }).waitFor();
              }

              // A page loaded now runs without Kirjava's hook: the guard alone stands between it
              // and the encrypted room.
              const page = await fresh.context.newPage();
              await page.goto(`${bed.site.origin}/not-a-client`);
              const status = await page.evaluate(
                async ({ url, token }) =>
                  fetch(url, {
                    method: 'PUT',
                    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
                    body: JSON.stringify({ msgtype: 'm.text', body: 'No access, no plaintext' }),
                  }).then(
                    (response) => response.status,
                    () => 0,
                  ),
                {
                  url:
                    `${bed.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}` +
                    `/send/m.room.message/no-access-${Date.now()}`,
                  token: session.accessToken,
                },
              );
              assert.equal(status, 0, 'the send was not blocked');
              assert.deepEqual(await plaintextOnServer(peer, roomId, session.userId), []);
              assert.deepEqual(fresh.pageErrors, []);
              await client.close();
            } finally {
              await fresh.close();
            }
          },
        );

      it(
        'The account-wide "Share room keys with" choice persists across a reload of the options page, ' +
          'and under "Ask" a send to an unverified device waits for the question',
        story,
        async () => {
          const { client, userId, deviceId } = await bed.givenLoggedInClient();
          const peer = await bed.givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

          const options = bed.track(await bed.browser.openOptions());
          const group = options.getByRole('group', { name: `Key sharing for ${userId}` });
          const policy = group.getByRole('combobox', { name: 'Share room keys with' });
          await policy.selectOption('ask');
          await options.getByRole('region', { name: 'Key sharing' }).getByRole('status').waitFor({ timeout: 10_000 });
          await options.reload();
          await group.waitFor({ timeout: 10_000 });
          assert.equal(await policy.inputValue(), 'ask', 'the account-wide policy did not persist');

          const popup = bed.track(await bed.browser.openPopup());
          const asking = popup.getByRole('region', { name: 'Message waiting for your answer' });
          const text = 'Sent after the question';
          const sending = client.sendText(roomId, text);
          await asking.getByText(peer.deviceId).waitFor({ timeout: 20_000 });
          await asking.getByRole('button', { name: 'Send anyway' }).click();
          const eventId = await sending;
          await assertPeerDecrypts(peer, roomId, eventId, text, userId);
        },
      );
    },
  );
}
