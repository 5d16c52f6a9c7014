/**
 * The room's own rules for its key, as matrix-js-sdk's RoomEncryptor honours them: the
 * history visibility decides whether invited members get the key and what its
 * `shared_history` says; `rotation_period_msgs` and `rotation_period_ms` of
 * `m.room.encryption` decide when the session rotates (the send fast path included); an
 * algorithm Kirjava does not support fails the send. The rules come from the homeserver: a
 * sync, which passed through the page, may tighten them but never loosen them.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CryptoAccount } from '../../src/crypto/account.ts';
import { MatrixApiError } from '../../src/crypto/core/http.ts';
import { megolmIndex } from '../../src/crypto/send/share-ledger.ts';
import { aliceAndBobIn, closeOpenedAccounts, openAccount, readText, sendText } from '../fixtures/crypto-accounts.ts';
import type { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const CAROL = '@carol:example.test';
const ROOM = '!rules:example.test';
const MEGOLM = 'm.megolm.v1.aes-sha2';

afterEach(closeOpenedAccounts);

/** Alice and Bob joined, Carol invited (her device keys on the server), under the room's visibility. */
async function roomWithAnInvitee(visibility?: string, encryption: Json = { algorithm: MEGOLM }) {
  const { hs, alice, bob } = await aliceAndBobIn(ROOM);
  hs.setEncrypted(ROOM, encryption);
  if (visibility) hs.setHistoryVisibility(ROOM, visibility);
  const carol = await openAccount(hs, CAROL, 'CAROLDEV', { claim: true });
  hs.setMembership(ROOM, CAROL, 'invite');
  const shares = { count: 0 };
  const shareRoomKey = alice.machine.shareRoomKey.bind(alice.machine);
  alice.machine.shareRoomKey = (...args: Parameters<typeof shareRoomKey>) => {
    shares.count++;
    return shareRoomKey(...args);
  };
  return { hs, alice, bob, carol, shares };
}

const send = (hs: FakeHomeserver, alice: CryptoAccount, body: string) => sendText(hs, alice, ROOM, body);
const reads = (hs: FakeHomeserver, reader: CryptoAccount, event: Json) => readText(hs, reader, ROOM, event);

/** What `m.shared_history` says of the session of `event` in the reader's store (read it first). */
async function sharedHistoryOf(reader: CryptoAccount, event: Json): Promise<unknown> {
  const keys = JSON.parse(await reader.machine.exportRoomKeys(() => true)) as Json[];
  const key = keys.find((k) => k.session_id === event.content.session_id);
  assert.ok(key, 'the reader holds the key');
  return key['m.shared_history'];
}

const stateEvent = (hs: FakeHomeserver, type: string, content: Json) =>
  hs.event(ROOM, ALICE, type, content, { state_key: '' });

/** Alice's client syncs these room events (through the page: its word, not the homeserver's). */
async function aliceSyncs(hs: FakeHomeserver, alice: CryptoAccount, events: Json[]) {
  await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [ROOM]: events } }));
}

const lookups = (hs: FakeHomeserver, type: string) =>
  hs.requests.filter((r) => r.path === `/rooms/${encodeURIComponent(ROOM)}/state/${type}/`).length;

describe('History visibility decides who gets the room key, and its shared_history', () => {
  for (const [visibility, invitedReads, sharedHistory] of [
    ['joined', false, false],
    ['invited', true, false],
    ['shared', true, true],
    ['world_readable', true, true],
  ] as const) {
    it(
      `${visibility}: the invited member ${invitedReads ? 'reads' : 'cannot read'} the message, ` +
        `and the key says shared_history ${sharedHistory}`,
      async () => {
        const { hs, alice, bob, carol } = await roomWithAnInvitee(visibility);
        const event = await send(hs, alice, `under ${visibility}`);
        assert.equal(await reads(hs, bob, event), `under ${visibility}`);
        const carolSees = await reads(hs, carol, event);
        if (invitedReads) assert.equal(carolSees, `under ${visibility}`);
        else assert.match(carolSees, /Unable to decrypt/);
        assert.equal(await sharedHistoryOf(bob, event), sharedHistory);
      },
    );
  }

  it('no history visibility state at all: the spec default, shared', async () => {
    const { hs, alice, bob, carol } = await roomWithAnInvitee(undefined);
    const event = await send(hs, alice, 'default');
    assert.equal(await reads(hs, bob, event), 'default');
    assert.equal(await reads(hs, carol, event), 'default');
    assert.equal(await sharedHistoryOf(bob, event), true);
  });
});

