/**
 * Property-based checks that the worker's body transforms survive whatever a homeserver
 * (or anyone who can put an event in a room) sends: processSync and processHistory must
 * never throw, and must never drop, reorder or alter an event they do not decrypt. A
 * throw is not harmless: the hook then refuses the whole /sync, the client retries the
 * same request, and the account stops syncing for as long as the bad input is in it.
 *
 * Bob's account holds the keys of a few real messages from Alice (the "pool"), so the
 * generated timelines mix events that decrypt, events that cannot, plain events and junk.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RoomId } from '@matrix-org/matrix-sdk-crypto-wasm';
import fc from 'fast-check';
import { CryptoAccount } from '../../src/crypto/account.ts';
import { aliceAndBobIn, sendText } from '../fixtures/crypto-accounts.ts';
import type { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';
const RUNS = { numRuns: 100, includeErrorInReport: true };

let hs: FakeHomeserver;
let alice: CryptoAccount;
let bob: CryptoAccount;
/** Real envelopes from Alice in ROOM whose keys Bob has, with their plaintext bodies. */
const pool: { envelope: Json; body: string }[] = [];

before(async () => {
  ({ hs, alice, bob } = await aliceAndBobIn(ROOM));
  for (const body of ['first', 'second with ünïcödé 😀', 'third']) {
    pool.push({ envelope: await sendText(hs, alice, ROOM, body), body });
  }
  await bob.processSync(hs.syncFor(BOB, 'BOBDEV')); // the room keys
});

after(() => {
  alice?.close();
  bob?.close();
});

// ---- arbitraries ----------------------------------------------------------------------

const oddText = fc.oneof(
  fc.string({ maxLength: 12 }),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
  fc.string({ unit: 'binary', maxLength: 12 }),
  fc.constantFrom(
    'a/b',
    '%2F',
    '%',
    '%E0%A4%A',
    '../..',
    'räum',
    '例え',
    '\u0000',
    '\ud800',
    '😀',
    ' ',
    ':',
    '?#&',
    '__proto__',
  ),
);
const oddId = (sigil: string) =>
  fc
    .tuple(fc.array(oddText, { maxLength: 3 }), fc.option(oddText))
    .map(([parts, server]) => sigil + parts.join('') + (server === null ? '' : `:${server}`));
/** Room ids with the right sigil but anything after it. */
const roomId = oddId('!');
/** The odd room ids the crypto library itself accepts (it refuses e.g. a NUL). */
const acceptedRoomId = roomId.filter((id) => {
  try {
    new RoomId(id).free();
    return true;
  } catch {
    return false;
  }
});
const eventId = fc.oneof(oddId('$'), oddText);
const userId = fc.oneof(fc.constantFrom(ALICE, BOB, '@mallory:evil.test'), oddId('@'), oddText);
const junk = fc.jsonValue({ maxDepth: 2 });
/** Usually the right shape, sometimes any JSON value in its place. */
const maybe = <T>(arbitrary: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary }, { weight: 1, arbitrary: junk });
const optional = <T>(arbitrary: fc.Arbitrary<T>) => fc.option(arbitrary, { nil: undefined });

/** A relation as clients send it (an object), or none. */
const relation = optional(
  fc.oneof(
    fc.record(
      {
        rel_type: fc.constantFrom('m.thread', 'm.replace', 'm.annotation', 'm.reference', 'x'),
        event_id: eventId,
        key: oddText,
      },
      { requiredKeys: ['rel_type'] },
    ),
    fc.record({ 'm.in_reply_to': fc.record({ event_id: eventId }) }),
    fc.dictionary(fc.string(), junk, { maxKeys: 3 }),
  ),
);

const encryptedContent = (relates: fc.Arbitrary<unknown>) =>
  fc.record(
    {
      algorithm: fc.constantFrom('m.megolm.v1.aes-sha2', 'm.olm.v1.curve25519-aes-sha2', 'x'),
      ciphertext: fc.oneof(fc.base64String({ maxLength: 200 }), oddText, junk),
      session_id: fc.oneof(oddText, junk),
      sender_key: fc.oneof(oddText, junk),
      device_id: fc.oneof(oddText, junk),
      'm.relates_to': relates,
    },
    { requiredKeys: [] },
  );

/** An m.room.encrypted event that cannot decrypt; any field may be missing. */
const undecryptable = (relates: fc.Arbitrary<unknown> = relation) =>
  fc.record(
    {
      type: fc.constant('m.room.encrypted'),
      event_id: eventId,
      sender: userId,
      origin_server_ts: fc.oneof(fc.nat(), junk),
      content: encryptedContent(relates),
      unsigned: optional(fc.dictionary(fc.string(), junk, { maxKeys: 3 })),
    },
    { requiredKeys: ['type', 'content'] },
  );

