/**
 * A hostile or broken homeserver, told as user stories: a proxy in front of Synapse rewrites
 * `/sync` responses. Malformed bodies and junk events never crash Kirjava's worker and never
 * cost a well-formed message; a ciphertext replayed under a new event id, or re-sent under
 * another sender, reaches the client as a warning, not as a genuine message.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { startSyncProxy, type SyncProxy } from '../fixtures/sync-proxy.ts';
import { StoryBed, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 180_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  let proxy: SyncProxy;

  type Json = Record<string, any>;

  /** The plain client (through the proxy) and the peer (straight to Synapse) in an encrypted room. */
  async function givenProxiedRoom() {
    const { client, ...session } = await bed.givenLoggedInClient();
    const peer = await bed.givenPeer();
    const roomId = await givenEncryptedRoom(peer, client, session.userId, session.deviceId);
    return { client, peer, session, roomId };
  }

  /**
   * Adds junk to a sync body, leaving its real content in place. (The fast-check properties
   * in tests/unit/sync-robustness.test.ts throw far worse at the processors; here the junk
   * must also leave the test client's SDK standing.)
   */
  function withJunk(sync: Json, roomId: string, peerId: string, huge: boolean): Json {
    const junkEvents = [
      {
        type: 'm.room.encrypted',
        event_id: '$junk-ciphertext-number',
        sender: peerId,
        origin_server_ts: 1,
        content: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 12345, session_id: null },
      },
      {
        type: 'm.room.encrypted',
        event_id: '$junk-content-string',
        sender: peerId,
        origin_server_ts: 2,
        content: 'not an object',
      },
      {
        type: 'm.room.encrypted',
        event_id: '$junk/odd..%00\u202e',
        sender: '@\u0000:x',
        origin_server_ts: 3,
        content: {
          algorithm: 'm.megolm.v1.aes-sha2',
          ciphertext: huge ? 'A'.repeat(2_000_000) : 'AAAA',
          session_id: 'x',
          sender_key: 'y',
          device_id: 'z',
        },
      },
      {
        type: 'm.room.encrypted',
        event_id: '$junk-unsigned-forged',
        sender: peerId,
        origin_server_ts: 4,
        content: {},
        unsigned: { 'io.kirjava.encryption': { decrypted: true } },
      },
    ];
    sync.rooms ??= {};
    sync.rooms.join ??= {};
    const room = (sync.rooms.join[roomId] ??= {});
    room.timeline ??= { events: [] };
    room.timeline.events = [...junkEvents, ...(room.timeline.events ?? [])];
    sync.rooms.join['!odd room/..%2F:x'] = {
      timeline: {
        events: [
          { type: 'm.room.encrypted', event_id: '$junk-odd-room', sender: peerId, origin_server_ts: 5, content: {} },
        ],
      },
    };
    // Junk in to-device events only of the kind Kirjava takes out (encrypted ones): the test
    // client's own SDK stops syncing on a null to-device event, which is not Kirjava's doing.
    sync.to_device = {
      events: [
        { type: 'm.room.encrypted', sender: 5, content: 'x' },
        { type: 'm.room.encrypted' },
        ...(sync.to_device?.events ?? []),
      ],
    };
    sync.device_lists = { changed: [1, null, 'not-a-user', ...(sync.device_lists?.changed ?? [])], left: 'nope' };
    sync.device_unused_fallback_key_types = 'signed_curve25519';
    return sync;
  }

  describe(`A hostile homeserver: malformed syncs, replays and forged senders (${browserName})`, () => {
    before(() => bed.start({ homeserver: async (synapse) => (proxy = await startSyncProxy(synapse.baseUrl)) }), {
      timeout: 180_000,
    });

    afterEach(async () => {
      proxy.rewrite = undefined;
      await bed.cleanUp();
    });

    after(() => bed.stop());

    it(
      'Malformed /sync bodies and junk events do not crash the worker, ' +
        'and every well-formed message still arrives decrypted',
      story,
      async () => {
        const { client, peer, session, roomId } = await givenProxiedRoom();
        let n = 0;
        proxy.rewrite = (body) => {
          n += 1;
          // Every third sync is cut off mid-JSON (the client retries it), the others carry junk.
          if (n % 3 === 1) return body.slice(0, Math.floor(body.length / 2));
          return JSON.stringify(withJunk(JSON.parse(body), roomId, peer.userId, n === 2));
        };
        const bodies = Array.from({ length: 5 }, (_, i) => `Well-formed message ${i + 1} amid junk`);
        for (const body of bodies) {
          await peer.sendText(roomId, body);
          const entry = await client.waitForBody(roomId, body, 30_000);
          assert.equal(entry.type, 'm.room.message');
        }
        assert.ok(proxy.rewritten >= 5, `only ${proxy.rewritten} syncs were rewritten`);
        const timeline = await client.timeline(roomId);
        // Junk ciphertext (even with a forged "decrypted" report) reads as a notice, never as a message.
        const junk = timeline.find((e) => e.eventId === '$junk-unsigned-forged');
        assert.equal(junk?.msgtype, 'm.notice', JSON.stringify(junk));
        assert.match(junk!.body ?? '', /^\*\* Unable to decrypt/);

        // The worker is alive and well: the client's next message goes out encrypted.
        proxy.rewrite = undefined;
        const eventId = await client.sendText(roomId, 'Still encrypting after the junk');
        const received = await peer.waitForText(roomId, 'Still encrypting after the junk');
        assert.equal(received.eventId, eventId);
        assert.equal(received.decrypted, true);
        assert.equal((await peer.rawEvent(roomId, eventId)).type, 'm.room.encrypted');
        assert.ok(session.userId);
      },
    );

    it(
      'A ciphertext replayed under a new event id, and one re-sent under another sender, show as warnings',
      story,
      async () => {
        const { client, peer, roomId } = await givenProxiedRoom();
        let captured: Json | undefined;
        let injected = false;
        proxy.rewrite = (body) => {
          const sync = JSON.parse(body) as Json;
          const events: Json[] = sync.rooms?.join?.[roomId]?.timeline?.events ?? [];
          if (captured && !injected && events.length > 0) {
            injected = true;
            events.push(
              { ...captured, event_id: '$replayed-under-a-new-id' },
              { ...captured, event_id: '$resent-as-carol', sender: '@carol:localhost' },
            );
            return JSON.stringify(sync);
          }
          captured ??= events.find((e) => e.type === 'm.room.encrypted' && e.sender === peer.userId);
          return undefined;
        };

        const original = await peer.sendText(roomId, 'The original message');
        assert.equal((await client.waitForBody(roomId, 'The original message')).eventId, original);
        assert.ok(captured, 'the proxy did not see the ciphertext');
        await peer.sendText(roomId, 'A later message that carries the replays');
        await client.waitForBody(roomId, 'A later message that carries the replays');

        const timeline = await client.timeline(roomId);
        const replay = timeline.find((e) => e.eventId === '$replayed-under-a-new-id');
        const resent = timeline.find((e) => e.eventId === '$resent-as-carol');
        assert.equal(replay?.msgtype, 'm.notice', JSON.stringify(replay));
        assert.match(replay!.body ?? '', /Warning: this message is a replay/);
        assert.equal(resent?.msgtype, 'm.notice', JSON.stringify(resent));
        assert.match(resent!.body ?? '', /claims to be from @carol:localhost|claims a sender/);
        assert.equal(timeline.filter((e) => e.body === 'The original message').length, 1, 'the original shows twice');
      },
    );

    it(
      'A join injected into a sync earns the outsider no room key: Kirjava asks the homeserver who the members are',
      story,
      async () => {
        const { client, peer, session, roomId } = await givenProxiedRoom();
        const mallory = await bed.givenPeer(await bed.newUser('mallory'));
        await peer.waitForDeviceKeys(mallory.userId, mallory.deviceId);
        // The first send loads the member list from the homeserver.
        const first = await client.sendText(roomId, 'Before the injected join');
        assert.equal((await peer.waitForText(roomId, 'Before the injected join')).eventId, first);

        let injected = false;
        proxy.rewrite = (body) => {
          const sync = JSON.parse(body) as Json;
          const events: Json[] | undefined = sync.rooms?.join?.[roomId]?.timeline?.events;
          if (injected || !events?.some((e) => e.sender === peer.userId)) return undefined;
          injected = true;
          const join = {
            type: 'm.room.member',
            state_key: mallory.userId,
            sender: mallory.userId,
            event_id: '$injected-join',
            origin_server_ts: Date.now(),
            content: { membership: 'join' },
          };
          events.unshift(join);
          return JSON.stringify(sync);
        };
        await peer.sendText(roomId, 'Carries the injected join');
        await client.waitForBody(roomId, 'Carries the injected join', 30_000);
        assert.ok(injected, 'the proxy did not inject the join');
        proxy.rewrite = undefined;

        const after = await client.sendText(roomId, 'After the injected join');
        assert.equal((await peer.waitForText(roomId, 'After the injected join')).decrypted, true);
        const members = (await (
          await fetch(`${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/joined_members`, {
            headers: { Authorization: `Bearer ${peer.accessToken}` },
          })
        ).json()) as { joined: Record<string, unknown> };
        assert.ok(!(mallory.userId in members.joined), 'the homeserver has the outsider in the room');
        assert.ok(session.userId in members.joined);
        // Whatever to-device messages the send caused have reached Mallory's sync by now.
        await new Promise((resolve) => setTimeout(resolve, 3_000));
        const keys = await mallory.client.getCrypto()!.exportRoomKeys();
        assert.deepEqual(
          keys.filter((key) => key.room_id === roomId).map((key) => key.session_id),
          [],
          `the outsider got the room key for ${after}`,
        );
      },
    );
  });
}
