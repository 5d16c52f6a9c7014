/**
 * The page hook sends the worker only part of a /sync body and splices the answer back
 * (src/content/sync-splice.ts). Whatever the body, the page must end up with exactly what
 * the worker would have returned for the whole body.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { CryptoAccount } from '../../src/crypto/account.ts';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { ENCRYPTION_INFO_KEY as HOOK_INFO_KEY, JOINED_ROOMS_KEY, SyncSplice } from '../../src/content/sync-splice.ts';
import { aliceAndBobIn, sendText } from '../fixtures/crypto-accounts.ts';
import type { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';
const OTHER_ROOM = '!other:example.test';

let hs: FakeHomeserver;
let alice: CryptoAccount;
let bob: CryptoAccount;
const pool: Json[] = [];

before(async () => {
  ({ hs, alice, bob } = await aliceAndBobIn(ROOM));
  for (const body of ['first', 'second', 'third']) {
    pool.push(await sendText(hs, alice, ROOM, body));
  }
  await bob.processSync(hs.syncFor(BOB, 'BOBDEV'));
});

after(() => {
  alice?.close();
  bob?.close();
});

/** The page's path: part to the worker, answer spliced back. */
async function throughSplice(text: string): Promise<string> {
  const splice = SyncSplice.of(text);
  if (!splice) return bob.processSync(text);
  if (splice.empty) return text;
  const merged = splice.merge(await bob.processSync(splice.part));
  return merged ? JSON.stringify(merged) : text;
}

const plain = fc.record({
  event_id: fc.constantFrom('$p1', '$p2', '$p3'),
  type: fc.constantFrom('m.room.message', 'm.reaction', 'm.room.member'),
  sender: fc.constantFrom(ALICE, BOB),
  content: fc.constantFrom({ msgtype: 'm.text', body: 'hi' }, {}),
  unsigned: fc.constantFrom(undefined, { age: 3 }, { [ENCRYPTION_INFO_KEY]: { decrypted: true } }),
});
const event = fc.oneof(
  fc.integer({ min: 0, max: 2 }).map((i) => structuredClone(pool[i])),
  plain,
  fc.constant({
    type: 'm.room.encrypted',
    event_id: '$bad',
    sender: ALICE,
    content: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: 'nope', session_id: 'x' },
  }),
  fc.constant({ type: 'm.room.encrypted', event_id: '$odd', content: 'not an object' }),
  fc.constant({ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }),
  fc.jsonValue({ maxDepth: 1 }),
);
const room = fc.record(
  {
    state: fc.record({ events: fc.array(event, { maxLength: 3 }) }),
    timeline: fc.oneof(
      fc.record({ events: fc.array(event, { maxLength: 8 }), limited: fc.boolean() }),
      fc.constant('junk'),
    ),
  },
  { requiredKeys: [] },
);
const sync = fc.record(
  {
    next_batch: fc.constant('s1'),
    to_device: fc.record({
      events: fc.array(
        fc.oneof(
          fc.constant({
            type: 'm.room.encrypted',
            sender: ALICE,
            content: { algorithm: 'm.olm.v1.curve25519-aes-sha2', ciphertext: {} },
          }),
          fc.constant({ type: 'm.dummy', sender: ALICE, content: {} }),
        ),
        { maxLength: 3 },
      ),
    }),
    device_one_time_keys_count: fc.constant({ signed_curve25519: 50 }),
    device_unused_fallback_key_types: fc.constant(['signed_curve25519']),
    device_lists: fc.constant({ changed: [ALICE], left: [] }),
    account_data: fc.constant({ events: [{ type: 'm.push_rules', content: {} }] }),
    rooms: fc.record(
      {
        join: fc.dictionary(fc.constantFrom(ROOM, OTHER_ROOM), room),
        leave: fc.dictionary(fc.constantFrom(ROOM), room),
        invite: fc.constant({}),
      },
      { requiredKeys: [] },
    ),
  },
  { requiredKeys: ['next_batch'] },
);

