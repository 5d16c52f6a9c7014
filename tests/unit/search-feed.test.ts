/**
 * What the search index is fed from the crypto layer: every genuinely decrypted event
 * (not the notices that stand in for events Kirjava could not decrypt), and every
 * redaction. Real OlmMachines against the in-process fake homeserver.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { CryptoAccount } from '../../src/crypto/account.js';
import { FakeHomeserver } from './fake-homeserver.js';

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';

const opened: CryptoAccount[] = [];
afterEach(() => {
  for (const account of opened.splice(0)) account.close();
});

async function open(hs: FakeHomeserver, userId: string, deviceId: string): Promise<CryptoAccount> {
  const account = await CryptoAccount.open({ baseUrl: hs.baseUrl, userId, deviceId, accessToken: hs.login(userId, deviceId), fetchFn: hs.fetchFn });
  opened.push(account);
  await account.claimDevice();
  return account;
}

describe('The search feed of an account', () => {
  it('reports each decrypted message of a sync, but not undecryptable ones, and reports redactions', async () => {
    const hs = new FakeHomeserver();
    const alice = await open(hs, ALICE, 'ALICEDEV');
    const bob = await open(hs, BOB, 'BOBDEV');
    hs.setEncrypted(ROOM);
    hs.setMembership(ROOM, ALICE, 'join');
    hs.setMembership(ROOM, BOB, 'join');

    const decrypted: [string, string, unknown][] = [];
    const redacted: [string, string][] = [];
    const stop = bob.onDecrypted((roomId, event) => decrypted.push([roomId, event.event_id!, event.content?.body]));
    bob.onRedacted((roomId, id) => redacted.push([roomId, id]));

    const decision = await alice.prepareSend(ROOM, 'm.room.message', JSON.stringify({ msgtype: 'm.text', body: 'secret jam' }));
    assert.notEqual(decision, 'passthrough');
    if (decision === 'passthrough') return;
    const sent = hs.event(ROOM, ALICE, decision.eventType, JSON.parse(decision.body));
    const garbage = hs.event(ROOM, ALICE, 'm.room.encrypted', { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'AAAA', session_id: 'nope', sender_key: 'x', device_id: 'X' });
    const redaction = hs.event(ROOM, ALICE, 'm.room.redaction', {}, { redacts: '$gone' }); // before room v11
    const v11Redaction = hs.event(ROOM, ALICE, 'm.room.redaction', { redacts: '$gone-too' });
    await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: [sent, garbage, redaction, v11Redaction] } }));

    assert.deepEqual(decrypted, [[ROOM, sent.event_id, 'secret jam']]);
    assert.deepEqual(redacted, [[ROOM, '$gone'], [ROOM, '$gone-too']]);

    stop();
    await bob.processHistory(ROOM, JSON.stringify({ chunk: [sent] }));
    assert.equal(decrypted.length, 1, 'no report after the listener stopped');
  });
});
