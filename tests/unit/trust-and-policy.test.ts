/**
 * Device trust and the key sharing policy against the in-process fake homeserver:
 * real OlmMachines decide who gets the room key; only the server and the user's answers are
 * fake.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CryptoAccount } from '../../src/crypto/account.ts';
import { MatrixApiError } from '../../src/crypto/core/http.ts';
import type { SharingDecisions } from '../../src/crypto/send/sharing-policy.ts';
import type { DeviceView, SharingPolicy } from '../../src/shared/messages.ts';
import { aliceAndBobIn, closeOpenedAccounts } from '../fixtures/crypto-accounts.ts';
import type { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';

afterEach(closeOpenedAccounts);

const aliceAndBob = (aliceSharing?: SharingDecisions) => aliceAndBobIn(ROOM, aliceSharing);

/** Alice sends `body`; returns what Bob's next sync shows for it. */
async function bobReads(hs: FakeHomeserver, alice: CryptoAccount, bob: CryptoAccount, body: string): Promise<Json> {
  const decision = await alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body }));
  assert.notEqual(decision, 'passthrough');
  if (decision === 'passthrough') throw new Error('unreachable');
  const envelope = hs.event(ROOM, ALICE, decision.eventType, JSON.parse(decision.body));
  const synced = JSON.parse(await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: [envelope] } })));
  return synced.rooms.join[ROOM].timeline.events[0];
}

/** The user's answers, recorded; `policy` may change between sends. */
function answering(policy: SharingPolicy | (() => SharingPolicy), answers: ('send' | 'cancel' | 'timeout')[]) {
  const asked: DeviceView[][] = [];
  const decisions: SharingDecisions = {
    policyFor: async () => (typeof policy === 'function' ? policy() : policy),
    ask: async (_roomId, devices) => {
      asked.push(devices);
      return answers.shift() ?? 'timeout';
    },
  };
  return { decisions, asked };
}

describe('device trust', () => {
  it("lists Bob's device once Alice shares a room with him, and each action changes its trust state", async () => {
    const { hs, alice, bob } = await aliceAndBob();
    await bobReads(hs, alice, bob, 'hello'); // Alice now tracks Bob

    const [device] = (await alice.devices.list()).filter((d) => d.userId === BOB);
    assert.equal(device.deviceId, 'BOBDEV');
    assert.equal(device.ed25519, bob.ed25519);
    assert.equal(device.trust, 'unverified');
    assert.equal(device.own, false);

    const steps: [Parameters<CryptoAccount['devices']['apply']>[2], string][] = [
      ['trust-locally', 'trusted-locally'],
      ['verify', 'verified'],
      ['unverify', 'unverified'],
      ['blacklist', 'blacklisted'],
      ['unblacklist', 'unverified'],
    ];
    for (const [action, state] of steps) {
      assert.equal((await alice.devices.apply(BOB, 'BOBDEV', action)).trust, state, action);
    }
  });

  it(
    'a blacklisted device gets no room key (it cannot decrypt), ' + 'and gets the next one once unblacklisted',
    async () => {
      const { hs, alice, bob } = await aliceAndBob();
      assert.equal((await bobReads(hs, alice, bob, 'before')).content.body, 'before');

      await alice.devices.apply(BOB, 'BOBDEV', 'blacklist');
      const hidden = await bobReads(hs, alice, bob, 'while blacklisted');
      assert.match(hidden.content.body, /Unable to decrypt/);
      assert.ok(!JSON.stringify(hidden).includes('while blacklisted'));

      await alice.devices.apply(BOB, 'BOBDEV', 'unblacklist');
      assert.equal((await bobReads(hs, alice, bob, 'after')).content.body, 'after');
    },
  );

  it('an unknown device is refused with what to do', async () => {
    const { alice } = await aliceAndBob();
    await assert.rejects(alice.devices.apply(BOB, 'NOSUCHDEV', 'verify'), /refresh the list/);
  });
});

describe('sharing policy', () => {
  it(
    '"ask": the send waits for the answer; "send" delivers, ' + 'and the same devices are not asked about again',
    async () => {
      const { decisions, asked } = answering('ask', ['send']);
      const { hs, alice, bob } = await aliceAndBob(decisions);

      assert.equal((await bobReads(hs, alice, bob, 'first')).content.body, 'first');
      assert.deepEqual(
        asked.map((devices) => devices.map((d) => d.deviceId)),
        [['BOBDEV']],
      );
      assert.equal((await bobReads(hs, alice, bob, 'second')).content.body, 'second');
      assert.equal(asked.length, 1);
    },
  );

  it('"ask": two sends at once share one question and both go out after "send"', async () => {
    const { decisions, asked } = answering('ask', ['send']);
    const { hs, alice, bob } = await aliceAndBob(decisions);

    const [one, two] = await Promise.all([bobReads(hs, alice, bob, 'one'), bobReads(hs, alice, bob, 'two')]);
    assert.equal(asked.length, 1);
    assert.deepEqual([one.content.body, two.content.body], ['one', 'two']);
  });

  it('"ask": "cancel" and no answer refuse the send with a 403 Matrix error that says what to do', async () => {
    const { alice } = await aliceAndBob(answering('ask', ['cancel', 'timeout']).decisions);
    const send = () => alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'x' }));

    await assert.rejects(send(), (error: unknown) => {
      assert.ok(error instanceof MatrixApiError);
      assert.equal(error.status, 403);
      assert.equal(error.errcode, 'M_FORBIDDEN');
      assert.match(error.serverMessage, /cancelled .* Verify or blacklist them/);
      return true;
    });
    await assert.rejects(send(), /nobody answered/);
  });

  it('"ask": a device the user verified (or trusts locally) is not asked about', async () => {
    let policy: SharingPolicy = 'all';
    const { decisions, asked } = answering(() => policy, []);
    const { hs, alice, bob } = await aliceAndBob(decisions);
    await bobReads(hs, alice, bob, 'track bob');
    await alice.devices.apply(BOB, 'BOBDEV', 'trust-locally');
    policy = 'ask';

    assert.equal((await bobReads(hs, alice, bob, 'no question')).content.body, 'no question');
    assert.equal(asked.length, 0);
  });

  it(
    '"cross-signed" on an account without cross-signing refuses the send (403) ' +
      'and says what to do, instead of failing inside the library',
    async () => {
      const { alice } = await aliceAndBob(answering('cross-signed', []).decisions);

      await assert.rejects(
        alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'x' })),
        (error: unknown) =>
          error instanceof MatrixApiError &&
          error.status === 403 &&
          /no cross-signing yet.*options/.test(error.serverMessage),
      );
    },
  );
});