describe('SyncSplice (the hook sends the worker only its part of a /sync)', () => {
  it('spells the decryption report key as the worker does', () => {
    assert.equal(HOOK_INFO_KEY, ENCRYPTION_INFO_KEY);
  });

  it('gives the page exactly the body the worker returns for the whole sync', async () => {
    await fc.assert(
      fc.asyncProperty(sync, async (body) => {
        const text = JSON.stringify(body);
        const whole = JSON.parse(await bob.processSync(text));
        const spliced = JSON.parse(await throughSplice(text));
        assert.deepEqual(spliced, whole);
      }),
      { numRuns: 150, includeErrorInReport: true },
    );
  });

  it('sends no event of rooms without encryption (only their ids, for the send guard), and nothing to wait for', () => {
    const body = {
      next_batch: 's',
      device_one_time_keys_count: { signed_curve25519: 3 },
      rooms: {
        join: {
          [OTHER_ROOM]: { timeline: { events: [{ type: 'm.room.message', content: { body: 'x'.repeat(10_000) } }] } },
        },
      },
    };
    assert.deepEqual(JSON.parse(SyncSplice.of(JSON.stringify(body))!.part), {
      device_one_time_keys_count: { signed_curve25519: 3 },
      [JOINED_ROOMS_KEY]: [OTHER_ROOM],
    });
    const roomsOnly = SyncSplice.of(JSON.stringify({ next_batch: 's', rooms: body.rooms }))!;
    assert.deepEqual(JSON.parse(roomsOnly.part), { [JOINED_ROOMS_KEY]: [OTHER_ROOM] });
    assert.equal(roomsOnly.needsAnswer, false);
    assert.equal(SyncSplice.of(JSON.stringify({ next_batch: 's' }))!.empty, true);
  });

  it('leaves bodies that are not a JSON object to the worker whole', () => {
    for (const text of ['', '[]', 'null', '{"a":', '"s"']) assert.equal(SyncSplice.of(text), undefined);
  });

  it(
    'appends the events the worker adds (edits that heal earlier notices), ' + 'also for rooms this sync did not carry',
    () => {
      const body = {
        next_batch: 's2',
        to_device: { events: [] },
        rooms: { join: { [ROOM]: { timeline: { events: [pool[0]] } } } },
      };
      const splice = SyncSplice.of(JSON.stringify(body))!;
      const heal = (id: string) => ({
        event_id: id,
        type: 'm.room.message',
        sender: ALICE,
        content: { body: '* healed' },
      });
      const answer = {
        rooms: {
          join: {
            [ROOM]: { timeline: { events: [{ ...pool[0], type: 'm.room.message' }, heal('$h1')] } },
            [OTHER_ROOM]: { timeline: { events: [heal('$h2')] } },
          },
        },
      };
      const merged = splice.merge(JSON.stringify(answer)) as Json;
      assert.deepEqual(
        merged.rooms.join[ROOM].timeline.events.map((e: Json) => [e.event_id, e.type]),
        [
          [pool[0].event_id, 'm.room.message'],
          ['$h1', 'm.room.message'],
        ],
      );
      assert.deepEqual(
        merged.rooms.join[OTHER_ROOM].timeline.events.map((e: Json) => e.event_id),
        ['$h2'],
      );
    },
  );

  it("sends an encrypted room's counts and receipts along and puts the worker's highlight count back", () => {
    const encrypted = new Set<string>([ROOM]);
    const receipt = { type: 'm.receipt', content: {} };
    const body = {
      rooms: {
        join: {
          [ROOM]: {
            timeline: { events: [] },
            ephemeral: { events: [receipt, { type: 'm.typing', content: {} }] },
            unread_notifications: { highlight_count: 0, notification_count: 2 },
          },
          [OTHER_ROOM]: {
            timeline: { events: [] },
            unread_notifications: { highlight_count: 0, notification_count: 1 },
          },
        },
      },
    };
    const splice = SyncSplice.of(JSON.stringify(body), encrypted)!;
    const part = JSON.parse(splice.part);
    assert.deepEqual(
      Object.keys(part.rooms.join),
      [ROOM],
      'an unencrypted room with nothing encrypted went to the worker',
    );
    assert.deepEqual(part.rooms.join[ROOM].ephemeral.events, [receipt]);
    const answer = {
      rooms: {
        join: {
          [ROOM]: { ...part.rooms.join[ROOM], unread_notifications: { highlight_count: 1, notification_count: 2 } },
        },
      },
    };
    const merged = splice.merge(JSON.stringify(answer)) as Json;
    assert.deepEqual(merged.rooms.join[ROOM].unread_notifications, { highlight_count: 1, notification_count: 2 });
    assert.deepEqual(merged.rooms.join[OTHER_ROOM].unread_notifications, { highlight_count: 0, notification_count: 1 });
  });
});
