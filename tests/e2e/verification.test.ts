/**
 * Verification and trust, told as user stories: the user manages trust and verifies devices
 * from Kirjava's popup, against matrix-js-sdk's Rust crypto (the stack Element Web ships) as the other side. The popup
 * is driven by accessible names, as a user would; the peer is driven through its CryptoApi.
 * Set KIRJAVA_SCREENSHOTS=1 to write the popup's states into docs/screenshots/.
 */
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { CryptoEvent } from 'matrix-js-sdk/lib/crypto-api/CryptoEvent.js';
import {
  VerificationPhase,
  type VerificationRequest,
  type Verifier,
} from 'matrix-js-sdk/lib/crypto-api/verification.js';
import type { Locator, Page } from 'playwright-core';
import { poll, sleep } from '../fixtures/net.ts';
import type { Peer } from '../fixtures/peer.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import { StoryBed, givenEncryptedRoom, typeNumber } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';
import type { RegisteredUser } from '../fixtures/synapse.ts';

const story = { timeout: 120_000 };
const SCREENSHOTS = process.env.KIRJAVA_SCREENSHOTS === '1';
const screenshotDir = resolve(import.meta.dirname, '../../docs/screenshots');
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  const newUser = (name: string) => bed.newUser(name);

  const givenPeer = (user: RegisteredUser) => bed.givenPeer(user);

  /** The plain client, logged in through the page with a password: Kirjava's device. */
  async function givenKirjavaDevice(user: RegisteredUser): Promise<{ client: PlainClient; deviceId: string }> {
    const { client, deviceId } = await bed.givenLoggedInClient(user);
    return { client, deviceId };
  }

  /** The peer sets up cross-signing (with the account password) and a key backup, as Element does. */
  async function givenCrossSigning(peer: Peer, user: RegisteredUser): Promise<void> {
    const crypto = peer.client.getCrypto()!;
    await crypto.bootstrapCrossSigning({
      authUploadDeviceSigningKeys: async (makeRequest) => {
        await makeRequest({
          type: 'm.login.password',
          identifier: { type: 'm.id.user', user: user.userId },
          password: user.password,
        });
      },
    });
    await crypto.resetKeyBackup();
    assert.equal((await crypto.getCrossSigningStatus()).privateKeysCachedLocally.masterKey, true);
  }

  /** The popup, as the user opens it; its card for `userId`. */
  async function openPopupCard(userId: string): Promise<{ page: Page; card: Locator }> {
    const page = await bed.browser.openPopup();
    bed.track(page);
    await page.setViewportSize({ width: 380, height: 900 });
    const card = page.getByRole('article', { name: userId });
    await card.waitFor({ timeout: 15_000 });
    return { page, card };
  }

  /** The page, or just one part of it (an account's card): earlier stories' accounts stay in the popup. */
  async function screenshot(target: Page | Locator, name: string): Promise<void> {
    if (!SCREENSHOTS) return;
    await mkdir(screenshotDir, { recursive: true });
    const path = `${screenshotDir}/${name}.png`;
    if ('goto' in target) await target.screenshot({ path, fullPage: true });
    else await target.screenshot({ path });
  }

  /** One device's row in the popup's device list. */
  const deviceRow = (card: Locator, userId: string, deviceId: string) =>
    card.getByRole('region', { name: 'Devices' }).getByRole('listitem', { name: `${userId} ${deviceId}` });

  /** The verification flow shown for a device (or a user, in-room). */
  const flowGroup = (card: Locator, deviceOrUser: string) =>
    card.getByRole('group', {
      name: new RegExp(`^Verification with .*${deviceOrUser.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    });

  /** Waits for the flow's outcome line; on timeout the error shows what the popup showed instead. */
  async function outcome(flow: Locator, text: string, timeout = 20_000): Promise<void> {
    try {
      await flow.getByRole('status').filter({ hasText: text }).waitFor({ timeout });
    } catch (error) {
      const card = flow.page().getByRole('main');
      throw new Error(`The popup did not show "${text}"; it showed:\n${await card.innerText().catch(() => '?')}`, {
        cause: error,
      });
    }
  }

  /** Resolves with the peer's next incoming verification request. */
  function nextIncomingRequest(peer: Peer): Promise<VerificationRequest> {
    return within(
      new Promise((resolve) => peer.client.once(CryptoEvent.VerificationRequestReceived, resolve)),
      'the peer to receive the verification request',
    );
  }

  /**
   * `promise`, or a failure naming `what` after `ms`: a step that never comes fails there,
   * not as the story's overall timeout.
   */
  function within<T>(promise: Promise<T>, what: string, ms = 20_000): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  async function waitForPhase(request: VerificationRequest, phase: VerificationPhase, what: string): Promise<void> {
    await poll(what, () => (request.phase === phase ? true : undefined), 20_000);
  }

  /** The emoji names the popup shows, in order. */
  async function popupEmojiNames(group: Locator): Promise<string[]> {
    const list = group.getByRole('list', { name: 'Emoji to compare' });
    await list.waitFor({ timeout: 20_000 });
    return list.locator('.name').allInnerTexts();
  }

  /** The peer's SAS callbacks once its verifier shows emoji. */
  async function peerSas(verifier: Verifier) {
    return poll('the peer to show emoji', () => verifier.getShowSasCallbacks() ?? undefined, 20_000);
  }

  /** Waits until the peer's device list has Kirjava's device (it asks the server when told of changes). */
  async function peerKnowsDevice(peer: Peer, userId: string, deviceId: string): Promise<void> {
    await poll(
      `the peer to know ${deviceId}`,
      async () => {
        const devices = await peer.client.getCrypto()!.getUserDeviceInfo([userId], true);
        return devices.get(userId)?.has(deviceId) ? true : undefined;
      },
      20_000,
    );
  }

  /**
   * Alice with a Kirjava device and a second device of her own (the peer) that Kirjava's popup
   * lists; with `crossSigning`, the peer has set up cross-signing first.
   */
  async function givenOwnPeerInPopup(options: { crossSigning: boolean }) {
    const alice = await newUser('alice');
    const { deviceId } = await givenKirjavaDevice(alice);
    const peer = await givenPeer(alice);
    if (options.crossSigning) await givenCrossSigning(peer, alice);
    await peerKnowsDevice(peer, alice.userId, deviceId);
    const { page, card } = await openPopupCard(alice.userId);
    const row = deviceRow(card, alice.userId, peer.deviceId);
    await row.waitFor({ timeout: 20_000 });
    return { alice, deviceId, peer, page, card, row };
  }

  /** The peer device's ed25519 key as the server has it. */
  async function peerKey(peer: Peer): Promise<string> {
    const device = await peer.waitForDeviceKeys(peer.userId, peer.deviceId);
    return device.keys[`ed25519:${peer.deviceId}`]!;
  }

  /** A fingerprint in groups of four, as the popup shows it. */
  const groupedFingerprint = (key: string) => key.match(/.{1,4}/g)!.join(' ');

  /** Runs `fn` with the extension's APIs. */
  const workerEval = <T>(fn: () => Promise<T>): Promise<T> => bed.browser.inExtension(fn);

  const badgeText = () => workerEval(() => chrome.action.getBadgeText({}));

  describe(`Verification and trust from the popup (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });

    afterEach(() => bed.cleanUp());

    after(() => bed.stop());

    it(
      'Blacklisting a device in the popup keeps the next room key from it ' +
        '(it cannot decrypt the next message); unblacklisting restores sharing',
      story,
      async () => {
        const alice = await newUser('alice');
        const { client, deviceId } = await givenKirjavaDevice(alice);
        const bob = await givenPeer(await newUser('bob'));
        const roomId = await givenEncryptedRoom(bob, client, alice.userId, deviceId);

        // Before the client ever sent into the room, the popup already lists bob's device.
        const { card } = await openPopupCard(alice.userId);
        const row = deviceRow(card, bob.userId, bob.deviceId);
        await row.getByText('Unverified', { exact: true }).waitFor({ timeout: 15_000 });
        const fingerprint = groupedFingerprint(await peerKey(bob));
        assert.ok((await row.innerText()).includes(fingerprint), `the row shows bob's fingerprint ${fingerprint}`);
        await screenshot(card, 'devices-unverified');
        const before = await client.sendText(roomId, 'before the blacklist');
        assert.equal((await bob.waitForText(roomId, 'before the blacklist')).eventId, before);

        await row.getByRole('button', { name: 'Blacklist' }).click();
        await row.getByText('Blacklisted', { exact: true }).waitFor();
        await screenshot(card, 'devices-blacklisted');

        const hidden = await client.sendText(roomId, 'while blacklisted');
        const event = await poll('the blacklisted peer to receive the event', () =>
          bob.client.getRoom(roomId)?.findEventById(hidden),
        );
        await bob.client.decryptEventIfNeeded(event);
        await sleep(2000); // a late key would heal it: give one the time to arrive
        assert.equal(event.isDecryptionFailure(), true, 'the blacklisted device decrypted the message');
        assert.notEqual(event.getContent().body, 'while blacklisted');

        await row.getByRole('button', { name: 'Unblacklist' }).click();
        await row.getByText('Unverified', { exact: true }).waitFor();
        const again = await client.sendText(roomId, 'after the blacklist');
        const received = await bob.waitForText(roomId, 'after the blacklist');
        assert.equal(received.eventId, again);
        assert.equal(received.decrypted, true);
      },
    );

    it(
      'Self-verification started from the popup: the emoji match on both sides, ' +
        'the peer then sees Kirjava’s device as cross-signing verified, ' +
        'Kirjava holds the cross-signing and backup secrets, and can itself cross-sign a new session',
      story,
      async () => {
        const { alice, deviceId, peer, card, row } = await givenOwnPeerInPopup({ crossSigning: true });

        const incoming = nextIncomingRequest(peer);
        const started = Date.now();
        await row.getByRole('button', { name: 'Start verification' }).click();
        const request = await incoming;
        assert.equal(request.isSelfVerification, true);
        await request.accept();
        const flow = flowGroup(card, peer.deviceId);
        await flow.getByRole('button', { name: 'Verify by emoji' }).click();
        await poll('the peer to see the emoji start', () => request.verifier ?? undefined, 20_000);
        const verifier = request.verifier!;
        const verified = verifier.verify();
        const sas = await peerSas(verifier);

        assert.deepEqual(
          await popupEmojiNames(flow),
          sas.sas.emoji!.map(([, name]) => name),
        );
        await screenshot(card, 'verification-emoji');
        await sas.confirm();
        await flow.getByRole('button', { name: 'They match' }).click();
        await within(verified, 'the peer to finish the verification');
        await outcome(flow, 'Verified');

        const confirmed = Date.now();
        await assertCrossSigned(peer, alice.userId, deviceId);
        await assertSecretsArrive(card);
        console.log(
          `# self-verification: request → both confirmed ${confirmed - started} ms; ` +
            `→ signed and secrets shown ${Date.now() - started} ms`,
        );
        await screenshot(card, 'verification-done');

        // Holding the self-signing key now, Kirjava cross-signs a new session of alice's itself.
        const laptop = await givenPeer(alice);
        const laptopRow = deviceRow(card, alice.userId, laptop.deviceId);
        await laptopRow.getByText('Unverified', { exact: true }).waitFor({ timeout: 20_000 });
        // "Mark verified" first shows the session key to compare; Cancel changes nothing.
        await laptopRow.getByRole('button', { name: 'Mark verified' }).click();
        let compare = laptopRow.getByRole('group', { name: `Compare the session key of ${laptop.deviceId}` });
        assert.equal(
          await compare.getByLabel('Session key to compare').innerText(),
          groupedFingerprint(await peerKey(laptop)),
        );
        await screenshot(card, 'devices-mark-verified');
        await compare.getByRole('button', { name: 'Cancel' }).click();
        await compare.waitFor({ state: 'detached' });
        await laptopRow.getByText('Unverified', { exact: true }).waitFor();
        await laptopRow.getByRole('button', { name: 'Mark verified' }).click();
        compare = laptopRow.getByRole('group', { name: `Compare the session key of ${laptop.deviceId}` });
        await compare.getByRole('button', { name: 'They match' }).click();
        await laptopRow.getByText('Verified', { exact: true }).waitFor();
        await assertCrossSigned(peer, alice.userId, laptop.deviceId);

        // Blacklisting one's own verified device asks first; only "Yes, blacklist it" does it.
        await laptopRow.getByRole('button', { name: 'Blacklist' }).click();
        const question = laptopRow.getByRole('group', { name: `Blacklist your device ${laptop.deviceId}?` });
        assert.match(await question.innerText(), /cannot read your new messages/);
        await question.getByRole('button', { name: 'Cancel' }).click();
        await question.waitFor({ state: 'detached' });
        await laptopRow.getByText('Verified', { exact: true }).waitFor();
        await laptopRow.getByRole('button', { name: 'Blacklist' }).click();
        await question.getByRole('button', { name: 'Yes, blacklist it' }).click();
        await laptopRow.getByText('Blacklisted', { exact: true }).waitFor();
      },
    );

    it(
      'Self-verification started by the peer: the popup counts it on the badge, ' +
        'the user accepts it there, the emoji match, and the result is the same',
      story,
      async () => {
        const { alice, deviceId, peer, card } = await givenOwnPeerInPopup({ crossSigning: true });

        const request = await peer.client.getCrypto()!.requestDeviceVerification(alice.userId, deviceId);
        const flow = flowGroup(card, peer.deviceId);
        await flow.getByRole('button', { name: 'Accept' }).waitFor({ timeout: 20_000 });
        assert.equal(await badgeText(), '1');
        // Headless Firefox has no alert service: a notification it shows is gone from getAll() at
        // once (tried: created, then getAll() in the same call is empty), so only Chromium can say.
        if (browserName === 'chromium') {
          const notifications = await workerEval(() => chrome.notifications.getAll());
          assert.ok(
            Object.keys(notifications).some((id) => id === `kirjava-verification:${request.transactionId}`),
            `an OS notification announces the request (have ${Object.keys(notifications)})`,
          );
        }
        await screenshot(card, 'verification-incoming');
        await flow.getByRole('button', { name: 'Accept' }).click();
        await emojiMatch(flow, request);
        await poll('the badge to clear', async () => ((await badgeText()) === '' ? true : undefined));

        await assertCrossSigned(peer, alice.userId, deviceId);
        await assertSecretsArrive(card);
      },
    );

    it(
      'In-room verification of another user through an encrypted DM, started by the peer (as Element does) ' +
        'and then from the popup: emoji match, both sides end verified; ' +
        'then a “cross-signed only” room keeps the key from bob’s new, unsigned device',
      story,
      async () => {
        const aliceUser = await newUser('alice');
        const bobUser = await newUser('bob');
        const { client, deviceId } = await givenKirjavaDevice(aliceUser);
        // Alice set up cross-signing on another device (people are verified through their identity).
        const alicePhone = await givenPeer(aliceUser);
        await givenCrossSigning(alicePhone, aliceUser);
        const bob = await givenPeer(bobUser);
        await givenCrossSigning(bob, bobUser);
        await bob.waitForDeviceKeys(aliceUser.userId, deviceId);
        const roomId = await bob.createEncryptedRoom([aliceUser.userId]);
        assert.equal(await client.waitForInvite(), roomId);
        await client.joinRoom(roomId);
        await bob.waitForMembership(roomId, aliceUser.userId, 'join');
        await client.sendText(roomId, 'hi bob');
        await bob.waitForText(roomId, 'hi bob');
        const { card } = await openPopupCard(aliceUser.userId);
        // Kirjava's device is verified by its owner first: only then does it vouch for alice's identity.
        await peerKnowsDevice(alicePhone, aliceUser.userId, deviceId);
        await selfVerifyFromPeer(card, alicePhone, aliceUser.userId, deviceId);
        await assertSecretsArrive(card);
        const bobsRow = deviceRow(card, bobUser.userId, bob.deviceId);
        await bobsRow.waitFor({ timeout: 20_000 });
        const flow = flowGroup(card, bobUser.userId);
        const crypto = bob.client.getCrypto()!;

        // Bob starts it in the DM.
        await peerKnowsDevice(bob, aliceUser.userId, deviceId);
        let request = await crypto.requestVerificationDM(aliceUser.userId, roomId);
        await flow.getByRole('button', { name: 'Accept' }).waitFor({ timeout: 20_000 });
        assert.match(await flow.innerText(), /in your direct chat/);
        await flow.getByRole('button', { name: 'Accept' }).click();
        await waitForPhase(request, VerificationPhase.Ready, 'bob to see the request accepted');
        let verifier = await request.startVerification('m.sas.v1');
        let verified = verifier.verify();
        let sas = await peerSas(verifier);
        assert.deepEqual(
          await popupEmojiNames(flow),
          sas.sas.emoji!.map(([, name]) => name),
        );
        await screenshot(card, 'verification-in-room');
        await flow.getByRole('button', { name: 'They match' }).click();
        await sas.confirm();
        await within(verified, 'the peer to finish the verification');
        await outcome(flow, 'Verified');
        await poll(
          'bob to see alice cross-signing verified',
          async () =>
            (await crypto.getUserVerificationStatus(aliceUser.userId)).isCrossSigningVerified() ? true : undefined,
          20_000,
        );
        await bobsRow.getByText('Verified', { exact: true }).waitFor({ timeout: 10_000 });
        await flow.getByRole('button', { name: 'Dismiss' }).click();
        await flow.waitFor({ state: 'detached' });

        // Now from the popup: "Verify user" sends the request into the DM.
        const incoming = nextIncomingRequest(bob);
        await bobsRow.getByRole('button', { name: 'Verify user' }).click();
        request = await incoming;
        assert.equal(request.roomId, roomId);
        await request.accept();
        await flow.getByRole('button', { name: 'Verify by emoji' }).click({ timeout: 20_000 });
        await poll('bob to see the emoji start', () => request.verifier ?? undefined, 20_000);
        verifier = request.verifier!;
        verified = verifier.verify();
        sas = await peerSas(verifier);
        assert.deepEqual(
          await popupEmojiNames(flow),
          sas.sas.emoji!.map(([, name]) => name),
        );
        await sas.confirm();
        await flow.getByRole('button', { name: 'They match' }).click();
        await within(verified, 'the peer to finish the verification');
        await outcome(flow, 'Verified');

        // "Cross-signed devices only" for the DM: bob's signed device reads, his new unsigned one cannot.
        const bobLaptop = await givenPeer(bobUser);
        await deviceRow(card, bobUser.userId, bobLaptop.deviceId)
          .getByText('Unverified', { exact: true })
          .waitFor({ timeout: 20_000 });
        await setRoomPolicy(aliceUser.userId, roomId, 'cross-signed');
        const eventId = await client.sendText(roomId, 'for signed devices');
        assert.equal((await bob.waitForText(roomId, 'for signed devices')).decrypted, true);
        const unsigned = await poll('the unsigned device to receive the event', () =>
          bobLaptop.client.getRoom(roomId)?.findEventById(eventId),
        );
        await bobLaptop.client.decryptEventIfNeeded(unsigned);
        await sleep(1000);
        assert.equal(unsigned.isDecryptionFailure(), true, 'the unsigned device decrypted it');
      },
    );

    it(
      'QR: the popup shows a QR code, the peer scans it (its bytes), ' +
        'the user confirms the peer’s success in the popup, and the verification completes on both sides',
      story,
      async () => {
        const { alice, deviceId, peer, card, row } = await givenOwnPeerInPopup({ crossSigning: true });

        const incoming = nextIncomingRequest(peer);
        await row.getByRole('button', { name: 'Start verification' }).click();
        const request = await incoming;
        await request.accept();
        const flow = flowGroup(card, peer.deviceId);
        await flow.getByRole('button', { name: 'Show QR code' }).click({ timeout: 20_000 });
        const code = flow.getByRole('img', { name: 'QR code for verification' });
        await code.waitFor();
        await screenshot(card, 'verification-qr');
        const bytes = Buffer.from((await code.getAttribute('data-qr-bytes'))!, 'base64');
        assert.equal(
          bytes.subarray(0, 6).toString('latin1'),
          'MATRIX',
          'the QR payload starts with MATRIX (spec "QR code format")',
        );
        // The drawn code has the library's modules: a square of dark and light cells.
        assert.ok((await code.locator('rect[fill="#000"]').count()) > 100);

        const verifier = await request.scanQRCode(new Uint8ClampedArray(bytes));
        const verified = verifier.verify();
        await flow.getByRole('button', { name: 'Yes, it succeeded' }).click({ timeout: 20_000 });
        await within(verified, 'the peer to finish the verification');
        await outcome(flow, 'Verified');
        await assertCrossSigned(peer, alice.userId, deviceId);
      },
    );

    it(
      '“Ask” policy for one room: a send with a new unverified device waits; ' +
        '“Send anyway” delivers it, “Cancel” and the timeout give the client an error',
      story,
      async () => {
        const alice = await newUser('alice');
        const { client, deviceId } = await givenKirjavaDevice(alice);
        const bobUser = await newUser('bob');
        const bob = await givenPeer(bobUser);
        const roomId = await givenEncryptedRoom(bob, client, alice.userId, deviceId);
        await client.sendText(roomId, 'before asking');
        await bob.waitForText(roomId, 'before asking');

        // The user makes this room "Ask" in the options, with a short wait.
        const options = await setRoomPolicy(alice.userId, roomId, 'ask', 6);
        await screenshot(
          options.getByRole('group', { name: `Key sharing for ${alice.userId}` }),
          'options-key-sharing',
        );

        const { page, card } = await openPopupCard(alice.userId);
        const question = page.getByRole('region', { name: 'Message waiting for your answer' });

        // A new device of bob's: the send waits; "Send anyway" delivers it there.
        const bob2 = await givenPeer(bobUser);
        await deviceRow(card, bob.userId, bob2.deviceId).waitFor({ timeout: 20_000 });
        const started = Date.now();
        const sending = client.sendText(roomId, 'sent anyway');
        await question.getByText(bob2.deviceId).waitFor({ timeout: 15_000 });
        assert.equal(await badgeText(), '1');
        if (browserName === 'chromium') {
          // Headless Firefox keeps no notification to list (see the self-verification story).
          const notifications = Object.keys(await workerEval(() => chrome.notifications.getAll()));
          assert.ok(
            notifications.some((id) => id.startsWith('kirjava-send:')),
            `an OS notification asks too (have ${notifications})`,
          );
        }
        await screenshot(question, 'send-ask');
        await question.getByRole('button', { name: 'Send anyway' }).click();
        const eventId = await sending;
        const received = await bob2.waitForText(roomId, 'sent anyway');
        assert.equal(received.eventId, eventId);
        assert.equal(received.decrypted, true);
        await question.waitFor({ state: 'detached' });
        console.log(`# ask → send anyway → delivered: ${Date.now() - started} ms`);

        // The next send to the same devices does not ask again.
        await client.sendText(roomId, 'no question twice');
        await bob2.waitForText(roomId, 'no question twice');

        // Another new device: "Cancel" fails the send with a Matrix error.
        const bob3 = await givenPeer(bobUser);
        await deviceRow(card, bob.userId, bob3.deviceId).waitFor({ timeout: 20_000 });
        // With three devices of bob's the list has a filter: the device id finds the one row.
        const devices = card.getByRole('region', { name: 'Devices' });
        await devices.getByRole('searchbox', { name: 'Filter devices' }).fill(bob3.deviceId);
        await poll('the filter to leave one device', async () =>
          (await devices.getByRole('listitem').count()) === 1 ? true : undefined,
        );
        await deviceRow(card, bob.userId, bob3.deviceId).waitFor();
        await devices.getByRole('searchbox', { name: 'Filter devices' }).fill('');

        const cancelled = trySend(client, roomId, 'cancelled by the user');
        await question.getByText(bob3.deviceId).waitFor({ timeout: 15_000 });
        await question.getByRole('button', { name: 'Cancel' }).click();
        const refused = await cancelled;
        assert.equal(refused.errcode, 'M_FORBIDDEN');
        assert.match(refused.error ?? '', /you cancelled this message/);

        // Nobody answers: after the bounded wait (6 s) the client gets an error, not a hang.
        const waitStarted = Date.now();
        const timedOut = await trySend(client, roomId, 'nobody answers');
        assert.equal(timedOut.errcode, 'M_FORBIDDEN');
        assert.match(timedOut.error ?? '', /nobody answered/);
        const waited = Date.now() - waitStarted;
        assert.ok(waited >= 5_500 && waited < 20_000, `the send failed after ${waited} ms`);
        console.log(`# ask → no answer → error after ${waited} ms`);
        await sleep(1500); // the peers would have seen it by now if anything had been sent
        for (const text of ['cancelled by the user', 'nobody answers']) {
          const seen = bob.client
            .getRoom(roomId)!
            .getLiveTimeline()
            .getEvents()
            .some((e) => e.getContent().body === text);
          assert.equal(seen, false, `"${text}" reached the room`);
        }
      },
    );

    it(
      '“Trust locally”, “Stop trusting”, “Mark verified” and “Unverify” in the popup each persist when the popup ' +
        'is opened again, and under “Ask” decide whether a send to the device waits for the question',
      story,
      async () => {
        const alice = await newUser('alice');
        const { client, deviceId } = await givenKirjavaDevice(alice);
        const bob = await givenPeer(await newUser('bob'));
        const roomId = await givenEncryptedRoom(bob, client, alice.userId, deviceId);
        await setRoomPolicy(alice.userId, roomId, 'ask', 5);

        let popup: Page | undefined;
        /** Closes the popup, opens it again, and waits for bob's device to show `state` there. */
        const reopen = async (state: string): Promise<Locator> => {
          await popup?.close();
          const opened = await openPopupCard(alice.userId);
          popup = opened.page;
          const row = deviceRow(opened.card, bob.userId, bob.deviceId);
          await row.getByText(state, { exact: true }).waitFor({ timeout: 20_000 });
          return row;
        };
        /** A send that goes out at once: bob reads it. */
        const sentWithoutAsking = async (text: string) => {
          const outcome = await trySend(client, roomId, text);
          assert.ok(outcome.eventId, `the send did not go out at once: ${JSON.stringify(outcome)}`);
          const received = await bob.waitForText(roomId, text);
          assert.equal(received.eventId, outcome.eventId);
          assert.equal(received.decrypted, true);
        };
        /** A send that waits for the popup's question about bob's device; nobody answers, the client gets an error. */
        const asked = async (text: string) => {
          const sending = trySend(client, roomId, text);
          await popup!
            .getByRole('region', { name: 'Message waiting for your answer' })
            .getByText(bob.deviceId)
            .waitFor({ timeout: 15_000 });
          const outcome = await sending;
          assert.equal(outcome.errcode, 'M_FORBIDDEN', JSON.stringify(outcome));
          assert.match(outcome.error ?? '', /nobody answered/);
        };

        let row = await reopen('Unverified');
        await asked('asked while bob’s device is unverified');

        await row.getByRole('button', { name: 'Trust locally' }).click();
        await row.getByText('Trusted locally', { exact: true }).waitFor({ timeout: 10_000 });
        row = await reopen('Trusted locally');
        await sentWithoutAsking('sent to a device trusted locally');

        await row.getByRole('button', { name: 'Stop trusting' }).click();
        await row.getByText('Unverified', { exact: true }).waitFor({ timeout: 10_000 });
        row = await reopen('Unverified');
        await asked('asked once the local trust is taken back');

        await row.getByRole('button', { name: 'Mark verified' }).click();
        await row
          .getByRole('group', { name: `Compare the session key of ${bob.deviceId}` })
          .getByRole('button', { name: 'They match' })
          .click();
        await row.getByText('Verified', { exact: true }).waitFor({ timeout: 10_000 });
        row = await reopen('Verified');
        await sentWithoutAsking('sent to a verified device');

        await row.getByRole('button', { name: 'Unverify' }).click();
        await row.getByText('Unverified', { exact: true }).waitFor({ timeout: 10_000 });
        row = await reopen('Unverified');
        await asked('asked once the verification is taken back');
      },
    );

    it(
      '“They don’t match”, a cancel on the peer and a decline in the popup each end the flow cleanly on both sides',
      story,
      async () => {
        const { alice, deviceId, peer, card } = await givenOwnPeerInPopup({ crossSigning: false });
        const crypto = peer.client.getCrypto()!;
        const flow = flowGroup(card, peer.deviceId);

        // 1. The emoji differ: the user says so in the popup.
        let request = await crypto.requestDeviceVerification(alice.userId, deviceId);
        await flow.getByRole('button', { name: 'Accept' }).click({ timeout: 20_000 });
        await waitForPhase(request, VerificationPhase.Ready, 'the peer to see the request accepted');
        let verifier = await request.startVerification('m.sas.v1');
        const mismatched = settledLater(verifier.verify());
        await peerSas(verifier);
        await popupEmojiNames(flow);
        await flow.getByRole('button', { name: "They don't match" }).click();
        await assert.rejects(mismatched);
        await waitForPhase(request, VerificationPhase.Cancelled, 'the peer to see the cancel');
        assert.equal(request.cancellationCode, 'm.mismatched_sas');
        await outcome(flow, 'm.mismatched_sas');
        // The popup says what a mismatch may mean and what to do about it.
        const warning = flow.getByRole('alert', { name: 'The emoji did not match' });
        assert.match(await warning.innerText(), /this may be an attack/);
        assert.match(await warning.innerText(), /log it out/);
        await screenshot(card, 'verification-mismatch');
        await flow.getByRole('button', { name: 'Dismiss' }).click();
        await flow.waitFor({ state: 'detached' });

        // 2. The peer cancels while the emoji are shown.
        request = await crypto.requestDeviceVerification(alice.userId, deviceId);
        await flow.getByRole('button', { name: 'Accept' }).click({ timeout: 20_000 });
        await waitForPhase(request, VerificationPhase.Ready, 'the peer to see the request accepted');
        verifier = await request.startVerification('m.sas.v1');
        const cancelled = settledLater(verifier.verify());
        const sas = await peerSas(verifier);
        await popupEmojiNames(flow);
        sas.cancel();
        await assert.rejects(cancelled);
        await outcome(flow, 'cancelled by the other side');
        assert.equal(await flow.getByRole('button', { name: 'They match' }).count(), 0);
        await flow.getByRole('button', { name: 'Dismiss' }).click();
        await flow.waitFor({ state: 'detached' });

        // 3. The user declines an incoming request.
        request = await crypto.requestDeviceVerification(alice.userId, deviceId);
        await flow.getByRole('button', { name: 'Decline' }).click({ timeout: 20_000 });
        await waitForPhase(request, VerificationPhase.Cancelled, 'the peer to see the decline');
        assert.equal(request.cancellationCode, 'm.user');
        await outcome(flow, 'cancelled');
      },
    );
  });

  /** In the options page, as the user would: a per-room key sharing policy (and the ask wait). */
  async function setRoomPolicy(
    userId: string,
    roomId: string,
    policy: 'all' | 'ask' | 'cross-signed',
    waitSeconds?: number,
  ): Promise<Page> {
    const options = await bed.browser.openOptions();
    bed.track(options);
    const sharing = options.getByRole('group', { name: `Key sharing for ${userId}` });
    await sharing.waitFor({ timeout: 10_000 });
    if (waitSeconds !== undefined) {
      const wait = sharing.getByRole('spinbutton', { name: 'When asking, wait this many seconds for an answer' });
      await typeNumber(wait, String(waitSeconds));
    }
    await sharing.getByRole('textbox', { name: 'Room ID' }).fill(roomId);
    await sharing.getByRole('combobox', { name: 'Policy for this room' }).selectOption(policy);
    await sharing.getByRole('button', { name: 'Add room policy' }).click();
    await sharing.getByRole('button', { name: `Remove ${roomId}` }).waitFor();
    return options;
  }

  /** The peer asks Kirjava's device to verify; the user accepts in the popup and the emoji match. */
  async function selfVerifyFromPeer(card: Locator, peer: Peer, userId: string, deviceId: string): Promise<void> {
    const request = await peer.client.getCrypto()!.requestDeviceVerification(userId, deviceId);
    const flow = flowGroup(card, peer.deviceId);
    await flow.getByRole('button', { name: 'Accept' }).click({ timeout: 20_000 });
    await emojiMatch(flow, request);
  }

  /** After the user accepted the peer's request in the popup: the peer starts SAS, the emoji match on both sides. */
  async function emojiMatch(flow: Locator, request: VerificationRequest): Promise<void> {
    await waitForPhase(request, VerificationPhase.Ready, 'the peer to see the request accepted');
    const verifier = await request.startVerification('m.sas.v1');
    const verified = verifier.verify();
    const sas = await peerSas(verifier);
    assert.deepEqual(
      await popupEmojiNames(flow),
      sas.sas.emoji!.map(([, name]) => name),
    );
    await flow.getByRole('button', { name: 'They match' }).click();
    await sas.confirm();
    await within(verified, 'the peer to finish the verification');
    await outcome(flow, 'Verified');
  }

  /** The client's send, as the Matrix error the SDK raised (or the event id when it went out). */
  function trySend(
    client: PlainClient,
    roomId: string,
    body: string,
  ): Promise<{ eventId?: string; errcode?: string; error?: string }> {
    return client.page.evaluate(
      ([roomId, body]) =>
        window.kirjavaTest.sendText(roomId, body).then(
          (eventId: string) => ({ eventId }),
          (e: { errcode?: string; message?: string }) => ({ errcode: e?.errcode, error: String(e?.message ?? e) }),
        ),
      [roomId, body] as const,
    );
  }

  /** The peer (which holds the self-signing key) signed Kirjava's device during the verification. */
  async function assertCrossSigned(peer: Peer, userId: string, deviceId: string): Promise<void> {
    const status = await poll(
      `the peer to see ${deviceId} cross-signed`,
      async () => {
        const s = await peer.client.getCrypto()!.getDeviceVerificationStatus(userId, deviceId);
        return s?.crossSigningVerified ? s : undefined;
      },
      20_000,
    );
    assert.equal(status.signedByOwner, true);
  }

  /** Kirjava asked its now trusted device for the secrets, and shows that they arrived. */
  async function assertSecretsArrive(card: Locator): Promise<void> {
    const line = card.getByLabel('Cross-signing');
    await line.getByText('Keys held here: master, self-signing, user-signing, backup').waitFor({ timeout: 30_000 });
    await line.getByText('This device is verified by its owner').waitFor({ timeout: 30_000 });
  }

  /**
   * A promise expected to reject, awaited only after some steps: marked as handled now, so
   * a rejection that comes before `assert.rejects` reaches it is not an unhandled rejection
   * (which fails the test run); `assert.rejects` still sees the same rejection.
   */
  function settledLater<T>(promise: Promise<T>): Promise<T> {
    promise.catch(() => undefined);
    return promise;
  }
}
