/**
 * Sends after a room key was shared: while nothing that decides who gets the key has
 * changed, the next sends encrypt at once (no device lookups, no key share); anything that
 * may change it (a member joins or leaves, a device appears, a trust decision) makes the
 * next send share in full again, and the library's session rotation never catches a send
 * on an expired session (which would panic inside the library).
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import type { CryptoAccount } from '../../src/crypto/account.ts';
import { megolmIndex } from '../../src/crypto/send/share-ledger.ts';
import { aliceAndBobIn, closeOpenedAccounts, openAccount, readText, sendText } from '../fixtures/crypto-accounts.ts';
import type { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const DAVE = '@dave:example.test';
const ROOM = '!fast:example.test';

afterEach(closeOpenedAccounts);

/** Alice and Bob in an encrypted room; counts Alice's full key shares. */
async function room() {
  const { hs, alice, bob } = await aliceAndBobIn(ROOM);
  const shares = { count: 0 };
  const shareRoomKey = alice.machine.shareRoomKey.bind(alice.machine);
  alice.machine.shareRoomKey = (...args: Parameters<typeof shareRoomKey>) => {
    shares.count++;
    return shareRoomKey(...args);
  };
  return { hs, alice, bob, shares };
}

const send = (hs: FakeHomeserver, alice: CryptoAccount, body: string) => sendText(hs, alice, ROOM, body);
const reads = (hs: FakeHomeserver, reader: CryptoAccount, event: Json) => readText(hs, reader, ROOM, event);

/** Alice's client syncs: device list changes and membership events reach her machine. */
async function aliceSyncs(hs: FakeHomeserver, alice: CryptoAccount, timeline: Json[] = []) {
  await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [ROOM]: timeline } }));
  await alice.flushOutgoingQueued();
}

describe('Sends into a room whose key is already shared', () => {
  it('encrypt at once while nothing changed: one key share for several messages, all readable', async () => {
    const { hs, alice, bob, shares } = await room();
    const events = [await send(hs, alice, 'one'), await send(hs, alice, 'two'), await send(hs, alice, 'three')];
    assert.equal(shares.count, 1);
    for (const [i, text] of ['one', 'two', 'three'].entries()) assert.equal(await reads(hs, bob, events[i]), text);
  });

  it('share in full again when a member has a new device: the new device reads the next message', async () => {
    const { hs, alice, bob, shares } = await room();
    await send(hs, alice, 'before');
    const bobPhone = await openAccount(hs, BOB, 'BOBPHONE', { claim: true });
    await aliceSyncs(hs, alice); // device_lists.changed: [bob]
    const after = await send(hs, alice, 'after the new device');
    assert.equal(shares.count, 2);
    assert.equal(await reads(hs, bobPhone, after), 'after the new device');
    assert.equal(await reads(hs, bob, after), 'after the new device');
  });

  it('share in full again when someone joins: the newcomer reads the next message', async () => {
    const { hs, alice, shares } = await room();
    await send(hs, alice, 'before dave');
    const dave = await openAccount(hs, DAVE, 'DAVEDEV', { claim: true });
    await aliceSyncs(hs, alice); // dave's device keys: a device list change alone, dave not a member yet
    await send(hs, alice, 'still before dave');
    const sharesBefore = shares.count;
    hs.setMembership(ROOM, DAVE, 'join');
    await aliceSyncs(hs, alice, [hs.event(ROOM, DAVE, 'm.room.member', { membership: 'join' }, { state_key: DAVE })]);
    const after = await send(hs, alice, 'welcome dave');
    assert.equal(shares.count, sharesBefore + 1);
    assert.equal(await reads(hs, dave, after), 'welcome dave');
  });

  it('share in full again after a trust decision: a blacklisted device cannot read the next message', async () => {
    const { hs, alice, bob, shares } = await room();
    const before = await send(hs, alice, 'before the blacklist');
    assert.equal(await reads(hs, bob, before), 'before the blacklist');
    await alice.devices.apply(BOB, 'BOBDEV', 'blacklist');
    const after = await send(hs, alice, 'after the blacklist');
    assert.equal(shares.count, 2);
    assert.match(await reads(hs, bob, after), /Unable to decrypt/);
  });

  it(
    'never encrypt on an expired session: ' + '130 messages rotate the session at the library limit and all arrive',
    async () => {
      const { hs, alice, bob, shares } = await room();
      const sessions = new Map<string, number>();
      let last: Json | undefined;
      for (let i = 0; i < 130; i++) {
        last = await send(hs, alice, `message ${i}`);
        const used = megolmIndex(JSON.stringify(last.content));
        assert.ok(used, 'every ciphertext names its session and index');
        assert.ok(used.index < 100, `message ${i} used index ${used.index} of a session that rotates at 100`);
        sessions.set(used.sessionId, Math.max(sessions.get(used.sessionId) ?? 0, used.index));
      }
      assert.equal(sessions.size, 2, 'the session rotated once');
      assert.ok(shares.count > 2 && shares.count < 130, `full shares happen near the limit only (${shares.count})`);
      assert.equal(await reads(hs, bob, last!), 'message 129');
    },
  );
});

describe('megolmIndex', () => {
  it('reads the session and message index of real ciphertexts, and nothing from junk', async () => {
    const { hs, alice } = await room();
    for (let i = 0; i < 3; i++) {
      const event = await send(hs, alice, `n${i}`);
      assert.deepEqual(megolmIndex(JSON.stringify(event.content)), { sessionId: event.content.session_id, index: i });
    }
    // Index 200 as a two-byte varint (0xc8 0x01) after version 3 and field tag 0x08.
    const twoBytes = btoa(String.fromCharCode(3, 0x08, 0xc8, 0x01, 0x12, 0x00));
    assert.deepEqual(megolmIndex(JSON.stringify({ ciphertext: twoBytes, session_id: 's' })), {
      sessionId: 's',
      index: 200,
    });
    for (const junk of [
      '',
      'not json',
      '{}',
      '{"ciphertext":"!!!!","session_id":"s"}',
      JSON.stringify({ ciphertext: btoa('\x02\x08\x00'), session_id: 's' }),
      JSON.stringify({ ciphertext: btoa('\x03\x08\xff\xff'), session_id: 's' }),
    ]) {
      assert.equal(megolmIndex(junk), undefined, junk);
    }
  });
});
