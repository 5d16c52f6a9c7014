/**
 * CryptoAccount stories against the in-process fake homeserver: two or three real
 * OlmMachines (in-memory stores) exchange keys through it, so what is checked here is
 * real Olm/Megolm, only the server is fake.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CryptoAccount, ForeignDeviceKeysError } from '../../src/crypto/account.ts';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { MatrixApiError } from '../../src/crypto/core/http.ts';
import { EncryptionStateUnknownError } from '../../src/crypto/send/room-encryptor.ts';
import { closeOpenedAccounts, openAccount } from '../fixtures/crypto-accounts.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const CAROL = '@carol:example.test';
const ROOM = '!secret:example.test';
const PLAIN_ROOM = '!lobby:example.test';

afterEach(closeOpenedAccounts);

const open = (hs: FakeHomeserver, userId: string, deviceId: string) => openAccount(hs, userId, deviceId);

/** Alice and Bob (and Carol when asked) with uploaded keys, all joined to the encrypted ROOM. */
async function encryptedRoom(options: { carolInRoom?: boolean } = {}) {
  const hs = new FakeHomeserver();
  const alice = await open(hs, ALICE, 'ALICEDEV');
  const bob = await open(hs, BOB, 'BOBDEV');
  const carol = await open(hs, CAROL, 'CAROLDEV');
  for (const account of [alice, bob, carol]) await account.claimDevice();
  hs.setEncrypted(ROOM);
  hs.setMembership(ROOM, ALICE, 'join');
  hs.setMembership(ROOM, BOB, 'join');
  if (options.carolInRoom) hs.setMembership(ROOM, CAROL, 'join');
  return { hs, alice, bob, carol };
}

/** Alice's send as the homeserver would then serve it: her prepared content in an m.room.encrypted event. */
async function aliceSends(hs: FakeHomeserver, alice: CryptoAccount, content: Json, extra: Json = {}): Promise<Json> {
  const decision = await alice.prepareSend(ROOM, 'm.room.message', JSON.stringify(content));
  assert.notEqual(decision, 'passthrough');
  if (decision === 'passthrough') throw new Error('unreachable');
  return hs.event(ROOM, extra.sender ?? ALICE, decision.eventType, JSON.parse(decision.body), extra);
}

/** The timeline of ROOM in the body `account` returns for its next sync. */
async function syncTimeline(hs: FakeHomeserver, account: CryptoAccount, events: Json[]): Promise<Json[]> {
  const { userId, deviceId } = account.identity;
  const body = await account.processSync(hs.syncFor(userId, deviceId, { timeline: { [ROOM]: events } }));
  return JSON.parse(body).rooms.join[ROOM].timeline.events;
}

const stateLookups = (hs: FakeHomeserver, roomId: string) =>
  hs.requests.filter((r) => r.path === `/rooms/${encodeURIComponent(roomId)}/state/m.room.encryption/`);

