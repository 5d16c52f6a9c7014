/**
 * The popup tells the user, for each account, which device Kirjava encrypts as, the device's
 * fingerprint to compare with other clients, and whether encryption works, with what to do
 * when it does not; its Diagnostics page says what is covered without naming anyone.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { StoryBed, assertClientReads, givenEncryptedRoom, setUpSecureBackup } from '../fixtures/stories.ts';
import type { Page } from 'playwright-core';
import { launchBrowser, storyBrowsers, type ExtensionBrowser } from '../fixtures/browser.ts';
import { poll } from '../fixtures/net.ts';
import { loadExtensionPage } from '../fixtures/browser-driver.ts';

const story = { timeout: 120_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  /** Says where a story is, with the time: when one hangs on a slow machine, its log shows where. */
  const step = (what: string) => console.log(`# ${new Date().toISOString()} ${what}`);

  /** "abcd efgh …" as the popup groups it, back to the unpadded base64 key. */
  const ungroup = (text: string) => text.replace(/\s+/g, '');

  /** The extension page below `path` that `click` opens in a new tab of `browser`, once it shows `ready`. */
  async function opensPage(
    browser: ExtensionBrowser,
    path: string,
    ready: (page: Page) => Promise<unknown>,
    click: () => Promise<unknown>,
  ): Promise<Page> {
    const url = `${browser.extensionOrigin}/${path}`;
    const before = new Set(browser.context.pages());
    await click();
    const page = await poll(`${path} to open in a tab`, async () =>
      browser.context.pages().find((opened) => !before.has(opened) && opened.url().startsWith(url)),
    );
    // Firefox sometimes leaves a moz-extension page it opened itself unrendered, as the fixture
    // knows of pages right after a start (a fresh browser's options page did so): load it again.
    if (
      browserName === 'firefox' &&
      !(await ready(page).then(
        () => true,
        () => false,
      ))
    ) {
      const seen = await Promise.race([
        page.evaluate(() => `${document.readyState}, ${document.body?.innerHTML.length ?? 'no'} body characters`),
        new Promise<string>((resolve) => setTimeout(() => resolve('not scriptable within 3 s'), 3_000)),
      ]).catch((error: Error) => `not scriptable: ${error.message.split('\n')[0]}`);
      step(`${path} opened blank (${seen}): load it again`);
      await loadExtensionPage(page, page.url(), () => (document.body?.innerText ?? '').trim() !== '');
    }
    await ready(page);
    return page;
  }

  /** Closes an extension page the extension opened (Firefox reports no closing of one: leave it first). */
  async function closeExtensionPage(page: Page): Promise<void> {
    if (browserName === 'firefox') await page.goto('about:blank', { waitUntil: 'commit' }).catch(() => undefined);
    await page.close();
  }

  describe(`The popup shows each account and its encryption state (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });
    afterEach(() => bed.cleanUp());
    after(() => bed.stop());

    it(
      'After login, the popup shows the user, the device and the same fingerprint the peer sees, ' +
        "and 'Encryption active'",
      story,
      async () => {
        const { userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const device = await peer.waitForDeviceKeys(userId, deviceId);

        const popup = await bed.browser.openPopup();
        const card = popup.getByRole('article', { name: userId });
        await card.getByText('Encryption active').waitFor({ timeout: 10_000 });
        const text = await card.innerText();
        assert.ok(text.includes(deviceId), text);
        const fingerprint = ungroup(await card.locator('.fingerprint').innerText());
        assert.equal(fingerprint, device.keys[`ed25519:${deviceId}`]);
        await popup.close();
      },
    );

    it(
      "A fresh account's card says 'Needs attention' with 'Set up secure backup' at the top, which leads to the " +
        "control that does it; once set up, the card says 'Protected'",
      { timeout: 180_000 },
      async () => {
        const alice = await bed.newUser('alice');
        const client = await bed.givenClientTab();
        const { userId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);

        const popup = bed.track(await bed.browser.openPopup());
        const card = popup.getByRole('article', { name: userId });
        const status = card.getByRole('group', { name: `Status of ${userId}` });
        await status.getByText('Needs attention', { exact: true }).waitFor({ timeout: 20_000 });
        assert.match(await status.innerText(), /lose your encrypted history/);

        // The one action leads to the control that fixes it, and the keyboard is there.
        const keys = card.getByRole('region', { name: 'Encryption keys' });
        const setUp = keys.getByRole('button', { name: 'Set up secure backup' });
        await status.getByRole('link', { name: 'Set up secure backup' }).click();
        await poll('the focus on "Set up secure backup"', async () =>
          (await setUp.evaluate((button) => button === document.activeElement)) ? true : undefined,
        );
        // The card's navigation leads to its sections.
        await card
          .getByRole('navigation', { name: `Sections of ${userId}` })
          .getByRole('link', { name: 'Search' })
          .click();
        const searchHeading = card.getByRole('region', { name: 'Search index' }).getByRole('heading');
        await poll('the focus on the search section', async () =>
          (await searchHeading.evaluate((heading) => heading === document.activeElement)) ? true : undefined,
        );

        await setUp.click();
        await setUpSecureBackup(keys, alice.password);
        await status.getByText('Protected', { exact: true }).waitFor({ timeout: 30_000 });
        assert.equal(await status.getByRole('link').count(), 0, 'nothing left to fix');
      },
    );

    it(
      'A session whose device already has keys from another app: ' +
        'the popup says to log in again, and the client still syncs',
      story,
      async () => {
        const user = await bed.newUser('alice');
        // An E2EE client (the peer) already uploaded keys for this very device.
        const e2ee = await bed.givenPeer(user);
        const client = await bed.givenClientTab();
        await client.startWithToken(bed.synapse.baseUrl, e2ee.userId, e2ee.accessToken, e2ee.deviceId);

        const popup = await bed.browser.openPopup();
        const card = popup.getByRole('article', { name: user.userId });
        await card.getByText(/already has encryption keys from another app/).waitFor({ timeout: 15_000 });
        assert.match(await card.innerText(), /log in again/i);

        // The keys on the server are still the other app's: Kirjava did not overwrite them.
        const keys = await e2ee.queryDeviceKeys(user.userId);
        assert.equal(
          keys[e2ee.deviceId].keys[`ed25519:${e2ee.deviceId}`],
          (await e2ee.client.getCrypto()!.getOwnDeviceKeys()).ed25519,
        );

        // And the client is not stuck: it reads a plain room.
        const other = await bed.givenPeer();
        const roomId = await other.createPlainRoom([user.userId]);
        assert.equal(await client.waitForInvite(), roomId);
        await client.joinRoom(roomId);
        await other.sendText(roomId, 'Plain text still arrives');
        await client.waitForBody(roomId, 'Plain text still arrives');
        await popup.close();
      },
    );

    it(
      'The popup’s “Options” and “Diagnostics” buttons open those pages; before anything is set up, ' +
        '“Open options” under the setup hint opens the options page too',
      story,
      async () => {
        const optionsReady = (page: Page) =>
          page.getByRole('region', { name: 'Homeservers' }).waitFor({ timeout: 15_000 });
        step('open the popup');
        // Not tracked: "Diagnostics" closes it (and Firefox would not report that closing to a later close()).
        const popup = await bed.browser.openPopup();
        await popup.getByRole('heading', { name: 'Kirjava', exact: true }).waitFor({ timeout: 10_000 });
        const options = await opensPage(bed.browser, 'src/options/index.html', optionsReady, () =>
          popup.getByRole('button', { name: 'Options', exact: true }).click(),
        );
        step('close the options page');
        await closeExtensionPage(options);
        step('open the diagnostics page from the popup');
        const diagnostics = await opensPage(
          bed.browser,
          'src/diagnostics/index.html',
          (page) => page.getByRole('heading', { name: 'Kirjava diagnostics' }).waitFor({ timeout: 15_000 }),
          () => popup.getByRole('button', { name: 'Diagnostics', exact: true }).click(),
        );
        // It closed the popup, as a toolbar popup goes once a tab opens.
        const popupUrl = `${bed.browser.extensionOrigin}/src/popup/index.html`;
        await poll('the popup to close itself', async () =>
          (await bed.browser.inExtension(
            async (url) => (await chrome.tabs.query({})).some((tab) => tab.url === url),
            popupUrl,
          ))
            ? undefined
            : true,
        );
        step('close the diagnostics page');
        await closeExtensionPage(diagnostics);
        step('launch a browser without settings');

        // A browser where nothing is set up yet: the popup says what to do first and opens the options.
        const fresh = await launchBrowser({ browser: browserName });
        try {
          const first = await fresh.openPopup();
          await first.getByText('Set your homeserver first').waitFor({ timeout: 10_000 });
          const opened = await opensPage(fresh, 'src/options/index.html', optionsReady, () =>
            first.getByRole('button', { name: 'Open options', exact: true }).click(),
          );
          await opened.getByText('No homeserver yet.').waitFor({ timeout: 10_000 });
          step('close its options page and popup');
          await closeExtensionPage(opened);
          await first.close();
          assert.deepEqual(fresh.pageErrors, [], 'uncaught errors in the fresh browser’s extension pages');
        } finally {
          step('close that browser');
          await fresh.close();
        }
        step('done');
      },
    );

    it(
      'After a login and a secret message, the diagnostics page (linked from the options page) shows the ' +
        'versions, the account by number and the send guard rules, and none of the secrets',
      story,
      async () => {
        const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const device = await peer.waitForDeviceKeys(userId, deviceId);
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const secret = 'The diagnostics must never show this sentence';
        step('send the secret');
        await client.sendText(roomId, secret);
        await assertClientReads(client, roomId, secret, userId);

        step('open the options page');

        const options = await bed.browser.openOptions();
        const href = await options.getByRole('link', { name: 'Diagnostics' }).getAttribute('href');
        assert.equal(href, `${bed.browser.extensionOrigin}/src/diagnostics/index.html`);
        step('close the options page');
        await options.close();
        step('open the diagnostics page');
        // A tab of its own, loaded as the options page is (Firefox sometimes leaves a
        // moz-extension page unloaded after `goto`: the fixture loads it again then).
        const page = await bed.browser.openExtensionPage('src/diagnostics/index.html');
        await page
          .getByRole('heading', { name: 'account 1: active' })
          .waitFor({ timeout: 30_000 })
          .catch(async (error) => assert.fail(`${error}\n${await page.locator('body').innerText()}`));
        const report = await page.getByRole('textbox', { name: 'Report' }).inputValue();
        const text = `${await page.locator('body').innerText()}\n${report}`;

        const { version } = JSON.parse(await readFile(resolve(import.meta.dirname, '../../package.json'), 'utf8'));
        for (const shown of [
          `Kirjava ${version}`,
          'matrix-sdk-crypto-wasm v',
          'vodozemac',
          browserName === 'firefox' ? 'Firefox' : 'Chrome',
          `homeserver ${new URL(bed.homeserverUrl).host}`,
          `site ${bed.site.origin}: allowed yes, host access yes`,
        ]) {
          assert.ok(text.includes(shown), `${shown} missing from\n${text}`);
        }
        assert.match(text, /Send guard session rules: [1-9]\d* block, \d+ allow/);
        const secrets = [userId, userId.slice(1).split(':')[0], deviceId, accessToken, roomId, secret, peer.userId];
        for (const key of Object.values(device.keys)) secrets.push(key);
        for (const hidden of secrets) assert.ok(!text.includes(hidden), `${hidden} shown in\n${text}`);

        step('copy the report');
        await page.getByRole('button', { name: 'Copy report' }).click();
        await page.getByRole('status').waitFor();
        step('close the diagnostics page');
        // The fixture's close: Firefox leaves the page first (it does not report a moz-extension
        // tab closing); Chromium closes it at once (a close during a swap to about:blank hung once).
        await page.close();
        step('done');
      },
    );
  });
}