/** Any event that is not m.room.encrypted, fields possibly missing or odd. */
const plainEvent = fc
  .record(
    {
      type: fc.oneof(
        fc.constantFrom('m.room.message', 'm.reaction', 'm.room.member', 'm.room.encryption', 'm.room.redaction'),
        oddText,
      ),
      event_id: eventId,
      sender: userId,
      origin_server_ts: fc.oneof(fc.nat(), junk),
      state_key: optional(fc.oneof(fc.constant(''), oddText)),
      content: maybe(fc.dictionary(fc.string(), junk, { maxKeys: 4 })),
      unsigned: optional(fc.dictionary(fc.string(), junk, { maxKeys: 3 })),
    },
    { requiredKeys: [] },
  )
  .filter((event) => event.type !== 'm.room.encrypted');

const poolEvent = fc.integer({ min: 0, max: 2 }).map((i) => structuredClone(pool[i].envelope));

/** One timeline entry: plain, undecryptable, junk, and (in ROOM) decryptable. */
const entry = (withPool: boolean) =>
  fc.oneof(plainEvent, undecryptable(), junk, ...(withPool ? [{ weight: 2, arbitrary: poolEvent }] : []));

// ---- checks ---------------------------------------------------------------------------

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const decryptable = (event: unknown): event is Json =>
  isObject(event) && event.type === 'm.room.encrypted' && isObject(event.content);

/** Every input event is at its index in the output; plain ones unchanged, encrypted ones replaced in place. */
function assertSameTimeline(input: unknown[], output: unknown[], roomId: string): void {
  assert.ok(Array.isArray(output), 'timeline is still a list');
  assert.equal(output.length, input.length, 'no event dropped or added');
  input.forEach((before, i) => {
    const after = output[i] as Json;
    if (!decryptable(before)) {
      assert.equal(JSON.stringify(after), JSON.stringify(before), `event ${i} changed`);
      return;
    }
    assert.ok(isObject(after), `event ${i} is an event`);
    assert.notEqual(after.type, 'm.room.encrypted', `event ${i} was left encrypted`);
    for (const field of ['event_id', 'sender', 'origin_server_ts'] as const) {
      assert.deepEqual(after[field], before[field], `event ${i} ${field}`);
    }
    const known = pool.find((p) => p.envelope.event_id === before.event_id);
    if (known && roomId === ROOM) assert.equal(after.content.body, known.body, `event ${i} decrypts`);
  });
}

const processSync = async (body: unknown): Promise<Json> => JSON.parse(await bob.processSync(JSON.stringify(body)));

// ---- properties -----------------------------------------------------------------------