describe('CryptoAccount', () => {
  describe('given Alice and Bob in an encrypted room', () => {
    it(
      'Alice sends m.room.encrypted and Bob decrypts it to the original event, ' + 'keeping its envelope fields',
      async () => {
        const { hs, alice, bob } = await encryptedRoom();
        const thread = {
          rel_type: 'm.thread',
          event_id: '$root',
          is_falling_back: true,
          'm.in_reply_to': { event_id: '$parent' },
        };
        const content = { msgtype: 'm.text', body: 'The eagle lands at dawn', 'm.relates_to': thread };

        const decision = await alice.prepareSend(ROOM, 'm.room.message', JSON.stringify(content));
        assert.notEqual(decision, 'passthrough');
        if (decision === 'passthrough') return;
        assert.equal(decision.eventType, 'm.room.encrypted');
        const wire = JSON.parse(decision.body);
        assert.equal(wire.algorithm, 'm.megolm.v1.aes-sha2');
        assert.ok(!decision.body.includes('eagle'), 'the plaintext must not be on the wire');

        const envelope = hs.event(ROOM, ALICE, 'm.room.encrypted', wire, { unsigned: { age: 1234 } });
        const [event] = await syncTimeline(hs, bob, [envelope]);

        assert.equal(event.type, 'm.room.message');
        assert.equal(event.content.body, 'The eagle lands at dawn');
        assert.equal(event.content.msgtype, 'm.text');
        assert.deepEqual(event.content['m.relates_to'], thread);
        for (const field of ['event_id', 'sender', 'origin_server_ts', 'room_id'] as const) {
          assert.equal(event[field], envelope[field], field);
        }
        assert.equal(event.unsigned.age, 1234);
        const info = event.unsigned[ENCRYPTION_INFO_KEY];
        assert.equal(info.decrypted, true);
        assert.equal(info.sender_device, 'ALICEDEV');
        assert.equal(typeof info.shield.color, 'string');
      },
    );

    it('Bob keeps a relation that is only in the envelope (as legacy clients send it)', async () => {
      const { hs, alice, bob } = await encryptedRoom();
      const reply = { 'm.in_reply_to': { event_id: '$question' } };
      const envelope = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'yes' });
      envelope.content['m.relates_to'] = reply;

      const [event] = await syncTimeline(hs, bob, [envelope]);

      assert.equal(event.content.body, 'yes');
      assert.deepEqual(event.content['m.relates_to'], reply);
    });

    it(
      'Bob decrypts the room history: /messages chunk, ' + '/context event and neighbours, and a bare /event body',
      async () => {
        const { hs, alice, bob } = await encryptedRoom();
        const first = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'one' });
        const second = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'two' });
        const third = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'three' });
        const topic = hs.event(ROOM, ALICE, 'm.room.topic', { topic: 'plans' }, { state_key: '' });
        // The keys arrive in a sync whose timeline does not hold these events.
        await bob.processSync(hs.syncFor(BOB, 'BOBDEV'));

        const messages = JSON.parse(
          await bob.processHistory(
            ROOM,
            JSON.stringify({ start: 't1', end: 't0', chunk: [third, topic, second, first] }),
          ),
        );
        assert.deepEqual(
          messages.chunk.map((e: Json) => e.content.body ?? e.content.topic),
          ['three', 'plans', 'two', 'one'],
        );
        assert.deepEqual(messages.chunk[1], topic, 'a plain event is left as it was');
        assert.equal(messages.start, 't1');

        const context = JSON.parse(
          await bob.processHistory(
            ROOM,
            JSON.stringify({
              event: second,
              events_before: [first],
              events_after: [third],
              state: [topic],
              start: 'a',
              end: 'b',
            }),
          ),
        );
        assert.equal(context.event.content.body, 'two');
        assert.equal(context.event.event_id, second.event_id);
        assert.equal(context.events_before[0].content.body, 'one');
        assert.equal(context.events_after[0].content.body, 'three');
        assert.deepEqual(context.state, [topic]);

        const single = JSON.parse(await bob.processHistory(ROOM, JSON.stringify(third)));
        assert.equal(single.type, 'm.room.message');
        assert.equal(single.content.body, 'three');
        assert.equal(single.event_id, third.event_id);
      },
    );

    it(
      'an event whose key never arrived ' + 'becomes an "Unable to decrypt" notice with the reason under unsigned',
      async () => {
        const { hs, alice, carol } = await encryptedRoom(); // Carol is not a member: she gets no key
        const envelope = await aliceSends(
          hs,
          alice,
          { msgtype: 'm.text', body: 'not for Carol' },
          { unsigned: { age: 7 } },
        );

        const [event] = await syncTimeline(hs, carol, [envelope]);

        assert.equal(event.type, 'm.room.message');
        assert.equal(event.content.msgtype, 'm.notice');
        assert.match(event.content.body, /Unable to decrypt/);
        assert.ok(!JSON.stringify(event).includes('not for Carol'));
        assert.equal(event.event_id, envelope.event_id);
        assert.equal(event.sender, ALICE);
        assert.equal(event.unsigned.age, 7);
        const info = event.unsigned[ENCRYPTION_INFO_KEY];
        assert.equal(info.decrypted, false);
        assert.equal(info.error_code, 'MissingRoomKey');
        assert.equal(info.session_id, envelope.content.session_id);
      },
    );

    it('an undecryptable reply stays in its thread, but an undecryptable edit does not act as an edit', async () => {
      const { hs, alice, carol } = await encryptedRoom();
      const thread = { rel_type: 'm.thread', event_id: '$root' };
      const edit = { rel_type: 'm.replace', event_id: '$original' };
      const inThread = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'a', 'm.relates_to': thread });
      const anEdit = await aliceSends(hs, alice, {
        msgtype: 'm.text',
        body: '* b',
        'm.new_content': { body: 'b' },
        'm.relates_to': edit,
      });

      const [threaded, edited] = await syncTimeline(hs, carol, [inThread, anEdit]);

      assert.equal(threaded.content.msgtype, 'm.notice');
      assert.deepEqual(threaded.content['m.relates_to'], thread);
      assert.equal(edited.content.msgtype, 'm.notice');
      assert.equal(edited.content['m.relates_to'], undefined);
    });

    it(
      'an envelope whose sender is forged to another user decrypts to a warning notice, ' + 'not a genuine message',
      async () => {
        const { hs, alice, bob } = await encryptedRoom({ carolInRoom: true });
        // Alice encrypts; the event Bob receives claims Carol sent it.
        const forged = await aliceSends(
          hs,
          alice,
          { msgtype: 'm.text', body: 'Carol says: transfer the money' },
          { sender: CAROL },
        );
        await bob.processSync(hs.syncFor(BOB, 'BOBDEV')); // to-device keys first
        await bob.flushOutgoingQueued(); // Bob's machine learns Alice's and Carol's devices

        const [event] = await syncTimeline(hs, bob, [forged]);

        assert.equal(event.sender, CAROL);
        assert.equal(event.type, 'm.room.message');
        assert.equal(
          event.content.msgtype,
          'm.notice',
          `shown as a genuine message from Carol: ${JSON.stringify(event.content)}`,
        );
        assert.ok(!JSON.stringify(event.content).includes('transfer the money'));
        assert.equal(event.unsigned[ENCRYPTION_INFO_KEY].decrypted, false);
      },
    );

    it('a ciphertext copied into another room does not decrypt there', async () => {
      const { hs, alice, bob } = await encryptedRoom();
      const envelope = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'for the secret room only' });
      const elsewhere = '!elsewhere:example.test';
      const copy = { ...envelope, room_id: elsewhere };

      const body = await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [elsewhere]: [copy] } }));
      const [event] = JSON.parse(body).rooms.join[elsewhere].timeline.events;

      assert.equal(event.content.msgtype, 'm.notice');
      assert.ok(!JSON.stringify(event).includes('for the secret room only'));
    });

    it('a plain event from the server cannot claim to have been decrypted by Kirjava', async () => {
      const { hs, bob } = await encryptedRoom();
      const claimed = { decrypted: true, sender_device: 'ALICEDEV', shield: { color: 'none', message: null } };
      const injected = hs.event(
        ROOM,
        ALICE,
        'm.room.message',
        { msgtype: 'm.text', body: 'trust me' },
        {
          unsigned: { [ENCRYPTION_INFO_KEY]: claimed },
        },
      );

      const [event] = await syncTimeline(hs, bob, [injected]);

      assert.notEqual(
        event.unsigned?.[ENCRYPTION_INFO_KEY]?.decrypted,
        true,
        "a homeserver-supplied unsigned field passes as Kirjava's own decryption report",
      );
    });

    it(
      'the same ciphertext replayed under another event_id is flagged, ' + 'not shown as a second genuine message',
      async () => {
        const { hs, alice, bob } = await encryptedRoom();
        const original = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'Pay 10 EUR' });
        const replay = hs.event(ROOM, ALICE, 'm.room.encrypted', original.content);

        const [first, second] = await syncTimeline(hs, bob, [original, replay]);

        assert.equal(first.content.body, 'Pay 10 EUR');
        assert.notEqual(
          second.content.body,
          'Pay 10 EUR',
          'a replay of the same (session, message index) under a new event_id is shown as a genuine second message',
        );
      },
    );
  });

  describe('deciding whether a send must be encrypted', () => {
    it('a send into an unencrypted room is passthrough, and the room state is looked up only once', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');

      assert.equal(
        await alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"msgtype":"m.text","body":"hi"}'),
        'passthrough',
      );
      assert.equal(
        await alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"msgtype":"m.text","body":"again"}'),
        'passthrough',
      );

      assert.equal(stateLookups(hs, PLAIN_ROOM).length, 1);
    });

    it('fails closed when the room state lookup fails with 500: prepareSend rejects, never passthrough', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');
      hs.intercept = (method, path) =>
        path.includes('/state/m.room.encryption')
          ? new Response('{"errcode":"M_UNKNOWN","error":"database is on fire"}', { status: 500 })
          : undefined;

      await assert.rejects(
        alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"body":"hi"}'),
        EncryptionStateUnknownError,
      );
      // Not remembered as plain: the next attempt asks again, and still refuses.
      await assert.rejects(
        alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"body":"hi"}'),
        EncryptionStateUnknownError,
      );
      assert.equal(stateLookups(hs, PLAIN_ROOM).length, 2);
    });

    it('fails closed when the state lookup answers 404 without M_NOT_FOUND (e.g. a proxy page)', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');
      hs.intercept = (method, path) =>
        path.includes('/state/m.room.encryption') ? new Response('<html>Not Found</html>', { status: 404 }) : undefined;

      await assert.rejects(
        alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"body":"hi"}'),
        EncryptionStateUnknownError,
      );
    });

    it(
      'an m.room.encryption state event in a sync marks the room encrypted: ' +
        'the next send encrypts though the homeserver does not confirm it',
      async () => {
        const hs = new FakeHomeserver();
        const alice = await open(hs, ALICE, 'ALICEDEV');
        await alice.claimDevice();
        hs.setMembership(ROOM, ALICE, 'join');
        // The fake would answer the lookup with 404: only the sync can tell Alice that ROOM is encrypted.
        const encryption = hs.event(
          ROOM,
          ALICE,
          'm.room.encryption',
          { algorithm: 'm.megolm.v1.aes-sha2' },
          { state_key: '' },
        );
        await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { state: { [ROOM]: [encryption] } }));

        const decision = await alice.prepareSend(ROOM, 'm.room.message', '{"msgtype":"m.text","body":"hi"}');

        assert.notEqual(decision, 'passthrough');
        // Asked for once, for the room's rules (algorithm, rotation): a 404 does not make the room plain.
        assert.equal(stateLookups(hs, ROOM).length, 1);
      },
    );

    it('an m.room.encryption event in a timeline turns a room looked up as plain into an encrypted one', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');
      await alice.claimDevice();
      hs.setMembership(PLAIN_ROOM, ALICE, 'join');
      assert.equal(await alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"body":"before"}'), 'passthrough');

      const encryption = hs.event(
        PLAIN_ROOM,
        ALICE,
        'm.room.encryption',
        { algorithm: 'm.megolm.v1.aes-sha2' },
        { state_key: '' },
      );
      await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [PLAIN_ROOM]: [encryption] } }));

      assert.notEqual(await alice.prepareSend(PLAIN_ROOM, 'm.room.message', '{"body":"after"}'), 'passthrough');
    });

    it('an already encrypted event type is passed through untouched, without any lookup', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');
      assert.equal(
        await alice.prepareSend(ROOM, 'm.room.encrypted', '{"algorithm":"m.megolm.v1.aes-sha2"}'),
        'passthrough',
      );
      assert.equal(hs.requests.length, 0);
    });

    it('a send into an encrypted room whose content is not a JSON object is refused with M_NOT_JSON', async () => {
      const { alice } = await encryptedRoom();
      await assert.rejects(alice.prepareSend(ROOM, 'm.room.message', '["a list"]'), (error: unknown) => {
        assert.ok(error instanceof MatrixApiError);
        assert.equal(error.errcode, 'M_NOT_JSON');
        return true;
      });
    });
  });

  describe('claiming the device', () => {
    it('uploads the keys of a fresh device', async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');

      await alice.claimDevice();

      assert.ok(hs.requests.some((r) => r.method === 'POST' && r.path === '/keys/upload' && r.userId === ALICE));
      const answer = await (
        await hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3/keys/query`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${hs.login(BOB, 'BOBDEV')}` },
          body: JSON.stringify({ device_keys: { [ALICE]: [] } }),
        })
      ).json();
      assert.equal(answer.device_keys[ALICE].ALICEDEV.keys['ed25519:ALICEDEV'], alice.ed25519);
      // Claiming again is harmless: the keys on the server are ours.
      await alice.claimDevice();
    });

    it(
      "refuses a device whose keys on the server are someone else's, " +
        'with ForeignDeviceKeysError, and uploads nothing',
      async () => {
        const hs = new FakeHomeserver();
        hs.login(ALICE, 'ALICEDEV');
        hs.setDeviceKeys(ALICE, 'ALICEDEV', {
          user_id: ALICE,
          device_id: 'ALICEDEV',
          algorithms: ['m.olm.v1.curve25519-aes-sha2', 'm.megolm.v1.aes-sha2'],
          keys: {
            'ed25519:ALICEDEV': 'keyOfAnotherAppXXXXXXXXXXXXXXXXXXXXXXXXXXX',
            'curve25519:ALICEDEV': 'otherCurveXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX',
          },
          signatures: {},
        });
        const alice = await open(hs, ALICE, 'ALICEDEV');

        await assert.rejects(alice.claimDevice(), ForeignDeviceKeysError);
        assert.ok(!hs.requests.some((r) => r.path === '/keys/upload'));
      },
    );

    it('reports an unknown access token as the Matrix error', async () => {
      const hs = new FakeHomeserver();
      const stranger = await openAccount(hs, ALICE, 'ALICEDEV', { accessToken: 'not-a-token' });
      await assert.rejects(stranger.claimDevice(), (error: unknown) => {
        assert.ok(error instanceof MatrixApiError);
        assert.equal(error.status, 401);
        assert.equal(error.errcode, 'M_UNKNOWN_TOKEN');
        return true;
      });
    });
  });

  describe('the fake homeserver', () => {
    it('queues to-device messages per device, "*" meaning every device of the user, handed out once', async () => {
      const hs = new FakeHomeserver();
      const token = hs.login(ALICE, 'ALICEDEV');
      hs.login(BOB, 'PHONE');
      hs.login(BOB, 'LAPTOP');
      const send = (txn: string, messages: Json) =>
        hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3/sendToDevice/m.dummy/${txn}`, {
          method: 'PUT',
          headers: { Authorization: `Bearer ${token}` },
          body: JSON.stringify({ messages }),
        });
      await send('t1', { [BOB]: { '*': { n: 1 } } });
      await send('t2', { [BOB]: { PHONE: { n: 2 } } });

      const inbox = (deviceId: string) => JSON.parse(hs.syncFor(BOB, deviceId)).to_device.events;
      assert.deepEqual(inbox('PHONE'), [
        { type: 'm.dummy', sender: ALICE, content: { n: 1 } },
        { type: 'm.dummy', sender: ALICE, content: { n: 2 } },
      ]);
      assert.deepEqual(inbox('LAPTOP'), [{ type: 'm.dummy', sender: ALICE, content: { n: 1 } }]);
      assert.deepEqual(inbox('PHONE'), []);
      assert.equal((await send('t3', {})).status, 200);
      const noToken = await hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3/keys/query`, { method: 'POST', body: '{}' });
      assert.equal(noToken.status, 401);
      assert.equal((await noToken.json()).errcode, 'M_UNKNOWN_TOKEN');
    });

    it("hands out Bob's fallback key once his one-time keys are used up, and Alice still reaches him", async () => {
      const hs = new FakeHomeserver();
      const alice = await open(hs, ALICE, 'ALICEDEV');
      const bob = await open(hs, BOB, 'BOBDEV');
      await alice.claimDevice();
      await bob.claimDevice();
      // Bob's first sync reports no unused fallback key: his machine uploads one.
      await bob.processSync(hs.syncFor(BOB, 'BOBDEV'));
      await bob.flushOutgoingQueued();
      const carolToken = hs.login(CAROL, 'CAROLDEV');
      for (let i = 0; i < 60; i++) {
        await hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3/keys/claim`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${carolToken}` },
          body: JSON.stringify({ one_time_keys: { [BOB]: { BOBDEV: 'signed_curve25519' } } }),
        });
      }
      assert.equal(JSON.parse(hs.syncFor(BOB, 'BOBDEV')).device_one_time_keys_count.signed_curve25519, 0);
      hs.setEncrypted(ROOM);
      hs.setMembership(ROOM, ALICE, 'join');
      hs.setMembership(ROOM, BOB, 'join');

      const envelope = await aliceSends(hs, alice, { msgtype: 'm.text', body: 'via fallback' });
      const [event] = await syncTimeline(hs, bob, [envelope]);

      assert.equal(event.content.body, 'via fallback');
    });
  });
});
