/**
 * What the send guard hears from an account: a room seen encrypted is reported before the
 * sync that says so is handed back; a room looked up and found unencrypted is reported before
 * a send into it is let through; joined rooms are looked up after the sync, once each.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CryptoAccount } from '../../src/crypto/account.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const ALICE = '@alice:example.test';
const SECRET = '!secret:example.test';
const LOBBY = '!lobby:example.test';
const CAFE = '!cafe:example.test';

const opened: CryptoAccount[] = [];
afterEach(() => {
  for (const account of opened.splice(0)) account.close();
});

async function givenAliceWithAGuard() {
  const hs = new FakeHomeserver();
  const heard: string[] = [];
  const alice = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId: ALICE,
    deviceId: 'ALICEDEV',
    accessToken: hs.login(ALICE, 'ALICEDEV'),
    fetchFn: hs.fetchFn,
    roomObserver: {
      encrypted: async (roomId) => void heard.push(`encrypted ${roomId}`),
      plain: async (roomId) => void heard.push(`plain ${roomId}`),
    },
  });
  opened.push(alice);
  await alice.claimDevice();
  for (const room of [SECRET, LOBBY, CAFE]) hs.setMembership(room, ALICE, 'join');
  return { hs, alice, heard };
}

const encryptionEvent = {
  type: 'm.room.encryption',
  state_key: '',
  sender: ALICE,
  event_id: '$enc',
  content: { algorithm: 'm.megolm.v1.aes-sha2' },
};
const lookups = (hs: FakeHomeserver) =>
  hs.requests
    .filter((r) => r.path.endsWith('/state/m.room.encryption/'))
    .map((r) => decodeURIComponent(r.path.split('/')[2]));

describe('The send guard hears of rooms in time', () => {
  it('a room seen encrypted in a sync is reported before processSync returns', async () => {
    const { hs, alice, heard } = await givenAliceWithAGuard();
    await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { state: { [SECRET]: [encryptionEvent] } }));
    assert.deepEqual(heard, [`encrypted ${SECRET}`]);
  });

  it(
    'joined rooms of unknown state are looked up after the sync, once; ' + 'the unencrypted ones are reported',
    async () => {
      const { hs, alice, heard } = await givenAliceWithAGuard();
      // Nothing to learn yet: must not leave the learner stuck for later syncs.
      await alice.learnRoomEncryption(async () => false, 0);
      await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { state: { [SECRET]: [encryptionEvent], [LOBBY]: [] } }));
      await alice.learnRoomEncryption(async () => false, 0);
      assert.deepEqual(lookups(hs), [LOBBY]);
      assert.deepEqual(heard, [`encrypted ${SECRET}`, `plain ${LOBBY}`]);

      await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { state: { [SECRET]: [], [LOBBY]: [], [CAFE]: [] } }));
      await alice.learnRoomEncryption(async (roomId) => roomId === CAFE, 0); // the guard already knows CAFE
      assert.deepEqual(lookups(hs), [LOBBY], 'a known room was looked up again');
    },
  );

  it('a send into an unencrypted room is let through only after the guard heard of the room', async () => {
    const { hs, alice, heard } = await givenAliceWithAGuard();
    const decision = await alice.prepareSend(LOBBY, 'm.room.message', '{"msgtype":"m.text","body":"hi"}');
    assert.equal(decision, 'passthrough');
    assert.deepEqual(heard, [`plain ${LOBBY}`]);
    await alice.prepareSend(LOBBY, 'm.room.message', '{"msgtype":"m.text","body":"again"}');
    assert.deepEqual(heard, [`plain ${LOBBY}`, `plain ${LOBBY}`], 'each passthrough refreshes the room in the guard');
    assert.equal(lookups(hs).length, 1);
  });

  it('a guard that cannot add the rule stops the send instead of letting it out', async () => {
    const hs = new FakeHomeserver();
    const alice = await CryptoAccount.open({
      baseUrl: hs.baseUrl,
      userId: ALICE,
      deviceId: 'ALICEDEV',
      accessToken: hs.login(ALICE, 'ALICEDEV'),
      fetchFn: hs.fetchFn,
      roomObserver: {
        encrypted: async () => {},
        plain: async () => {
          throw new Error('rules refused');
        },
      },
    });
    opened.push(alice);
    await alice.claimDevice();
    await assert.rejects(alice.prepareSend(LOBBY, 'm.room.message', '{"body":"x"}'), /rules refused/);
  });
});