describe('processSync on hostile input', () => {
  it('returns any text that is not a JSON object unchanged, and never throws', async () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      junk.map((value) => JSON.stringify(value)),
      fc.tuple(fc.jsonValue(), fc.nat()).map(([value, cut]) => JSON.stringify(value).slice(0, cut)),
      fc.constantFrom('', 'null', '[]', '"{}"', '{', '{"rooms":', '\ufeff{}', 'NaN', '{"a":1}garbage'),
    );
    await fc.assert(
      fc.asyncProperty(text, async (body) => {
        const out = await bob.processSync(body);
        const parsed = parsedOrUndefined(body);
        if (!isObject(parsed)) assert.equal(out, body);
        else JSON.parse(out);
      }),
      RUNS,
    );
  });

  it('never throws on JSON of the wrong type at any level', async () => {
    const events = maybe(fc.array(fc.oneof(plainEvent, undecryptable(), junk), { maxLength: 4 }));
    const room = maybe(
      fc.record(
        {
          timeline: maybe(
            fc.record({ events, limited: maybe(fc.boolean()), prev_batch: maybe(oddText) }, { requiredKeys: [] }),
          ),
          state: maybe(fc.record({ events }, { requiredKeys: [] })),
          account_data: junk,
        },
        { requiredKeys: [] },
      ),
    );
    const section = maybe(fc.dictionary(acceptedRoomId, room, { maxKeys: 3 }));
    const sync = fc.record(
      {
        next_batch: maybe(oddText),
        rooms: maybe(fc.record({ join: section, leave: section, invite: section }, { requiredKeys: [] })),
        to_device: maybe(
          fc.record(
            {
              events: maybe(
                fc.array(
                  maybe(
                    fc.record(
                      {
                        type: maybe(fc.constantFrom('m.room.encrypted', 'm.room_key', 'm.dummy')),
                        sender: maybe(userId),
                        content: junk,
                      },
                      { requiredKeys: [] },
                    ),
                  ),
                  { maxLength: 3 },
                ),
              ),
            },
            { requiredKeys: [] },
          ),
        ),
        device_lists: maybe(
          fc.record(
            {
              changed: maybe(fc.array(maybe(userId), { maxLength: 3 })),
              left: maybe(fc.array(maybe(userId), { maxLength: 3 })),
            },
            { requiredKeys: [] },
          ),
        ),
        device_one_time_keys_count: maybe(
          fc.dictionary(oddText, maybe(fc.oneof(fc.integer(), fc.double())), { maxKeys: 3 }),
        ),
        device_unused_fallback_key_types: maybe(fc.array(maybe(oddText), { maxLength: 3 })),
        'org.matrix.msc2732.device_unused_fallback_key_types': maybe(fc.array(maybe(oddText), { maxLength: 3 })),
      },
      { requiredKeys: [] },
    );
    await fc.assert(
      fc.asyncProperty(sync, async (body) => void (await processSync(body))),
      RUNS,
    );
  });

  it(
    'keeps every timeline event at its index: ' + 'plain ones byte-for-byte, encrypted ones decrypted in place',
    async () => {
      const timeline = (withPool: boolean) => fc.array(entry(withPool), { maxLength: 8 });
      // Room ids the library refuses have their own property below.
      const rooms = fc.dictionary(acceptedRoomId, timeline(false), { maxKeys: 3 });
      await fc.assert(
        fc.asyncProperty(timeline(true), rooms, rooms, rooms, async (inRoom, joined, left, invited) => {
          const section = (byRoom: Record<string, unknown[]>) =>
            Object.fromEntries(
              Object.entries(byRoom).map(([id, events]) => [id, { timeline: { events, limited: false } }]),
            );
          const input = JSON.parse(
            JSON.stringify({
              next_batch: 's1',
              rooms: {
                join: { ...section(joined), [ROOM]: { timeline: { events: inRoom } } },
                leave: section(left),
                invite: { ...section(invited) },
              },
            }),
          );
          const output = await processSync(input);
          for (const kind of ['join', 'leave'] as const) {
            assert.deepEqual(Object.keys(output.rooms[kind]), Object.keys(input.rooms[kind]));
            for (const [id, room] of Object.entries<Json>(input.rooms[kind])) {
              assertSameTimeline(room.timeline.events, output.rooms[kind][id].timeline.events, id);
            }
          }
          assert.equal(JSON.stringify(output.rooms.invite), JSON.stringify(input.rooms.invite), 'invites untouched');
          assert.equal(output.next_batch, 's1');
        }),
        RUNS,
      );
    },
  );

  it('never throws on an undecryptable event whose m.relates_to is not an object', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(undecryptable(junk), { minLength: 1, maxLength: 3 }), async (generated) => {
        const events = JSON.parse(JSON.stringify(generated));
        const output = await processSync({ rooms: { join: { [ROOM]: { timeline: { events } } } } });
        assertSameTimeline(events, output.rooms.join[ROOM].timeline.events, ROOM);
      }),
      {
        ...RUNS,
        examples: [
          [
            [
              {
                type: 'm.room.encrypted',
                event_id: '$e',
                sender: ALICE,
                origin_server_ts: 1,
                content: { 'm.relates_to': 'reply' },
              },
            ],
          ],
        ],
      },
    );
  });

  it('never throws whatever the room id keys are, even with an m.room.encryption event in the room', async () => {
    const encryption = {
      type: 'm.room.encryption',
      state_key: '',
      event_id: '$enc',
      sender: ALICE,
      content: { algorithm: 'm.megolm.v1.aes-sha2' },
    };
    await fc.assert(
      fc.asyncProperty(fc.oneof(oddText, roomId), fc.constantFrom('join', 'leave'), async (id, kind) => {
        const output = await processSync({
          rooms: { [kind]: { [id]: { state: { events: [encryption] }, timeline: { events: [] } } } },
        });
        assert.deepEqual(output.rooms[kind][id].state.events, [encryption]);
      }),
      { ...RUNS, examples: [['not-a-room-id', 'join']] },
    );
  });

  it('survives huge strings: a 2 MB body, a 2 MB ciphertext, 100 000-character room and event ids', async () => {
    const big = 'x'.repeat(2_000_000);
    const longRoom = `!${'r'.repeat(100_000)}:example.test`;
    const plain = {
      type: 'm.room.message',
      event_id: `$${'e'.repeat(100_000)}`,
      sender: ALICE,
      origin_server_ts: 1,
      content: { msgtype: 'm.text', body: big },
    };
    const encrypted = {
      ...pool[0].envelope,
      event_id: '$big',
      content: { ...pool[0].envelope.content, ciphertext: big },
    };
    const input = {
      rooms: {
        join: {
          [ROOM]: { timeline: { events: [plain, encrypted, pool[1].envelope] } },
          [longRoom]: { timeline: { events: [plain] } },
        },
      },
    };

    const output = await processSync(input);

    assertSameTimeline(input.rooms.join[ROOM].timeline.events, output.rooms.join[ROOM].timeline.events, ROOM);
    assertSameTimeline([plain], output.rooms.join[longRoom].timeline.events, longRoom);
  });

  it('survives an event whose content is nested 10 000 levels deep', async () => {
    const deep = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
    const body =
      `{"rooms":{"join":{"${ROOM}":{"timeline":{"events":[` +
      `{"type":"m.room.message","event_id":"$deep","sender":"${ALICE}","origin_server_ts":1,` +
      `"content":{"nested":${deep}}}` +
      `]}}}}}`;
    await assert.doesNotReject(bob.processSync(body));
  });
});

