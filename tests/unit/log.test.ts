/**
 * Kirjava's log keeps no secret: tokens, keys and ciphertext inside messages, fields and
 * errors come out as `[redacted]`, while the ids and counts that make a line useful stay.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { RingLog, errorText, loggerTo, scrub, type LogEntry } from '../../src/crypto/core/log.ts';
import type { SharingDecisions } from '../../src/crypto/send/sharing-policy.ts';
import { aliceAndBobIn, closeOpenedAccounts, readText } from '../fixtures/crypto-accounts.ts';

const TOKEN = 'syt_YWxpY2U_ZxJkWkVuUvtLmNoPqRsT_0hGdZt';
const CURVE_KEY = 'b4B6rT9n8kkZ0e5x3cKq8h7w2ZP1oN0yQmHkLzV3uXs';
const CIPHERTEXT = 'AwgAEpAB3f0mYhK9wzZ2N0yP7dq1o8pLrT4u5v6w7x8y9zABCDEFGHIJKLMNOPQRSTUVWXYZ';

describe('Log lines', () => {
  it('lose tokens, keys and ciphertext, keep ids and words', () => {
    const line = scrub(
      `PUT /rooms/!abc:example.org/send/m.room.encrypted/t1?access_token=${TOKEN} ` +
        `failed for $ev1 of @alice:example.org: ` +
        `key ${CURVE_KEY} ciphertext ${CIPHERTEXT} Bearer ${TOKEN}`,
    );
    for (const secret of [TOKEN, CURVE_KEY, CIPHERTEXT]) assert.ok(!line.includes(secret), `${secret} in ${line}`);
    for (const kept of [
      '!abc:example.org',
      '$ev1',
      '@alice:example.org',
      'access_token=[redacted]',
      'Bearer [redacted]',
    ]) {
      assert.ok(line.includes(kept), `${kept} missing from ${line}`);
    }
  });

  it('carry context fields (a request id) through `with`, scrubbed like the message', () => {
    const lines: LogEntry[] = [];
    const log = loggerTo((entry) => lines.push(entry)).with({ request: 'r7' });
    log
      .with({ room: '!r:x' })
      .warn(`share failed: ${TOKEN}`, { error: errorText(new Error(`M_UNKNOWN_TOKEN ${TOKEN}`)) });
    assert.equal(lines.length, 1);
    assert.equal(lines[0]!.level, 'warn');
    assert.deepEqual(lines[0]!.fields, { request: 'r7', room: '!r:x', error: 'Error: M_UNKNOWN_TOKEN [redacted]' });
    assert.equal(lines[0]!.message, 'share failed: [redacted]');
  });

  it('are kept in memory up to a bound, oldest dropped, filterable by level', () => {
    const ring = new RingLog(3, () => {});
    for (let i = 0; i < 5; i++) ring.logger.info(`line ${i}`);
    ring.logger.error('bad');
    assert.deepEqual(
      ring.recent().map((e) => e.message),
      ['line 3', 'line 4', 'bad'],
    );
    assert.deepEqual(
      ring.recent('warn').map((e) => e.message),
      ['bad'],
    );
  });

  it('follow a send by its request id through key sharing and encryption, with no token or plaintext', async () => {
    const room = '!logged:example.test';
    const { hs, alice, bob } = await aliceAndBobIn(room);
    try {
      const lines: LogEntry[] = [];
      const sendLog = loggerTo((entry) => lines.push(entry)).with({ request: 'p42' });
      const secret = 'The plaintext of a logged send';
      const content = JSON.stringify({ msgtype: 'm.text', body: secret });
      const decision = await alice.prepareSend(room, 'm.room.message', content, sendLog);
      assert.notEqual(decision, 'passthrough');
      const steps = lines.map((entry) => entry.message);
      assert.ok(steps.includes('room key shared'), steps.join(' | '));
      assert.ok(steps.includes('encrypted'), steps.join(' | '));
      assert.ok(
        lines.every((entry) => entry.fields.request === 'p42'),
        'a line lost the request id',
      );
      const event = hs.event(
        room,
        alice.identity.userId,
        'm.room.encrypted',
        JSON.parse((decision as { body: string }).body),
      );
      assert.equal(await readText(hs, bob, room, event), secret);
      const written = JSON.stringify(lines);
      assert.ok(!written.includes(secret), 'the plaintext is in the log');
      assert.ok(!written.includes(hs.login(alice.identity.userId, 'ALICEDEV')), 'a token is in the log');
    } finally {
      closeOpenedAccounts();
    }
  });

  it("carry a send's request id through its key sharing decision, and the user's answer", async () => {
    const room = '!asked:example.test';
    const sharing: SharingDecisions = { policyFor: async () => 'ask', ask: async () => 'send' };
    const { alice } = await aliceAndBobIn(room, sharing);
    try {
      const lines: LogEntry[] = [];
      const sendLog = loggerTo((entry) => lines.push(entry)).with({ request: 'p43' });
      const content = JSON.stringify({ msgtype: 'm.text', body: 'asked first' });
      assert.notEqual(await alice.prepareSend(room, 'm.room.message', content, sendLog), 'passthrough');
      const approval = lines.filter((entry) =>
        ['key sharing policy', 'asking the user about unverified devices', 'the user answered'].includes(entry.message),
      );
      assert.deepEqual(
        approval.map((entry) => entry.fields),
        [
          { request: 'p43', room, policy: 'ask' },
          { request: 'p43', room, devices: 1 },
          { request: 'p43', room, answer: 'send' },
        ],
      );
    } finally {
      closeOpenedAccounts();
    }
  });
});
