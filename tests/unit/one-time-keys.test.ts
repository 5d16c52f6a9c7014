/**
 * One-time keys on a device the server already holds many for (a device taken over after
 * page reloads): Kirjava asks the server how many it holds and never takes it over its
 * limit, and a keys upload the server refuses heals instead of failing every send after it.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { closeOpenedAccounts, openAccount, readText, sendText } from '../fixtures/crypto-accounts.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!otk:example.test';

afterEach(closeOpenedAccounts);

/** A server with Synapse's one-time key limit, where Alice's device already holds `held` keys. */
async function givenADeviceHolding(held: number, limit: number) {
  const hs = new FakeHomeserver();
  hs.oneTimeKeyLimit = limit;
  const token = hs.login(ALICE, 'ALICEDEV');
  hs.addOneTimeKeys(ALICE, 'ALICEDEV', held);
  const refused: string[] = [];
  const fetchFn: typeof hs.fetchFn = async (input, init) => {
    const response = await hs.fetchFn(input, init);
    if (response.status === 400) refused.push(await response.clone().text());
    return response;
  };
  const bob = await openAccount(hs, BOB, 'BOBDEV', { claim: true });
  hs.setEncrypted(ROOM);
  hs.setMembership(ROOM, ALICE, 'join');
  hs.setMembership(ROOM, BOB, 'join');
  return { hs, bob, refused, open: () => openAccount(hs, ALICE, 'ALICEDEV', { accessToken: token, fetchFn }) };
}

describe('One-time keys on a device the server already holds keys for', () => {
  it('480 held, limit 500: Kirjava uploads its device keys but no one-time keys, and never hears 400', async () => {
    const { hs, bob, refused, open } = await givenADeviceHolding(480, 500);
    const alice = await open();
    await alice.claimDevice();
    assert.deepEqual(refused, []);
    assert.equal(hs.oneTimeKeyCount(ALICE, 'ALICEDEV'), 480);
    // The machine now believes the server's count: later runs upload nothing more.
    await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV'));
    await alice.flushOutgoingQueued();
    assert.equal(hs.oneTimeKeyCount(ALICE, 'ALICEDEV'), 480);
    const event = await sendText(hs, alice, ROOM, 'hello from a device taken over');
    assert.equal(await readText(hs, bob, ROOM, event), 'hello from a device taken over');
  });

  it('a refused upload (30 held, limit 60) heals: the device keys go up, every send encrypts', async () => {
    const { hs, bob, refused, open } = await givenADeviceHolding(30, 60);
    const alice = await open();
    await alice.claimDevice();
    assert.equal(refused.length, 1, 'the server refused the 50 one-time keys once');
    assert.match(refused[0], /M_TOO_LARGE/);
    assert.ok(hs.oneTimeKeyCount(ALICE, 'ALICEDEV') <= 60);
    for (const text of ['first', 'second']) {
      await alice.processSync(hs.syncFor(ALICE, 'ALICEDEV'));
      await alice.flushOutgoingQueued();
      const event = await sendText(hs, alice, ROOM, text);
      assert.equal(await readText(hs, bob, ROOM, event), text);
    }
    assert.equal(refused.length, 1, 'not refused again');
  });

  it('a device with few keys on the server gets its 50 one-time keys as before', async () => {
    const { hs, refused, open } = await givenADeviceHolding(0, 500);
    const alice = await open();
    await alice.claimDevice();
    assert.deepEqual(refused, []);
    assert.equal(hs.oneTimeKeyCount(ALICE, 'ALICEDEV'), 50);
  });
});
