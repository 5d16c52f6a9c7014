/**
 * Who gets a room key: the member list is loaded from the server once per room, so a send
 * costs no extra round trip while nothing changes. A membership event in a sync (which came
 * through the page, so it is the page's word) or a gap in the timeline makes the next send
 * load the list from the homeserver again: a member who left stops getting keys at once, and
 * a join the homeserver never saw earns nobody a key.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CryptoAccount } from '../../src/crypto/account.ts';
import { readText, sendText } from '../fixtures/crypto-accounts.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const CAROL = '@carol:example.test';
const ROOM = '!members:example.test';

async function room() {
  const hs = new FakeHomeserver();
  const open = (userId: string, deviceId: string) =>
    CryptoAccount.open({
      baseUrl: hs.baseUrl,
      userId,
      deviceId,
      accessToken: hs.login(userId, deviceId),
      fetchFn: hs.fetchFn,
    });
  const alice = await open(ALICE, 'ALICEDEV');
  const bob = await open(BOB, 'BOBDEV');
  const carol = await open(CAROL, 'CAROLDEV');
  for (const account of [alice, bob, carol]) await account.claimDevice();
  hs.setEncrypted(ROOM);
  for (const user of [ALICE, BOB, CAROL]) hs.setMembership(ROOM, user, 'join');
  return { hs, alice, bob, carol };
}

const memberLookups = (hs: FakeHomeserver) =>
  hs.requests.filter((r) => r.path.startsWith(`/rooms/${encodeURIComponent(ROOM)}/members`)).length;

const send = (hs: FakeHomeserver, alice: CryptoAccount, body: string) => sendText(hs, alice, ROOM, body);
const reads = (hs: FakeHomeserver, reader: CryptoAccount, event: Json) => readText(hs, reader, ROOM, event);

describe('The member list of an encrypted room', () => {
  it('is loaded once: the next sends cost no /members lookup', async () => {
    const { hs, alice, bob } = await room();
    await send(hs, alice, 'one');
    await send(hs, alice, 'two');
    const third = await send(hs, alice, 'three');
    assert.equal(memberLookups(hs), 1);
    assert.equal(await reads(hs, bob, third), 'three');
  });

  it('is loaded again when a sync shows a leave: the member who left gets no key for the next message', async () => {
    const { hs, alice, carol } = await room();
    const before = await send(hs, alice, 'while carol is here');
    assert.equal(await reads(hs, carol, before), 'while carol is here');

    hs.setMembership(ROOM, CAROL, 'leave');
    const leave = hs.event(ROOM, CAROL, 'm.room.member', { membership: 'leave' }, { state_key: CAROL });
    await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [ROOM]: [leave] } }));
    const after = await send(hs, alice, 'after carol left');

    assert.equal(memberLookups(hs), 2, "the sync's leave made the next send ask the homeserver");
    assert.match(await reads(hs, carol, after), /Unable to decrypt/);
  });

  it('believes the homeserver, not the sync: a forged join of an outsider earns him no key', async () => {
    const { hs, alice, bob } = await room();
    const outsider = await CryptoAccount.open({
      baseUrl: hs.baseUrl,
      userId: '@mallory:example.test',
      deviceId: 'MALLORYDEV',
      accessToken: hs.login('@mallory:example.test', 'MALLORYDEV'),
      fetchFn: hs.fetchFn,
    });
    await outsider.claimDevice();
    await send(hs, alice, 'before the forged join');
    // A page (an XSS in the client) hands the worker a sync with a join the server never had.
    const forged = hs.event(
      ROOM,
      '@mallory:example.test',
      'm.room.member',
      { membership: 'join' },
      { state_key: '@mallory:example.test' },
    );
    await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [ROOM]: [forged] } }));
    const after = await send(hs, alice, 'after the forged join');

    assert.equal(memberLookups(hs), 2, 'the forged join made the next send ask the homeserver');
    assert.equal(await reads(hs, bob, after), 'after the forged join');
    assert.match(await reads(hs, outsider, after), /Unable to decrypt/, 'the outsider got the room key');
  });

  it('is loaded again after a gap in the timeline (limited), which may hide membership changes', async () => {
    const { hs, alice } = await room();
    await send(hs, alice, 'one');
    const gap = JSON.parse(hs.syncFor(ALICE, 'ALICEDEV', { timeline: { [ROOM]: [] } }));
    gap.rooms.join[ROOM].timeline.limited = true;
    await alice.processSync(JSON.stringify(gap));
    await send(hs, alice, 'two');
    assert.equal(memberLookups(hs), 2);
  });
});
