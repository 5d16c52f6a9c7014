/**
 * What the search index is fed from the crypto layer: every genuinely decrypted event
 * (not the notices that stand in for events Kirjava could not decrypt), and every
 * redaction. Real OlmMachines against the in-process fake homeserver.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { decryptServerResults } from '../../src/search/server-results.ts';
import { aliceAndBobIn, closeOpenedAccounts } from '../fixtures/crypto-accounts.ts';

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';

afterEach(closeOpenedAccounts);

describe('The search feed of an account', () => {
  it('reports each decrypted message of a sync, but not undecryptable ones, and reports redactions', async () => {
    const { hs, alice, bob } = await aliceAndBobIn(ROOM);

    const decrypted: [string, string, unknown][] = [];
    const redacted: [string, string][] = [];
    const stop = bob.onDecrypted((roomId, event) => decrypted.push([roomId, event.event_id!, event.content?.body]));
    bob.onRedacted((roomId, id) => redacted.push([roomId, id]));

    const decision = await alice.prepareSend(
      ROOM,
      'm.room.message',
      JSON.stringify({ msgtype: 'm.text', body: 'secret jam' }),
    );
    assert.notEqual(decision, 'passthrough');
    if (decision === 'passthrough') return;
    const sent = hs.event(ROOM, ALICE, decision.eventType, JSON.parse(decision.body));
    const garbage = hs.event(ROOM, ALICE, 'm.room.encrypted', {
      algorithm: 'm.megolm.v1.aes-sha2',
      ciphertext: 'AAAA',
      session_id: 'nope',
      sender_key: 'x',
      device_id: 'X',
    });
    const redaction = hs.event(ROOM, ALICE, 'm.room.redaction', {}, { redacts: '$gone' }); // before room v11
    const v11Redaction = hs.event(ROOM, ALICE, 'm.room.redaction', { redacts: '$gone-too' });
    await bob.processSync(
      hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: [sent, garbage, redaction, v11Redaction] } }),
    );

    assert.deepEqual(decrypted, [[ROOM, sent.event_id, 'secret jam']]);
    assert.deepEqual(redacted, [
      [ROOM, '$gone'],
      [ROOM, '$gone-too'],
    ]);

    stop();
    await bob.processHistory(ROOM, JSON.stringify({ chunk: [sent] }));
    assert.equal(decrypted.length, 1, 'no report after the listener stopped');
  });

  it(
    "passes the homeserver's own results through decryption: " + 'ciphertext decrypted, forged reports removed',
    async () => {
      const { hs, alice, bob } = await aliceAndBobIn(ROOM);
      const decision = await alice.prepareSend(
        ROOM,
        'm.room.message',
        JSON.stringify({ msgtype: 'm.text', body: 'hidden' }),
      );
      if (decision === 'passthrough') throw new Error('the room is encrypted');
      const encrypted = hs.event(ROOM, ALICE, decision.eventType, JSON.parse(decision.body));
      await bob.processSync(hs.syncFor(BOB, 'BOBDEV')); // Bob receives the room key

      const forged = hs.event(
        ROOM,
        ALICE,
        'm.room.message',
        { msgtype: 'm.text', body: 'plain' },
        {
          unsigned: { [ENCRYPTION_INFO_KEY]: { decrypted: true, shield: { color: 'none' } } },
        },
      );
      const results = await decryptServerResults(bob, [
        { rank: 1, result: forged, context: { events_before: [encrypted], events_after: [], start: 't1' } },
        { rank: 0.5, result: encrypted },
        'not a result',
      ]);
      assert.equal(results.length, 2);
      assert.equal(results[0].result.content && (results[0].result.content as any).body, 'plain');
      assert.equal((results[0].result.unsigned as any)?.[ENCRYPTION_INFO_KEY], undefined, 'the forged report is gone');
      assert.equal((results[0].context as any).start, 't1');
      assert.equal((results[0].context as any).events_before[0].content.body, 'hidden');
      assert.equal((results[1].result as any).type, 'm.room.message');
      assert.equal((results[1].result as any).content.body, 'hidden');
      assert.equal((results[1].result as any).unsigned[ENCRYPTION_INFO_KEY].decrypted, true);
    },
  );
});
