/**
 * Room keys follow the room's membership and history visibility, as complement-crypto's
 * membership stories ask: the plain client (through Kirjava) sends; Element-like peers
 * (matrix-js-sdk with Rust crypto) join, get invited, leave and come back. What a peer
 * cannot read is checked on the ciphertext itself, fetched by another member and handed to
 * the peer's own crypto: so it holds even against a server that ignores the visibility.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { EventType, HistoryVisibility, MatrixEvent } from 'matrix-js-sdk';
import { startFaultProxy, type FaultProxy } from '../fixtures/fault-proxy.ts';
import type { Peer } from '../fixtures/peer.ts';
import { StoryBed, assertEncryptedOnServer, assertPeerDecrypts, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 180_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  /** Passes everything through; a rule with no faults records which requests of Kirjava's match it. */
  let proxy: FaultProxy;

  /** Whether `reader`'s own crypto can decrypt the event as the server stores it (fetched by `fetcher`). */
  async function canDecrypt(reader: Peer, fetcher: Peer, roomId: string, eventId: string): Promise<boolean> {
    const raw = await fetcher.rawEvent(roomId, eventId);
    const event = new MatrixEvent({ ...raw, room_id: roomId });
    await reader.client.decryptEventIfNeeded(event);
    return !event.isDecryptionFailure() && event.getType() === 'm.room.message';
  }

  describe(`Room keys follow membership and history visibility (${browserName})`, () => {
    before(() => bed.start({ homeserver: async (synapse) => (proxy = await startFaultProxy(synapse.baseUrl)) }), {
      timeout: 180_000,
    });
    afterEach(async () => {
      proxy.clear();
      await bed.cleanUp();
    });
    after(() => bed.stop());

    it(
      'Under history visibility "joined", a newcomer cannot read what was sent before it joined, ' +
        'not even what was sent while it was invited; it reads what is sent after it joined',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const bob = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(bob, client, userId, deviceId);
        await bob.client.sendStateEvent(roomId, EventType.RoomHistoryVisibility, {
          history_visibility: HistoryVisibility.Joined,
        });
        const dave = await bed.givenPeer(await bed.newUser('dave'));

        const before = await client.sendText(roomId, 'before dave was invited');
        await bob.client.invite(roomId, dave.userId);
        await bob.waitForMembership(roomId, dave.userId, 'invite');
        await dave.waitForDeviceKeys(dave.userId, dave.deviceId);
        // Kirjava's view of the room must include the invite: its sync reloads the members.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const whileInvited = await client.sendText(roomId, 'while dave is only invited');
        await assertPeerDecrypts(bob, roomId, whileInvited, 'while dave is only invited', userId);
        await dave.joinRoom(roomId);
        await bob.waitForMembership(roomId, dave.userId, 'join');
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const afterJoin = await client.sendText(roomId, 'welcome dave');

        await assertEncryptedOnServer(bob, roomId, afterJoin, 'welcome dave');
        await assertPeerDecrypts(dave, roomId, afterJoin, 'welcome dave', userId);
        assert.equal(await canDecrypt(dave, bob, roomId, whileInvited), false, 'dave read a message from his invite');
        assert.equal(await canDecrypt(dave, bob, roomId, before), false, 'dave read a message from before his invite');
      },
    );

    it(
      'A member who leaves cannot read what is sent while away, and reads what is sent after rejoining',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const bob = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(bob, client, userId, deviceId);
        const carol = await bed.givenPeer(await bed.newUser('carol'));
        await bob.client.invite(roomId, carol.userId);
        await carol.joinRoom(roomId);
        await bob.waitForMembership(roomId, carol.userId, 'join');
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const together = await client.sendText(roomId, 'all three of us');
        await assertPeerDecrypts(carol, roomId, together, 'all three of us', userId);

        await carol.client.leave(roomId);
        await bob.waitForMembership(roomId, carol.userId, 'leave');
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const away = await client.sendText(roomId, 'while carol is away');
        await assertPeerDecrypts(bob, roomId, away, 'while carol is away', userId);
        await bob.client.invite(roomId, carol.userId);
        await carol.joinRoom(roomId);
        await bob.waitForMembership(roomId, carol.userId, 'join');
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const back = await client.sendText(roomId, 'carol is back');

        await assertPeerDecrypts(carol, roomId, back, 'carol is back', userId);
        assert.equal(await canDecrypt(carol, bob, roomId, away), false, 'carol read a message sent while she was away');
      },
    );
    it(
      'A device logged out makes a new session: the next message is under a new session id, whose key the ' +
        'logged-out device is never sent',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const bobUser = await bed.newUser('bob');
        const bob = await bed.givenPeer(bobUser);
        const roomId = await givenEncryptedRoom(bob, client, userId, deviceId);
        const bobsLaptop = await bed.givenPeer(bobUser);
        await bob.waitForDeviceKeys(bob.userId, bobsLaptop.deviceId);
        // Kirjava hears of the new device from its sync's device lists.
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const both = await client.sendText(roomId, "to both of bob's devices");
        await assertPeerDecrypts(bobsLaptop, roomId, both, "to both of bob's devices", userId);
        const firstSession = (await bob.rawEvent(roomId, both)).content.session_id;

        await bobsLaptop.client.logout(true);
        const toLaptop = proxy.fail({
          path: '/sendToDevice/',
          bodyIncludes: bobsLaptop.deviceId,
          fault: { kind: 'server-error' },
          times: 0,
        });
        await new Promise((resolve) => setTimeout(resolve, 2_000));
        const after = await client.sendText(roomId, 'after the laptop logged out');
        await assertPeerDecrypts(bob, roomId, after, 'after the laptop logged out', userId);
        await assertEncryptedOnServer(bob, roomId, after, 'after the laptop logged out');
        const nextSession = (await bob.rawEvent(roomId, after)).content.session_id;
        console.log(`# device logout: session ${firstSession} → ${nextSession}`);
        assert.notEqual(nextSession, firstSession, 'the message after the logout is under the old session');
        assert.deepEqual(proxy.matched(toLaptop), [], 'Kirjava sent a to-device message to the logged-out device');
      },
    );
  });
}
