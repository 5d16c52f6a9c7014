/**
 * Keys that follow the user, told as user stories. "Element" is the user's other
 * session: matrix-js-sdk with its Rust crypto in Node, logged in as the same user as the plain
 * client. The user drives Kirjava's popup as they would: fields and buttons by their names.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { OlmMachine, initAsync } from '@matrix-org/matrix-sdk-crypto-wasm';
import type { GeneratedSecretStorageKey } from 'matrix-js-sdk/lib/crypto-api/index.js';
import type { Page } from 'playwright-core';
import { poll } from '../fixtures/net.ts';
import type { Peer } from '../fixtures/peer.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import { StoryBed } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';
import type { RegisteredUser } from '../fixtures/synapse.ts';

const story = { timeout: 120_000 };
const UNABLE = /^\*\* Unable to decrypt/;
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  const newUser = (name: string) => bed.newUser(name);

  async function givenPeer(
    user: { userId: string; password: string },
    secretStorageKey?: () => Uint8Array,
  ): Promise<Peer> {
    return bed.givenPeer(user, {
      cryptoCallbacks: secretStorageKey && {
        getSecretStorageKey: async ({ keys }: { keys: Record<string, unknown> }) => [
          Object.keys(keys)[0]!,
          secretStorageKey() as Uint8Array<ArrayBuffer>,
        ],
      },
    });
  }

  /**
   * The user's Element session: cross-signing, secret storage under a recovery key (made from
   * `passphrase` when given) and, unless told otherwise, key backup.
   */
  async function givenElementWithRecovery(
    user: RegisteredUser,
    options: { passphrase?: string; backup?: boolean } = {},
  ) {
    let generated: GeneratedSecretStorageKey | undefined;
    const element = await givenPeer(user, () => generated!.privateKey);
    const crypto = element.client.getCrypto()!;
    await crypto.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest({
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: user.userId },
          password: user.password,
        });
      },
    });
    await crypto.bootstrapSecretStorage({
      createSecretStorageKey: async () =>
        (generated = await crypto.createRecoveryKeyFromPassphrase(options.passphrase)),
      setupNewSecretStorage: true,
      setupNewKeyBackup: options.backup ?? true,
    });
    return { element, recoveryKey: generated!.encodedPrivateKey!, secretStorageKey: generated!.privateKey };
  }

  const givenClientTab = () => bed.givenClientTab();

  /** Kirjava's popup, scrolled to the account's "Encryption keys" section. */
  async function openKeysPanel(userId: string) {
    const popup = await bed.browser.openPopup();
    bed.track(popup);
    const panel = popup.getByRole('article', { name: userId }).getByRole('region', { name: 'Encryption keys' });
    await panel.waitFor({ timeout: 15_000 });
    return { popup, panel };
  }

  /** Presses `button` and returns what the panel then says: its status line, or its alert. */
  async function press(panel: ReturnType<Page['getByRole']>, button: string, timeoutMs = 60_000) {
    await panel.getByRole('button', { name: button, exact: true }).click();
    const status = panel.getByRole('status').filter({ hasNotText: /Working|\d+ of \d+ keys (imported|restored)$/ });
    const outcome = panel.getByRole('alert').or(status);
    await outcome.first().waitFor({ timeout: timeoutMs });
    if (await panel.getByRole('alert').count()) return { alert: await panel.getByRole('alert').innerText() };
    return { status: await status.innerText() };
  }

  /** The number of sessions the server's current key backup holds for the room. */
  async function backedUpSessions(accessToken: string, roomId: string): Promise<string[]> {
    const headers = { Authorization: `Bearer ${accessToken}` };
    const version = await (
      await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/room_keys/version`, { headers })
    ).json();
    const keys = await (
      await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/room_keys/keys?version=${version.version}`, { headers })
    ).json();
    return Object.keys(keys.rooms?.[roomId]?.sessions ?? {});
  }

  async function waitForBackup(accessToken: string, roomId: string, sessionId: string) {
    await poll(
      `session ${sessionId} in the key backup`,
      async () => ((await backedUpSessions(accessToken, roomId)).includes(sessionId) ? true : undefined),
      30_000,
      500,
    );
  }

  /**
   * Resolves once the client has been shown the event as an "Unable to decrypt" notice: it
   * shows it now, or shows an edit of it (a heal faster than this poll).
   */
  async function waitForNotice(client: PlainClient, roomId: string, eventId: string) {
    return poll(
      `"Unable to decrypt" for ${eventId}`,
      async () => {
        const entry = (await client.timeline(roomId)).find((e) => e.eventId === eventId);
        if (entry && !UNABLE.test(entry.originalBody ?? entry.body ?? ''))
          throw new Error(`shown as ${JSON.stringify(entry)}`);
        return entry;
      },
      15_000,
    );
  }

  /** The client shows `body` for `eventId` (healed in place, or decrypted outright). */
  async function assertReadable(
    client: PlainClient,
    roomId: string,
    eventId: string,
    body: string,
    timeoutMs = 20_000,
  ) {
    const entry = await poll(
      `"${body}" readable in the client`,
      async () => {
        const found = (await client.timeline(roomId)).find((e) => e.eventId === eventId);
        return found?.body === body ? found : undefined;
      },
      timeoutMs,
    );
    assert.equal(entry.type, 'm.room.message');
    return entry;
  }

  async function isCrossSigned(element: Peer, userId: string, deviceId: string): Promise<boolean> {
    const status = await element.client.getCrypto()!.getDeviceVerificationStatus(userId, deviceId);
    return status?.crossSigningVerified ?? false;
  }

  /** A key file as Element writes one: the SDK's JSON export, encrypted with the passphrase. */
  async function elementKeyFile(element: Peer, passphrase: string): Promise<string> {
    const json = await element.client.getCrypto()!.exportRoomKeysAsJson();
    return OlmMachine.encryptExportedRoomKeys(json, passphrase, 500_000);
  }

  describe(`Kirjava keys: recovery, key backup, key files and late keys (${browserName})`, () => {
    before(
      async () => {
        await bed.start();
        await initAsync();
      },
      { timeout: 180_000 },
    );

    afterEach(() => bed.cleanUp());

    after(() => bed.stop());

    it(
      '1. With the recovery key, history from before Kirjava existed ' +
        "decrypts in place and Kirjava's device is cross-signed",
      story,
      async () => {
        const alice = await newUser('alice');
        const { element, recoveryKey } = await givenElementWithRecovery(alice);
        const roomId = await element.createEncryptedRoom([]);
        const before = [
          await element.sendText(roomId, 'Written before Kirjava existed'),
          await element.sendText(roomId, 'Also before Kirjava'),
        ];
        const sessionId = (await element.rawEvent(roomId, before[0]!)).content.session_id;
        await waitForBackup(element.accessToken, roomId, sessionId);

        const client = await givenClientTab();
        const { deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        await waitForNotice(client, roomId, before[0]!);

        const { panel } = await openKeysPanel(alice.userId);
        await panel.getByLabel('Recovery key or passphrase').fill(recoveryKey);
        const started = Date.now();
        const outcome = await press(panel, 'Recover');
        const recoveryMs = Date.now() - started;
        assert.deepEqual(outcome, {
          status: 'This device is now verified by your other devices (cross-signed). 1 of 1 keys restored from backup.',
        });
        await panel.getByText(/^Key backup: on \(version \d+\)/).waitFor();

        // The open client heals without a reload: the notice is replaced by the plaintext.
        const healStarted = Date.now();
        const healed = await assertReadable(client, roomId, before[0]!, 'Written before Kirjava existed');
        console.log(
          `  recovery took ${recoveryMs} ms; the open timeline healed ${Date.now() - healStarted} ms after it`,
        );
        assert.match(healed.originalBody ?? '', UNABLE);
        await assertReadable(client, roomId, before[1]!, 'Also before Kirjava');
        await poll(
          "Element to see Kirjava's device cross-signed",
          async () => (await isCrossSigned(element, alice.userId, deviceId)) || undefined,
          20_000,
        );
      },
    );

    it(
      '2. The secret-storage passphrase works too; a wrong one is refused with a clear message and changes nothing',
      story,
      async () => {
        const alice = await newUser('alice');
        const { element } = await givenElementWithRecovery(alice, { passphrase: 'correct horse battery staple' });
        const roomId = await element.createEncryptedRoom([]);
        const old = await element.sendText(roomId, 'Only the passphrase opens this');
        await waitForBackup(element.accessToken, roomId, (await element.rawEvent(roomId, old)).content.session_id);

        const client = await givenClientTab();
        const { deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        await waitForNotice(client, roomId, old);
        const { panel } = await openKeysPanel(alice.userId);

        await panel.getByLabel('Recovery key or passphrase').fill('incorrect horse battery staple');
        assert.deepEqual(await press(panel, 'Recover'), {
          alert: 'Wrong recovery key or passphrase for this account: check it and try again (nothing was changed)',
        });
        await panel.getByText('Key backup: off until you recover').waitFor();
        assert.equal(await isCrossSigned(element, alice.userId, deviceId), false);
        assert.match((await client.timeline(roomId)).find((e) => e.eventId === old)?.body ?? '', UNABLE);

        await panel.getByLabel('Recovery key or passphrase').fill('correct horse battery staple');
        const outcome = await press(panel, 'Recover');
        assert.match(outcome.status ?? String(outcome.alert), /cross-signed\)\. 1 of 1 keys restored from backup\.$/);
        await assertReadable(client, roomId, old, 'Only the passphrase opens this');
        await poll(
          "Kirjava's device cross-signed",
          async () => (await isCrossSigned(element, alice.userId, deviceId)) || undefined,
          20_000,
        );
      },
    );

    it(
      '3. A key file exported from Element imports with progress; a wrong passphrase and a cut file fail cleanly',
      story,
      async () => {
        const alice = await newUser('alice');
        const element = await givenPeer(alice);
        const roomId = await element.createEncryptedRoom([]);
        const history = [
          await element.sendText(roomId, 'From the key file, one'),
          await element.sendText(roomId, 'From the key file, two'),
        ];
        const file = await elementKeyFile(element, 'file passphrase');

        const client = await givenClientTab();
        await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        await waitForNotice(client, roomId, history[0]!);
        const { panel } = await openKeysPanel(alice.userId);
        const choose = (text: string) =>
          panel
            .getByLabel('Key file')
            .setInputFiles({ name: 'element-keys.txt', mimeType: 'text/plain', buffer: Buffer.from(text) });

        await choose(file);
        await panel.getByLabel('File passphrase').fill('not the file passphrase');
        assert.deepEqual(await press(panel, 'Import keys'), {
          alert: 'Wrong passphrase for this key file (or the file was altered): nothing was imported',
        });
        await choose(file.slice(0, Math.floor(file.length * 0.6)));
        await panel.getByLabel('File passphrase').fill('file passphrase');
        assert.deepEqual(await press(panel, 'Import keys'), {
          alert: 'This key file is incomplete (cut short): copy or download it again',
        });
        assert.match((await client.timeline(roomId)).find((e) => e.eventId === history[0])?.body ?? '', UNABLE);

        await choose(file);
        await panel.getByLabel('File passphrase').fill('file passphrase');
        const clicked = panel.getByRole('button', { name: 'Import keys' }).click();
        await panel.getByRole('progressbar', { name: 'Key progress' }).waitFor({ timeout: 10_000 });
        await clicked;
        const status = panel.getByRole('status').filter({ hasText: /keys imported$/ });
        await status.waitFor({ timeout: 30_000 });
        assert.equal(await status.innerText(), '1 of 1 keys imported');

        const healed = await assertReadable(client, roomId, history[0]!, 'From the key file, one');
        assert.match(healed.originalBody ?? '', UNABLE);
        await assertReadable(client, roomId, history[1]!, 'From the key file, two');
      },
    );

    it(
      "4. Kirjava's exported key file imports into a fresh Element session, which then reads Kirjava's messages",
      story,
      async () => {
        const alice = await newUser('alice');
        const bob = await newUser('bob');
        const bobPeer = await givenPeer(bob);
        const client = await givenClientTab();
        const { userId, deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        await bobPeer.waitForDeviceKeys(userId, deviceId);
        const roomId = await bobPeer.createEncryptedRoom([userId]);
        assert.equal(await client.waitForInvite(), roomId);
        await client.joinRoom(roomId);
        await bobPeer.waitForMembership(roomId, userId, 'join');
        const sent = await client.sendText(roomId, 'Kirjava wrote this');
        await bobPeer.waitForText(roomId, 'Kirjava wrote this');

        const { popup, panel } = await openKeysPanel(alice.userId);
        // A weak passphrase is refused with the rule, and so are two that differ.
        const exportPassphrase = panel.getByLabel('Export passphrase', { exact: true });
        const repeat = panel.getByLabel('Repeat the export passphrase');
        await exportPassphrase.fill('short');
        await repeat.fill('short');
        assert.match((await press(panel, 'Export keys')).alert ?? '', /too short: use at least 12 characters/);
        await exportPassphrase.fill('export passphrase');
        await repeat.fill('export passphrase typo');
        assert.match((await press(panel, 'Export keys')).alert ?? '', /two passphrases differ/);
        await repeat.fill('export passphrase');
        const saved = await bed.browser.download(popup, async () =>
          assert.deepEqual(await press(panel, 'Export keys'), { status: '1 key exported to kirjava-keys.txt' }),
        );
        assert.equal(saved.name, 'kirjava-keys.txt');
        const file = saved.text;
        assert.match(file, /^-----BEGIN MEGOLM SESSION DATA-----\n[\s\S]+\n-----END MEGOLM SESSION DATA-----\n$/);

        const freshElement = await givenPeer(alice);
        await freshElement.client
          .getCrypto()!
          .importRoomKeysAsJson(OlmMachine.decryptExportedRoomKeys(file, 'export passphrase'));
        const received = await freshElement.waitForText(roomId, 'Kirjava wrote this', 20_000);
        assert.equal(received.eventId, sent);
        assert.equal(received.decrypted, true);
      },
    );

    it(
      '5. A message first shown as undecryptable becomes readable in the open client, ' +
        'without a reload, once Element forwards its key',
      story,
      async () => {
        const alice = await newUser('alice');
        const { element, recoveryKey } = await givenElementWithRecovery(alice, { backup: false });
        // Element shares room keys only with devices it has verified.
        element.client.getCrypto()!.globalBlacklistUnverifiedDevices = true;
        const roomId = await element.createEncryptedRoom([]);
        const first = await givenClientTab();
        const session = await first.login(bed.synapse.baseUrl, alice.userId, alice.password);
        await element.waitForDeviceKeys(alice.userId, session.deviceId);
        await first.close();

        // While Kirjava's device is not yet verified, Element withholds the key of this message.
        const withheld = await element.sendText(roomId, 'Withheld until this device was verified');
        // The user recovers in the popup (there is no key backup): the device is cross-signed.
        const { panel } = await openKeysPanel(alice.userId);
        await panel.getByLabel('Recovery key or passphrase').fill(recoveryKey);
        assert.equal(
          (await press(panel, 'Recover')).status,
          'This device is now verified by your other devices (cross-signed).',
        );
        await poll(
          "Element to see Kirjava's device verified",
          async () => (await isCrossSigned(element, alice.userId, session.deviceId)) || undefined,
          20_000,
        );

        // The client shows the message as undecryptable; Kirjava asks the user's other devices for
        // the key, Element forwards it to the now verified device, and the open timeline heals.
        const client = await givenClientTab();
        await client.startWithToken(bed.synapse.baseUrl, alice.userId, session.accessToken, session.deviceId);
        await waitForNotice(client, roomId, withheld);
        const shownAt = Date.now();
        const healed = await assertReadable(client, roomId, withheld, 'Withheld until this device was verified');
        console.log(`  healed ${Date.now() - shownAt} ms after the notice was shown`);
        assert.match(healed.originalBody ?? '', UNABLE);
      },
    );

    it(
      '6. Keys Kirjava creates go to the key backup: a fresh Element session restores them and reads what Kirjava sent',
      story,
      async () => {
        const alice = await newUser('alice');
        const { element, recoveryKey, secretStorageKey } = await givenElementWithRecovery(alice);
        const roomId = await element.createEncryptedRoom([]);
        const client = await givenClientTab();
        const { userId, deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        const { panel } = await openKeysPanel(alice.userId);
        await panel.getByLabel('Recovery key or passphrase').fill(recoveryKey);
        assert.match((await press(panel, 'Recover')).status ?? '', /cross-signed/);
        await poll(
          'the client to see the room',
          async () => (await client.timeline(roomId).catch(() => undefined)) && true,
        );

        await element.waitForDeviceKeys(userId, deviceId);
        const sent = await client.sendText(roomId, 'Backed up by Kirjava');
        await waitForBackup(element.accessToken, roomId, (await element.rawEvent(roomId, sent)).content.session_id);
        await element.stop();

        const freshElement = await givenPeer(alice, () => secretStorageKey);
        const crypto = freshElement.client.getCrypto()!;
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        await crypto.checkKeyBackupAndEnable();
        const restored = await crypto.restoreKeyBackup();
        assert.ok(restored.imported >= 1, `restored ${JSON.stringify(restored)}`);
        const received = await freshElement.waitForText(roomId, 'Backed up by Kirjava', 20_000);
        assert.equal(received.eventId, sent);
        assert.equal(received.decrypted, true);
      },
    );

    it(
      '7. Logging out with key backup on: Kirjava backs up its room keys first, ' +
        'then deletes the store; Element restores what Kirjava sent last',
      story,
      async () => {
        const alice = await newUser('alice');
        const { element, recoveryKey, secretStorageKey } = await givenElementWithRecovery(alice);
        const roomId = await element.createEncryptedRoom([]);
        const client = await givenClientTab();
        const { userId, deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
        const { popup, panel } = await openKeysPanel(alice.userId);
        await panel.getByLabel('Recovery key or passphrase').fill(recoveryKey);
        assert.match((await press(panel, 'Recover')).status ?? '', /cross-signed/);
        await popup.close();
        await poll(
          'the client to see the room',
          async () => (await client.timeline(roomId).catch(() => undefined)) && true,
        );
        await element.waitForDeviceKeys(userId, deviceId);

        // Sent and logged out at once: no sync in between that would have backed the key up.
        const sent = await client.sendText(roomId, 'Sent right before logging out');
        const logout = await client.rawFetch('POST', '/_matrix/client/v3/logout', {});
        assert.equal(logout.status, 200);
        const accountId = `${bed.synapse.baseUrl}|${userId}|${deviceId}`;
        await poll(
          'the account to be deleted, not kept',
          async () => {
            const { accounts } = await bed.browser.inExtension(() => chrome.storage.local.get('accounts'));
            return Object.keys((accounts ?? {}) as object).some((id) => id.startsWith(accountId)) ? undefined : true;
          },
          30_000,
        );
        await element.stop();

        const freshElement = await givenPeer(alice, () => secretStorageKey);
        const crypto = freshElement.client.getCrypto()!;
        await crypto.loadSessionBackupPrivateKeyFromSecretStorage();
        await crypto.checkKeyBackupAndEnable();
        const restored = await crypto.restoreKeyBackup();
        assert.ok(restored.imported >= 1, `restored ${JSON.stringify(restored)}`);
        const received = await freshElement.waitForText(roomId, 'Sent right before logging out', 20_000);
        assert.equal(received.eventId, sent);
        assert.equal(received.decrypted, true);
      },
    );

    it('8. History loaded again comes from the decrypted-event cache, not a second decryption', story, async () => {
      const alice = await newUser('alice');
      const bob = await givenPeer(await newUser('bob'));
      const client = await givenClientTab();
      const { userId, deviceId } = await client.login(bed.synapse.baseUrl, alice.userId, alice.password);
      await bob.waitForDeviceKeys(userId, deviceId);
      const roomId = await bob.createEncryptedRoom([userId]);
      assert.equal(await client.waitForInvite(), roomId);
      await client.joinRoom(roomId);
      await bob.waitForMembership(roomId, userId, 'join');
      const bodies = ['Cached one', 'Cached two', 'Cached three'];
      for (const body of bodies) await bob.sendText(roomId, body);
      for (const body of bodies) await client.waitForBody(roomId, body);

      const messages = async () => {
        const answer = await client.rawFetch(
          'GET',
          `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=20`,
        );
        assert.equal(answer.status, 200);
        return (answer.json.chunk as any[]).filter((e) => bodies.includes(e.content?.body)).reverse();
      };
      const again = await poll('the history to come from the cache', async () => {
        const events = await messages();
        return events.length === 3 && events.every((e) => e.unsigned['io.kirjava.encryption'].cached === true)
          ? events
          : undefined;
      });
      assert.deepEqual(
        again.map((e) => [e.type, e.sender, e.content.body]),
        bodies.map((body) => ['m.room.message', bob.userId, body]),
      );
    });
  });
}