describe('A sync may tighten the room rules, never loosen them', () => {
  it(
    'a sync claiming shared where the homeserver says joined: ' +
      'the homeserver is asked and the invitee gets nothing',
    async () => {
      const { hs, alice, carol } = await roomWithAnInvitee('joined');
      await send(hs, alice, 'first');
      const asked = lookups(hs, 'm.room.history_visibility');
      await aliceSyncs(hs, alice, [stateEvent(hs, 'm.room.history_visibility', { history_visibility: 'shared' })]);
      const event = await send(hs, alice, 'after the forged sync');
      assert.equal(lookups(hs, 'm.room.history_visibility'), asked + 1, 'the homeserver was asked again');
      assert.match(await reads(hs, carol, event), /Unable to decrypt/);
    },
  );

  it(
    'a sync saying joined where the homeserver said shared is believed at once: ' + 'the invitee gets nothing',
    async () => {
      const { hs, alice, carol, shares } = await roomWithAnInvitee('shared');
      assert.equal(await reads(hs, carol, await send(hs, alice, 'while shared')), 'while shared');
      const asked = lookups(hs, 'm.room.history_visibility');
      const sharesBefore = shares.count;
      await aliceSyncs(hs, alice, [stateEvent(hs, 'm.room.history_visibility', { history_visibility: 'joined' })]);
      const event = await send(hs, alice, 'now joined only');
      assert.equal(lookups(hs, 'm.room.history_visibility'), asked, 'tightening needs no confirmation');
      assert.equal(shares.count, sharesBefore + 1, 'the fast path does not outlive a change of the rules');
      assert.match(await reads(hs, carol, event), /Unable to decrypt/);
    },
  );

  it('a sync raising rotation_period_msgs is checked with the homeserver; lowering it is believed', async () => {
    const { hs, alice } = await roomWithAnInvitee('shared', { algorithm: MEGOLM, rotation_period_msgs: 10 });
    await send(hs, alice, 'first');
    const asked = lookups(hs, 'm.room.encryption');
    const encryption = (msgs: number) =>
      stateEvent(hs, 'm.room.encryption', { algorithm: MEGOLM, rotation_period_msgs: msgs });
    await aliceSyncs(hs, alice, [encryption(5)]);
    await send(hs, alice, 'second');
    assert.equal(lookups(hs, 'm.room.encryption'), asked, 'a lower limit needs no confirmation');
    await aliceSyncs(hs, alice, [encryption(1000)]);
    await send(hs, alice, 'third');
    assert.equal(lookups(hs, 'm.room.encryption'), asked + 1, 'a higher limit is asked for');
  });
});

describe('Session rotation follows the room', () => {
  it('rotation_period_msgs 10: a new session every 10 messages, the fast path in between, all readable', async () => {
    const { hs, alice, bob, shares } = await roomWithAnInvitee('shared', {
      algorithm: MEGOLM,
      rotation_period_msgs: 10,
    });
    const sessions = new Map<string, number>();
    let last: Json | undefined;
    for (let i = 0; i < 25; i++) {
      last = await send(hs, alice, `message ${i}`);
      const used = megolmIndex(JSON.stringify(last.content))!;
      assert.ok(used.index < 10, `message ${i} used index ${used.index} of a session that rotates at 10`);
      sessions.set(used.sessionId, used.index);
    }
    assert.equal(sessions.size, 3, 'sessions of 10, 10 and 5 messages');
    assert.ok(shares.count < 25, `the fast path still serves most sends (${shares.count} full shares)`);
    assert.equal(await reads(hs, bob, last!), 'message 24');
  });

  it(
    'rotation_period_ms of one hour: the same session half an hour later, a new one after the hour, no panic',
    { timeout: 30_000 },
    async () => {
      const { hs, alice, bob } = await roomWithAnInvitee('shared', {
        algorithm: MEGOLM,
        rotation_period_ms: 3_600_000,
      });
      const realNow = Date.now;
      let skew = 0;
      Date.now = () => realNow() + skew; // the library reads the same clock
      try {
        const first = await send(hs, alice, 'at noon');
        skew = 30 * 60_000;
        const half = await send(hs, alice, 'half past');
        skew = 61 * 60_000;
        const later = await send(hs, alice, 'after the hour');
        assert.equal(half.content.session_id, first.content.session_id);
        assert.notEqual(later.content.session_id, first.content.session_id, 'the session rotated after the hour');
        assert.equal(await reads(hs, bob, later), 'after the hour');
      } finally {
        Date.now = realNow;
      }
    },
  );
});

describe('A room encrypted with an algorithm Kirjava does not support', () => {
  it('gets a Matrix error on send, and nothing is shared or sent', async () => {
    const { hs, alice, shares } = await roomWithAnInvitee('shared', { algorithm: 'org.example.future.v9' });
    const before = hs.requests.length;
    await assert.rejects(
      alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'secret' })),
      (error: unknown) =>
        error instanceof MatrixApiError &&
        error.status === 400 &&
        /org\.example\.future\.v9.*not support/.test(error.serverMessage),
    );
    assert.equal(shares.count, 0);
    assert.ok(!hs.requests.slice(before).some((r) => r.path.startsWith('/sendToDevice')));
  });
});
