/**
 * Room names for people: what a sync says of each room's name and address, kept per account
 * with a bound, and how a room is then named to the user.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mergeRoomLabels, roomLabelsIn } from '../../src/crypto/receive/room-labels.ts';
import { isRoomAlias, roomLabelText } from '../../src/shared/room-label.ts';

const state = (type: string, content: object, stateKey = '') => ({ type, state_key: stateKey, content });

describe('Room names from syncs', () => {
  it('reads name and canonical alias from state, then the timeline, the later event winning', () => {
    const sync = {
      rooms: {
        join: {
          '!a:hs': {
            state: { events: [state('m.room.name', { name: 'Old name' }), state('m.room.member', {}, '@x:hs')] },
            timeline: {
              events: [
                state('m.room.name', { name: ' Project chat ' }),
                state('m.room.canonical_alias', { alias: '#project:hs' }),
                { type: 'm.room.message', content: { body: 'hi' } },
              ],
            },
          },
          '!b:hs': { timeline: { events: [{ type: 'm.room.message', content: { body: 'no names here' } }] } },
          '!c:hs': { state: { events: [state('m.room.name', { name: 'Not the room name' }, 'other')] } },
          '!d:hs': { timeline: { events: [state('m.room.name', {})] } },
        },
        leave: { '!e:hs': { timeline: { events: [state('m.room.name', { name: 'Left' })] } } },
      },
    };
    const labels = roomLabelsIn(sync);
    assert.deepEqual(Object.fromEntries(labels), {
      '!a:hs': { name: 'Project chat', alias: '#project:hs' },
      '!d:hs': { name: '' },
    });
    assert.equal(roomLabelsIn({}).size, 0);
    assert.equal(roomLabelsIn({ rooms: { join: { '!x:hs': null } } }).size, 0);
  });

  it('merges changes: a removed name is forgotten, a room with neither is dropped, the newest rooms kept', () => {
    const known = { '!a:hs': { name: 'A', alias: '#a:hs' }, '!b:hs': { name: 'B' }, '!c:hs': { alias: '#c:hs' } };
    const merged = mergeRoomLabels(
      known,
      new Map([
        ['!a:hs', { name: '' }],
        ['!b:hs', { name: '' }],
        ['!d:hs', { name: 'D' }],
      ]),
      10,
    );
    assert.deepEqual(merged, { '!c:hs': { alias: '#c:hs' }, '!a:hs': { alias: '#a:hs' }, '!d:hs': { name: 'D' } });

    // The bound: the least recently changed rooms go first.
    const many = new Map(Array.from({ length: 8 }, (_, i) => [`!r${i}:hs`, { name: `Room ${i}` }]));
    const bounded = mergeRoomLabels(merged, many, 5);
    assert.deepEqual(Object.keys(bounded), ['!r3:hs', '!r4:hs', '!r5:hs', '!r6:hs', '!r7:hs']);
    // A long name is cut.
    const long = roomLabelsIn({
      rooms: { join: { '!l:hs': { state: { events: [state('m.room.name', { name: 'x'.repeat(999) })] } } } },
    });
    assert.equal(long.get('!l:hs')!.name!.length, 255);
  });

  it('names a room as "Name (#alias)", by one of them, or not at all; knows an alias when it sees one', () => {
    assert.equal(roomLabelText({ name: 'Project chat', alias: '#project:hs' }), 'Project chat (#project:hs)');
    assert.equal(roomLabelText({ name: 'Project chat' }), 'Project chat');
    assert.equal(roomLabelText({ alias: '#project:hs' }), '#project:hs');
    assert.equal(roomLabelText({}), undefined);
    assert.equal(roomLabelText(undefined), undefined);
    assert.equal(isRoomAlias('#project:example.org'), true);
    assert.equal(isRoomAlias('#project'), false);
    assert.equal(isRoomAlias('!abc:example.org'), false);
    assert.equal(isRoomAlias('#pro ject:example.org'), false);
  });
});
