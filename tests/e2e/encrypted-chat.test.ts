/**
 * Encrypted chat, told as user stories: a plain web Matrix client (no crypto of its own)
 * in Chromium with Kirjava, talking to an E2EE peer (matrix-js-sdk with Rust crypto, as in Element
 * Web) through a real Synapse. One Synapse and one browser serve the whole file; every story
 * registers its own users so stories do not see each other's rooms.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { poll } from '../fixtures/net.ts';
import {
  MEGOLM,
  StoryBed,
  assertClientReads,
  assertEncryptedOnServer,
  assertPeerDecrypts,
  givenEncryptedRoom,
} from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 120_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  const newUser = (name: string) => bed.newUser(name);
  const givenPeer = () => bed.givenPeer();
  const givenClientTab = () => bed.givenClientTab();
  const givenLoggedInClient = () => bed.givenLoggedInClient();

  describe(
    `Encrypted chat: a plain web client talks end-to-end encrypted with an Element-like peer ` + `(${browserName})`,
    () => {
      before(() => bed.start(), { timeout: 180_000 });
      afterEach(() => bed.cleanUp());
      after(() => bed.stop());

      it(
        "The plain client logs in through the page; the peer's /keys/query then " +
          "shows the client's device (same device id) with ed25519 and curve25519 keys",
        story,
        async () => {
          const { userId, deviceId } = await givenLoggedInClient();
          const peer = await givenPeer();

          const device = await peer.waitForDeviceKeys(userId, deviceId, 10_000);

          assert.equal(device.user_id, userId);
          assert.equal(device.device_id, deviceId);
          assert.match(device.keys[`ed25519:${deviceId}`] ?? '', /^[A-Za-z0-9+/]{43}$/);
          assert.match(device.keys[`curve25519:${deviceId}`] ?? '', /^[A-Za-z0-9+/]{43}$/);
          assert.ok(device.algorithms.includes(MEGOLM), `algorithms: ${device.algorithms}`);
          assert.ok(device.signatures[userId]?.[`ed25519:${deviceId}`], 'the device keys are self-signed');
        },
      );

      it(
        'A client already logged in (token obtained outside the browser) ' +
          'works too: its device gets keys and it can read an encrypted message',
        story,
        async () => {
          const user = await newUser('alice');
          const client = await givenClientTab();
          await client.startWithToken(bed.synapse.baseUrl, user.userId, user.accessToken, user.deviceId);
          const peer = await givenPeer();

          const device = await peer.waitForDeviceKeys(user.userId, user.deviceId, 10_000);
          assert.ok(device.keys[`curve25519:${user.deviceId}`], 'the existing device has no curve25519 key');

          const roomId = await givenEncryptedRoom(peer, client, user.userId, user.deviceId);
          const eventId = await peer.sendText(roomId, 'Welcome back, already logged in');
          const entry = await assertClientReads(client, roomId, 'Welcome back, already logged in', peer.userId);
          assert.equal(entry.eventId, eventId);
        },
      );

      it("The peer sends in an encrypted room; the plain client's timeline shows the plaintext", story, async () => {
        const { client, userId, deviceId } = await givenLoggedInClient();
        const peer = await givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const eventId = await peer.sendText(roomId, 'Hello from the E2EE peer');
        await assertEncryptedOnServer(peer, roomId, eventId, 'Hello from the E2EE peer');

        const entry = await assertClientReads(client, roomId, 'Hello from the E2EE peer', peer.userId);
        assert.equal(entry.eventId, eventId);
        assert.equal(entry.msgtype, 'm.text');
        const timeline = await client.timeline(roomId);
        assert.deepEqual(
          timeline.filter((e) => e.type === 'm.room.encrypted').map((e) => e.eventId),
          [],
          'the timeline still shows undecrypted events',
        );
      });

      it(
        'The plain client sends; the server only holds m.room.encrypted, and the peer decrypts the body',
        story,
        async () => {
          const { client, userId, deviceId } = await givenLoggedInClient();
          const peer = await givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

          const eventId = await client.sendText(roomId, 'A secret from the plain client');

          await assertEncryptedOnServer(peer, roomId, eventId, 'A secret from the plain client');
          await assertPeerDecrypts(peer, roomId, eventId, 'A secret from the plain client', userId);
          // The sender sees its own message as text once the server echoes it back.
          const ownEcho = await assertClientReads(client, roomId, 'A secret from the plain client', userId);
          assert.equal(ownEcho.eventId, eventId);
        },
      );

      it(
        "A device the peer logs in after the client's first message reads the " +
          "client's next messages (the client does not keep sharing the old way)",
        story,
        async () => {
          const { client, userId, deviceId } = await givenLoggedInClient();
          const bob = await newUser('bob');
          const peer = await bed.givenPeer(bob);
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
          const first = await client.sendText(roomId, 'Before your new phone');
          await assertPeerDecrypts(peer, roomId, first, 'Before your new phone', userId);
          // Kirjava encrypts the next messages at once while nothing changed: a new device of a
          // member must end that as soon as the client's sync tells of it.
          const second = await client.sendText(roomId, 'Still before your new phone');
          await assertPeerDecrypts(peer, roomId, second, 'Still before your new phone', userId);

          const phone = await bed.givenPeer(bob);
          const readOnPhone = new Set<string>();
          const stop = phone.onText(roomId, (text) => text.decrypted && readOnPhone.add(text.body));
          try {
            // The client learns of the phone from its next /sync (device_lists.changed); until
            // then no client could encrypt for it. Then every next message must reach it.
            let read: string | undefined;
            for (let i = 0; i < 15 && !read; i++) {
              const body = `Hello phone, attempt ${i}`;
              await client.sendText(roomId, body);
              await poll(`the phone to read "${body}"`, () => (readOnPhone.has(body) ? true : undefined), 2_000).then(
                () => (read = body),
                () => undefined,
              );
            }
            assert.ok(read, 'the new device never got a room key from the client');
            const after = await client.sendText(roomId, 'Now you have it');
            await poll(
              'the phone to read the next message too',
              () => (readOnPhone.has('Now you have it') ? true : undefined),
              15_000,
            );
            await assertPeerDecrypts(peer, roomId, after, 'Now you have it', userId);
          } finally {
            stop();
          }
        },
      );

      it(
        "A room the plain client creates with encryption on: the peer joins and decrypts the client's first message",
        story,
        async () => {
          const { client, userId } = await givenLoggedInClient();
          const peer = await givenPeer();

          const roomId = await client.createRoom({ encrypted: true, invite: [peer.userId] });
          await peer.joinRoom(roomId);
          const eventId = await client.sendText(roomId, 'First words in my new encrypted room');

          await assertEncryptedOnServer(peer, roomId, eventId, 'First words in my new encrypted room');
          await assertPeerDecrypts(peer, roomId, eventId, 'First words in my new encrypted room', userId);
        },
      );

      it(
        'Scrolling back (/messages): the early ones of 30 encrypted messages ' +
          'sent while the client was away are decrypted',
        story,
        async () => {
          const user = await newUser('alice');
          const peer = await givenPeer();
          const first = await givenClientTab();
          await first.startWithToken(bed.synapse.baseUrl, user.userId, user.accessToken, user.deviceId);
          const roomId = await givenEncryptedRoom(peer, first, user.userId, user.deviceId);
          await first.close();

          const bodies = Array.from({ length: 30 }, (_, i) => `History message ${i + 1}`);
          const eventIds: string[] = [];
          for (const body of bodies) eventIds.push(await peer.sendText(roomId, body));

          const client = await givenClientTab();
          await client.startWithToken(bed.synapse.baseUrl, user.userId, user.accessToken, user.deviceId, {
            initialSyncLimit: 5,
          });
          const initial = await client.timeline(roomId);
          assert.ok(!initial.some((e) => e.eventId === eventIds[0]), 'the first message came with the initial sync');

          let timeline = initial;
          for (let page = 0; page < 5 && !timeline.some((e) => e.type === 'm.room.create'); page++) {
            timeline = await client.scrollback(roomId, 20);
          }
          const messages = timeline.filter(
            (e) => e.sender === peer.userId && (e.type === 'm.room.message' || e.type === 'm.room.encrypted'),
          );
          assert.deepEqual(
            messages.map((e) => [e.eventId, e.type, e.body]),
            bodies.map((body, i) => [eventIds[i], 'm.room.message', body]),
          );
        },
      );

      it('An unencrypted room is untouched both ways; both rawFetch and rawXhr work', story, async () => {
        const { client, userId } = await givenLoggedInClient();
        const peer = await givenPeer();
        const roomId = await peer.createPlainRoom([userId]);
        assert.equal(await client.waitForInvite(), roomId);
        await client.joinRoom(roomId);
        await peer.waitForMembership(roomId, userId, 'join');

        const fromPeer = await peer.sendText(roomId, 'Plain hello from the peer');
        assert.equal((await client.waitForBody(roomId, 'Plain hello from the peer')).eventId, fromPeer);

        const fromClient = await client.sendText(roomId, 'Plain hello from the client');
        const stored = await peer.rawEvent(roomId, fromClient);
        assert.equal(stored.type, 'm.room.message');
        assert.equal(stored.content.body, 'Plain hello from the client');
        assert.equal((await peer.waitForText(roomId, 'Plain hello from the client')).decrypted, false);

        const room = encodeURIComponent(roomId);
        const transports = [
          ['rawFetch', client.rawFetch, client.rawXhr],
          ['rawXhr', client.rawXhr, client.rawFetch],
        ] as const;
        for (const [name, send, read] of transports) {
          const body = `Plain message sent with ${name}`;
          const put = await send('PUT', `/_matrix/client/v3/rooms/${room}/send/m.room.message/${name}-${Date.now()}`, {
            msgtype: 'm.text',
            body,
          });
          assert.equal(put.status, 200, JSON.stringify(put.json));
          assert.match(put.json.event_id, /^\$/);

          const get = await read(
            'GET',
            `/_matrix/client/v3/rooms/${room}/event/${encodeURIComponent(put.json.event_id)}`,
          );
          assert.equal(get.status, 200, JSON.stringify(get.json));
          assert.equal(get.json.type, 'm.room.message');
          assert.equal(get.json.content.body, body);
          assert.equal((await peer.rawEvent(roomId, put.json.event_id)).content.body, body);
        }
      });

      it(
        'Stopping the worker between and during messages loses nothing: the next message still decrypts and encrypts',
        story,
        async () => {
          const { client, userId, deviceId } = await givenLoggedInClient();
          const peer = await givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

          // Between messages, receiving.
          await bed.browser.stopWorker();
          await peer.sendText(roomId, 'Sent while the worker was asleep');
          await assertClientReads(client, roomId, 'Sent while the worker was asleep', peer.userId);

          // Between messages, sending.
          await bed.browser.stopWorker();
          const afterStop = await client.sendText(roomId, 'Sent right after a worker stop');
          await assertEncryptedOnServer(peer, roomId, afterStop, 'Sent right after a worker stop');
          await assertPeerDecrypts(peer, roomId, afterStop, 'Sent right after a worker stop', userId);

          // During a send.
          const [duringSend] = await Promise.all([
            client.sendText(roomId, 'Sent while the worker stops'),
            bed.browser.stopWorker(),
          ]);
          await assertEncryptedOnServer(peer, roomId, duringSend, 'Sent while the worker stops');
          await assertPeerDecrypts(peer, roomId, duringSend, 'Sent while the worker stops', userId);

          // During a receive.
          await Promise.all([peer.sendText(roomId, 'Arriving while the worker stops'), bed.browser.stopWorker()]);
          await assertClientReads(client, roomId, 'Arriving while the worker stops', peer.userId);

          // And afterwards, both directions still work.
          await peer.sendText(roomId, 'Still readable afterwards');
          await assertClientReads(client, roomId, 'Still readable afterwards', peer.userId);
          const last = await client.sendText(roomId, 'Still encrypted afterwards');
          await assertEncryptedOnServer(peer, roomId, last, 'Still encrypted afterwards');
          await assertPeerDecrypts(peer, roomId, last, 'Still encrypted afterwards', userId);
        },
      );
    },
  );
}