describe('processHistory on hostile input', () => {
  it('returns any text that is not a JSON object unchanged, and never throws', async () => {
    const text = fc.oneof(
      fc.string(),
      fc.string({ unit: 'binary' }),
      junk.map((value) => JSON.stringify(value)),
    );
    await fc.assert(
      fc.asyncProperty(text, acceptedRoomId, async (body, id) => {
        const out = await bob.processHistory(id, body);
        const parsed = parsedOrUndefined(body);
        if (!isObject(parsed)) assert.equal(out, body);
      }),
      RUNS,
    );
  });

  it(
    'keeps /messages and /context events at their index, ' + 'decrypted in place, whatever the other fields are',
    async () => {
      const list = maybe(fc.array(entry(true), { maxLength: 6 }));
      const body = fc.record(
        {
          chunk: list,
          state: list,
          events_before: list,
          events_after: list,
          event: maybe(entry(true)),
          start: maybe(oddText),
          end: maybe(oddText),
        },
        { requiredKeys: [] },
      );
      await fc.assert(
        fc.asyncProperty(
          body,
          fc.oneof({ weight: 3, arbitrary: fc.constant(ROOM) }, { weight: 1, arbitrary: acceptedRoomId }),
          async (generated, id) => {
            const input = JSON.parse(JSON.stringify(generated));
            const output = JSON.parse(await bob.processHistory(id, JSON.stringify(input)));
            if (input.type === 'm.room.encrypted') return; // a body that is itself an event: the next property
            for (const key of ['chunk', 'events_before', 'events_after'] as const) {
              if (Array.isArray(input[key])) assertSameTimeline(input[key], output[key], id);
              else assert.equal(JSON.stringify(output[key]), JSON.stringify(input[key]), key);
            }
            assert.equal(JSON.stringify(output.state), JSON.stringify(input.state), 'state untouched');
            if ('event' in input) assertSameTimeline([input.event], [output.event], id);
          },
        ),
        RUNS,
      );
    },
  );

  it('decrypts a bare /event body in place, or leaves it as it was', async () => {
    await fc.assert(
      fc.asyncProperty(fc.oneof(poolEvent, undecryptable(), plainEvent), async (event) => {
        const input = JSON.parse(JSON.stringify(event));
        const output = JSON.parse(await bob.processHistory(ROOM, JSON.stringify(input)));
        if (decryptable(input) && typeof input.event_id === 'string') assertSameTimeline([input], [output], ROOM);
        else assert.equal(JSON.stringify(output), JSON.stringify(input));
      }),
      RUNS,
    );
  });

  it('never throws whatever the room id is, even with an m.room.encryption event in the chunk', async () => {
    const encryption = {
      type: 'm.room.encryption',
      state_key: '',
      event_id: '$enc',
      sender: ALICE,
      content: { algorithm: 'm.megolm.v1.aes-sha2' },
    };
    await fc.assert(
      fc.asyncProperty(fc.oneof(oddText, roomId), async (id) => {
        const output = JSON.parse(await bob.processHistory(id, JSON.stringify({ chunk: [encryption], start: 'a' })));
        assert.deepEqual(output.chunk, [encryption]);
      }),
      { ...RUNS, examples: [['#alias:example.test']] },
    );
  });
});

/** The JSON value of `text`, or undefined when it is not JSON. */
function parsedOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
