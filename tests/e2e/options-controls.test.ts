/**
 * Every control of the options page persists and takes effect, told as user stories: the user
 * changes it as a user would (by its label), reloads the options page and sees the value kept,
 * then sees what it does in a send or in the popup. The wait under "Ask" bounds a send nobody
 * answers; a room's own policy asks for that room until it is removed; the lock's passphrase is
 * changed and removed only with the current one, and after its removal a browser restart
 * needs no unlock. No options or popup page throws an uncaught error.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Locator, Page } from 'playwright-core';
import { poll, sleep } from '../fixtures/net.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import {
  StoryBed,
  assertEncryptedOnServer,
  assertPeerDecrypts,
  givenEncryptedRoom,
  setUpSecureBackup,
  typeNumber,
} from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 240_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  const WAIT_LABEL = 'When asking, wait this many seconds for an answer';
  const ASK_LABEL = 'Ask me when unverified devices are present';

  /** The options page's key sharing group of `userId`, once the page has loaded it. */
  async function sharingGroup(options: Page, userId: string): Promise<Locator> {
    const group = options.getByRole('group', { name: `Key sharing for ${userId}` });
    await group.waitFor({ timeout: 10_000 });
    return group;
  }

  /** The account's key sharing as stored (read in the options page, which shares the worker's storage). */
  async function storedSharing(options: Page, accountId: string) {
    const { sharing } = await options.evaluate(() => chrome.storage.local.get('sharing'));
    return (
      sharing as Record<string, { policy?: string; askTimeoutSeconds?: number; rooms?: Record<string, string> }>
    )?.[accountId];
  }

  /** The client's send as the SDK makes it, with its event id or the Matrix error it got. */
  function trySend(client: PlainClient, roomId: string, body: string) {
    return client.page.evaluate(
      ([roomId, body]) =>
        window.kirjavaTest.sendText(roomId, body).then(
          (eventId: string) => ({ eventId, errcode: undefined, error: undefined }),
          (e: { errcode?: string; message?: string }) => ({
            eventId: undefined,
            errcode: e?.errcode,
            error: String(e?.message ?? e),
          }),
        ),
      [roomId, body] as const,
    );
  }

  /** Everything Kirjava keeps in the browser, read in one of its pages (which shares the worker's storage). */
  async function extensionState(page: Page) {
    return page.evaluate(async () => {
      // No named helpers in here: the test runner's transpiler would wrap them in a `__name` the page lacks.
      const databases = (await indexedDB.databases()).map((db) => db.name ?? '');
      let secrets: string[] = [];
      if (databases.includes('kirjava-keyring')) {
        const db = await new Promise<IDBDatabase>((resolve, reject) => {
          const request = indexedDB.open('kirjava-keyring');
          request.onsuccess = () => resolve(request.result);
          request.onerror = () => reject(request.error);
        });
        secrets = await new Promise<string[]>((resolve, reject) => {
          const request = db.transaction('secrets').objectStore('secrets').getAllKeys();
          request.onsuccess = () => resolve(request.result.map(String));
          request.onerror = () => reject(request.error);
        });
        db.close();
      }
      return {
        local: (await chrome.storage.local.get(null)) as Record<string, any>,
        session: (await chrome.storage.session.get(null)) as Record<string, any>,
        databases,
        secrets,
        rules: JSON.stringify([
          await chrome.declarativeNetRequest.getSessionRules(),
          await chrome.declarativeNetRequest.getDynamicRules(),
        ]),
      };
    });
  }

  describe(`Every options control persists and takes effect (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });

    afterEach(() => bed.cleanUp());

    after(() => bed.stop());

    it(
      '"When asking, wait this many seconds" persists (out-of-range values are bounded) ' +
        'and a send nobody answers gets the Matrix error after that many seconds, not 120',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const accountId = `${bed.homeserverUrl}|${userId}|${deviceId}`;
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const options = bed.track(await bed.browser.openOptions());
        let group = await sharingGroup(options, userId);
        await group.getByRole('combobox', { name: 'Share room keys with' }).selectOption('ask');
        const wait = () => group.getByRole('spinbutton', { name: WAIT_LABEL });
        assert.equal(await wait().inputValue(), '120');

        // Below the minimum: kept at 5 seconds.
        await typeNumber(wait(), '2');
        await poll('the bounded wait to be saved', async () =>
          (await storedSharing(options, accountId))?.askTimeoutSeconds === 5 ? true : undefined,
        );
        await options.reload();
        group = await sharingGroup(options, userId);
        assert.equal(await wait().inputValue(), '5');

        await typeNumber(wait(), '7');
        await poll('the wait to be saved', async () =>
          (await storedSharing(options, accountId))?.askTimeoutSeconds === 7 ? true : undefined,
        );
        await options.reload();
        group = await sharingGroup(options, userId);
        assert.equal(await wait().inputValue(), '7', 'the wait did not persist');
        assert.equal(await group.getByRole('combobox', { name: 'Share room keys with' }).inputValue(), 'ask');

        // The peer's device is unverified: the send waits for an answer nobody gives.
        const started = Date.now();
        const outcome = await trySend(client, roomId, 'Nobody answers within seven seconds');
        const waited = Date.now() - started;
        assert.equal(outcome.errcode, 'M_FORBIDDEN', JSON.stringify(outcome));
        assert.match(outcome.error, /nobody answered/);
        assert.ok(waited >= 6_900 && waited < 30_000, `the send failed after ${waited} ms, not about 7 s`);
        console.log(`# ask timeout 7 s → Matrix error after ${waited} ms`);
        const popup = bed.track(await bed.browser.openPopup());
        await popup.getByRole('article', { name: userId }).waitFor({ timeout: 15_000 });
        assert.equal(await popup.getByRole('region', { name: 'Message waiting for your answer' }).count(), 0);
      },
    );

    it(
      '"Only devices cross-signed by their owner" for the account persists across a reload and keeps the room key ' +
        'from a device its owner never cross-signed (it cannot decrypt); back on "All devices" the next message ' +
        'reaches it. A change the browser refuses to save says so next to the control, which shows the saved choice',
      story,
      async () => {
        const alice = await bed.newUser('alice');
        const { client, userId, deviceId } = await bed.givenLoggedInClient(alice);
        const accountId = `${bed.homeserverUrl}|${userId}|${deviceId}`;
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        // The policy needs the account's own cross-signing identity: secure backup sets it up.
        const popup = bed.track(await bed.browser.openPopup());
        const keys = popup.getByRole('article', { name: userId }).getByRole('region', { name: 'Encryption keys' });
        await keys.getByRole('button', { name: 'Set up secure backup' }).click({ timeout: 20_000 });
        await setUpSecureBackup(keys, alice.password);

        const options = bed.track(await bed.browser.openOptions());
        let group = await sharingGroup(options, userId);
        const policy = () => group.getByRole('combobox', { name: 'Share room keys with' });
        const storedPolicy = async () => (await storedSharing(options, accountId))?.policy ?? 'all';

        // The browser refuses the write (as when its storage is full): the group says so, the
        // field shows the saved choice again, and nothing changed.
        await options.evaluate(() => {
          const full = 'Storage is full (test)';
          // Chromium: the polyfill calls chrome.*; Firefox: its own promise-based browser.*.
          chrome.storage.local.set = (() => {
            throw new Error(full);
          }) as never;
          const native = (globalThis as { browser?: typeof chrome }).browser;
          if (native) native.storage.local.set = (() => Promise.reject(new Error(full))) as never;
        });
        await policy().selectOption('cross-signed');
        await group
          .getByRole('alert')
          .filter({ hasText: 'Your change was not saved: Storage is full (test)' })
          .waitFor({ timeout: 10_000 });
        assert.equal(await policy().inputValue(), 'all', 'the field shows a choice that was not saved');
        assert.equal(await storedPolicy(), 'all');

        await options.reload();
        group = await sharingGroup(options, userId);
        await policy().selectOption('cross-signed');
        await poll('the policy to be saved', async () =>
          (await storedPolicy()) === 'cross-signed' ? true : undefined,
        );
        assert.equal(await group.getByRole('alert').count(), 0);
        await options.reload();
        group = await sharingGroup(options, userId);
        assert.equal(await policy().inputValue(), 'cross-signed', 'the policy did not persist');

        // The peer's device is signed by nobody: the message is sent, its key is kept from the peer.
        const withheld = 'Only for devices their owner cross-signed';
        const withheldId = await client.sendText(roomId, withheld);
        await assertEncryptedOnServer(peer, roomId, withheldId, withheld);
        const event = await poll('the peer to receive the event', async () =>
          peer.client.getRoom(roomId)?.findEventById(withheldId),
        );
        await peer.client.decryptEventIfNeeded(event);
        await sleep(2000); // a late key would heal it: give one the time to arrive
        assert.equal(event.isDecryptionFailure(), true, 'the uncross-signed device decrypted the message');
        assert.notEqual(event.getContent().body, withheld);

        // Back on "All devices" (saved, kept after a reload): the next message reaches the peer.
        await policy().selectOption('all');
        await poll('the policy to be saved', async () => ((await storedPolicy()) === 'all' ? true : undefined));
        await options.reload();
        group = await sharingGroup(options, userId);
        assert.equal(await policy().inputValue(), 'all');
        const shared = 'For every device that is not blacklisted again';
        const sharedId = await client.sendText(roomId, shared);
        await assertPeerDecrypts(peer, roomId, sharedId, shared, userId);
      },
    );

    it(
      'A room policy added in the options page by the room’s #alias ("Ask") persists under the room’s name, makes ' +
        'a send in that room wait for the popup’s "Send anyway" (which names the room); removed, it is gone after ' +
        'a reload and a send to a new device no longer asks',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const bobUser = await bed.newUser('bob');
        const bob = await bed.givenPeer(bobUser);
        const roomId = await givenEncryptedRoom(bob, client, userId, deviceId);
        // The room has a name and an address (#alias), as rooms people talk about do.
        const alias = `#project-${Date.now()}:${userId.split(':')[1]}`;
        await bob.client.setRoomName(roomId, 'Project chat');
        await bob.client.createAlias(alias, roomId);
        await bob.client.sendStateEvent(roomId, 'm.room.canonical_alias' as never, { alias } as never, '');

        const options = bed.track(await bed.browser.openOptions());
        let group = await sharingGroup(options, userId);
        const roomField = () => group.getByRole('textbox', { name: 'Room ID' });
        // Something that is not a room id or address is refused on the page, not in the console.
        await roomField().fill('general');
        await group.getByRole('button', { name: 'Add room policy' }).click();
        const alert = options.getByRole('region', { name: 'Key sharing' }).getByRole('alert');
        await alert.filter({ hasText: 'Enter a room address like #room:example.org' }).waitFor({ timeout: 5_000 });
        // An address the homeserver does not know is refused too.
        await roomField().fill(`#nowhere-${Date.now()}:${userId.split(':')[1]}`);
        await group.getByRole('button', { name: 'Add room policy' }).click();
        await alert.filter({ hasText: 'could not be found on your homeserver' }).waitFor({ timeout: 10_000 });

        // The room's address is enough: the homeserver says which room it is.
        await roomField().fill(alias);
        await group.getByRole('combobox', { name: 'Policy for this room' }).selectOption('ask');
        await group.getByRole('button', { name: 'Add room policy' }).click();
        await group.getByRole('button', { name: `Remove ${roomId}` }).waitFor({ timeout: 10_000 });
        // After a reload the policy is there, under the room's name and address (seen in the client's syncs).
        const listed = () => group.getByRole('listitem').filter({ hasText: roomId });
        await poll(
          'the room policy listed under the room’s name',
          async () => {
            await options.reload();
            group = await sharingGroup(options, userId);
            return (await listed().innerText()).includes(`Project chat (${alias})`) || undefined;
          },
          20_000,
          1000,
        );
        assert.equal(await listed().count(), 1, 'the room policy did not persist');
        assert.match(await listed().innerText(), new RegExp(ASK_LABEL));
        assert.equal(await group.getByRole('combobox', { name: 'Share room keys with' }).inputValue(), 'all');

        // In that room, a send waits for the popup's question; "Send anyway" delivers it.
        const popup = bed.track(await bed.browser.openPopup());
        const card = popup.getByRole('article', { name: userId });
        await card.waitFor({ timeout: 15_000 });
        const question = popup.getByRole('region', { name: 'Message waiting for your answer' });
        const asked = 'Sent after the room’s question';
        const sending = client.sendText(roomId, asked);
        await question.getByText(bob.deviceId).waitFor({ timeout: 20_000 });
        assert.match(await question.innerText(), new RegExp(`A message to Project chat \\(${alias}\\)`));
        await question.getByRole('button', { name: 'Send anyway' }).click();
        const askedId = await sending;
        await assertPeerDecrypts(bob, roomId, askedId, asked, userId);
        await assertEncryptedOnServer(bob, roomId, askedId, asked);

        // Removed: the list says so after a reload.
        await group.getByRole('button', { name: `Remove ${roomId}` }).click();
        await group.getByText('None: every room follows the account’s policy.').waitFor({ timeout: 10_000 });
        await options.reload();
        group = await sharingGroup(options, userId);
        await group.getByText('None: every room follows the account’s policy.').waitFor();
        assert.equal(await group.getByRole('listitem').filter({ hasText: roomId }).count(), 0);

        // A new unverified device of bob's, known to Kirjava: under the account's "all" nobody is asked.
        const bob2 = await bed.givenPeer(bobUser);
        await card
          .getByRole('region', { name: 'Devices' })
          .getByRole('listitem', { name: `${bob.userId} ${bob2.deviceId}` })
          .waitFor({ timeout: 20_000 });
        const plain = 'Sent without a question once the room policy is gone';
        const outcome = await trySend(client, roomId, plain);
        assert.ok(outcome.eventId, `the send failed: ${JSON.stringify(outcome)}`);
        assert.equal(await question.count(), 0, 'the popup still asked');
        await assertPeerDecrypts(bob2, roomId, outcome.eventId, plain, userId);
      },
    );

    it(
      'Lock: changing the passphrase needs the current one (a wrong one is refused and changes nothing), ' +
        'the new one unlocks after a restart and the old one does not; removed, a restart needs no unlock',
      story,
      async () => {
        const first = 'first four unrelated words';
        const second = 'second set of plain words';
        const user = await bed.newUser('alice');
        const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient(user);
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const earlier = 'Read before the restarts';
        await peer.sendText(roomId, earlier);
        await client.waitForBody(roomId, earlier);

        let options = bed.track(await bed.browser.openOptions());
        let lock = options.getByRole('region', { name: 'Lock' });
        await lock.getByText('No passphrase is set.').waitFor();
        await lock.getByLabel('New passphrase', { exact: true }).fill(first);
        await lock.getByLabel('Repeat the new passphrase').fill(first);
        await lock.getByRole('button', { name: 'Set passphrase' }).click();
        await lock.getByRole('status').filter({ hasText: 'Passphrase set' }).waitFor({ timeout: 30_000 });

        // A wrong current passphrase is refused.
        await lock.getByLabel('Current passphrase').fill('not the passphrase');
        await lock.getByLabel('New passphrase', { exact: true }).fill('a third passphrase here');
        await lock.getByLabel('Repeat the new passphrase').fill('a third passphrase here');
        await lock.getByRole('button', { name: 'Change passphrase' }).click();
        await lock.getByRole('alert').filter({ hasText: 'Wrong passphrase' }).waitFor({ timeout: 30_000 });

        // Nothing changed: the first passphrase is still the current one, and changes it.
        await lock.getByLabel('Current passphrase').fill(first);
        await lock.getByLabel('New passphrase', { exact: true }).fill(second);
        await lock.getByLabel('Repeat the new passphrase').fill(second);
        await lock.getByRole('button', { name: 'Change passphrase' }).click();
        await lock.getByRole('status').filter({ hasText: 'Passphrase changed.' }).waitFor({ timeout: 30_000 });
        await options.reload();
        await lock.getByText('A passphrase is set.').waitFor();

        // After a restart the popup refuses the old passphrase and opens with the new one.
        await bed.browser.restart();
        let popup = bed.track(await bed.browser.openPopup());
        const unlock = popup.getByRole('region', { name: 'Kirjava is locked' });
        await unlock.waitFor({ timeout: 15_000 });
        await unlock.getByLabel('Passphrase').fill(first);
        await unlock.getByRole('button', { name: 'Unlock' }).click();
        assert.equal(await unlock.getByRole('alert').innerText(), 'Wrong passphrase');
        await unlock.getByLabel('Passphrase').fill(second);
        await unlock.getByRole('button', { name: 'Unlock' }).click();
        await unlock.waitFor({ state: 'detached', timeout: 30_000 });

        // Removing needs the current passphrase too: the old one is refused.
        options = bed.track(await bed.browser.openOptions());
        lock = options.getByRole('region', { name: 'Lock' });
        await lock.getByText('A passphrase is set.').waitFor();
        await lock.getByLabel('Current passphrase').fill(first);
        await lock.getByRole('button', { name: 'Remove passphrase' }).click();
        await lock.getByRole('alert').filter({ hasText: 'Wrong passphrase' }).waitFor({ timeout: 30_000 });
        await options.reload();
        await lock.getByText('A passphrase is set.').waitFor();
        await lock.getByLabel('Current passphrase').fill(second);
        await lock.getByRole('button', { name: 'Remove passphrase' }).click();
        await lock.getByRole('status').filter({ hasText: 'Passphrase removed' }).waitFor({ timeout: 30_000 });
        await options.reload();
        await lock.getByText('No passphrase is set.').waitFor();
        await lock.getByRole('button', { name: 'Set passphrase' }).waitFor();

        // After a restart nothing asks for a passphrase: the client reads and sends encrypted at once.
        await bed.browser.restart();
        popup = bed.track(await bed.browser.openPopup());
        await popup.getByRole('article', { name: userId }).waitFor({ timeout: 15_000 });
        assert.equal(await popup.getByRole('region', { name: 'Kirjava is locked' }).count(), 0);
        const again = await bed.givenClientTab();
        await again.startWithToken(bed.homeserverUrl, userId, accessToken, deviceId);
        const entry = await again.waitForBody(roomId, earlier, 30_000);
        assert.equal(entry.type, 'm.room.message');
        const text = 'Sent after a restart without a passphrase';
        const eventId = await again.sendText(roomId, text);
        await assertPeerDecrypts(peer, roomId, eventId, text, userId);
        await assertEncryptedOnServer(peer, roomId, eventId, text);
        await popup.reload();
        await popup.getByRole('article', { name: userId }).getByText('Encryption active').waitFor({ timeout: 15_000 });
      },
    );

    it(
      'Forget this account: the popup warns to export or back up first and asks again; then nothing of the ' +
        'account is left (storage, tokens, IndexedDB databases, keyring secrets, send guard rules)',
      story,
      async () => {
        const options = bed.track(await bed.browser.openOptions());
        const initial = new Set((await extensionState(options)).databases);
        const user = await bed.newUser('alice');
        const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient(user);
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        await peer.sendText(roomId, 'Forget me');
        await client.waitForBody(roomId, 'Forget me');
        // An unencrypted room of hers gives the send guard an allow rule for it.
        const plainRoom = await client.createRoom({ encrypted: false, invite: [] });
        await client.sendText(plainRoom, 'in the clear');
        const plainLocalpart = plainRoom.slice(1).split(':')[0];

        const accountId = `${bed.homeserverUrl}|${userId}|${deviceId}`;
        const before = await poll('the account’s search index and guard rule', async () => {
          const state = await extensionState(options);
          const ready =
            state.databases.some((name) => !initial.has(name) && name.startsWith('kirjava-search-')) &&
            state.rules.includes(plainLocalpart);
          return ready ? state : undefined;
        });
        const { storeName } = before.local.accounts[accountId];
        const created = before.databases.filter((name) => !initial.has(name));
        assert.ok(created.includes(`${storeName}::matrix-sdk-crypto`), `databases made: ${created}`);
        assert.ok(before.secrets.includes(`store:${storeName}`) && before.secrets.includes(`search:${accountId}`));
        assert.ok(JSON.stringify(before.session).includes(accessToken));

        const popup = bed.track(await bed.browser.openPopup());
        const card = popup.getByRole('article', { name: userId });
        await card.getByRole('button', { name: 'Forget this account…' }).click();
        const question = card.getByRole('group', { name: `Forget ${userId} on this browser?` });
        assert.match(await question.innerText(), /exported its keys/);
        assert.match(await question.innerText(), /secure backup/);
        await question.getByRole('button', { name: 'Cancel' }).click();
        assert.ok((await extensionState(options)).local.accounts[accountId], 'Cancel forgot the account');
        await card.getByRole('button', { name: 'Forget this account…' }).click();
        await question.getByRole('button', { name: 'Yes, forget this account' }).click();
        await card.waitFor({ state: 'detached', timeout: 30_000 });

        // The card goes at once; the stores follow as the browser deletes them.
        const after = await poll(
          'the account’s databases to be deleted',
          async () => {
            const state = await extensionState(options);
            return created.some((name) => state.databases.includes(name)) ? undefined : state;
          },
          30_000,
        );
        const left = JSON.stringify([after.local, after.session]);
        for (const trace of [accountId, storeName, userId, accessToken]) {
          assert.ok(!left.includes(trace), `extension storage still holds ${trace}: ${left}`);
        }
        assert.deepEqual(
          after.secrets.filter((name) => name.includes(storeName) || name.includes(accountId)),
          [],
          'keyring secrets of the account are left',
        );
        assert.ok(!after.rules.includes(plainLocalpart), 'the send guard still has a rule for the account’s room');
      },
    );

    it(
      'Reset Kirjava in the options page: after a second answer every account, setting, key and rule is gone',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient(await bed.newUser('alice'));
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        await peer.sendText(roomId, 'Reset me');
        await client.waitForBody(roomId, 'Reset me');

        const options = bed.track(await bed.browser.openOptions());
        const reset = options.getByRole('region', { name: 'Reset Kirjava' });
        await reset.getByRole('button', { name: 'Reset Kirjava…' }).click();
        const question = reset.getByRole('group', { name: 'Delete everything Kirjava keeps?' });
        await question.getByRole('button', { name: 'Cancel' }).click();
        assert.equal(Object.keys((await extensionState(options)).local.accounts ?? {}).length > 0, true);
        await reset.getByRole('button', { name: 'Reset Kirjava…' }).click();
        await question.getByRole('button', { name: 'Delete everything' }).click();
        await reset.getByRole('status').filter({ hasText: 'Kirjava was reset' }).waitFor({ timeout: 60_000 });
        const after = await extensionState(options);
        assert.deepEqual(
          after.databases.filter((name) => name.startsWith('kirjava-') && name !== 'kirjava-keyring'),
          [],
          `databases are left: ${after.databases}`,
        );
        assert.deepEqual(after.secrets, [], 'keyring secrets are left');
        assert.equal(after.local.accounts, undefined, JSON.stringify(after.local));
        assert.equal(after.local.settings, undefined, JSON.stringify(after.local));
        assert.equal(after.session.tokens, undefined, JSON.stringify(after.session));
        assert.ok(!after.rules.includes(new URL(bed.site.origin).hostname), `rules are left: ${after.rules}`);
        await options.reload();
        await options.getByText('No homeserver yet.').waitFor({ timeout: 10_000 });
      },
    );
  });
}
