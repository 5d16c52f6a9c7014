/**
 * Highlight counts in encrypted rooms: the server cannot see mentions in ciphertext, so Kirjava
 * adds the unread mentions it decrypted to the count the server sent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MentionTracker } from '../../src/crypto/receive/mentions.ts';

const ME = '@alice:example.test';
const ROOM = '!room:example.test';
const decrypted = { 'io.kirjava.encryption': { decrypted: true } };

function message(
  id: string,
  ts: number,
  content: Record<string, unknown>,
  sender = '@bob:example.test',
  unsigned: unknown = decrypted,
) {
  return { event_id: id, type: 'm.room.message', sender, origin_server_ts: ts, content, unsigned };
}

function roomWith(events: unknown[], extra: Record<string, unknown> = {}) {
  return { timeline: { events }, unread_notifications: { notification_count: 3, highlight_count: 1 }, ...extra };
}

const highlightOf = (room: any) => room.unread_notifications.highlight_count;

describe('MentionTracker', () => {
  it('adds a decrypted m.mentions mention of the user to the server highlight count', () => {
    const tracker = new MentionTracker(ME);
    const room = roomWith([message('$1', 1, { body: 'hi', 'm.mentions': { user_ids: [ME] } })]);
    tracker.applyToRoom(ROOM, room);
    assert.equal(highlightOf(room), 2);
  });

  it('ignores messages that mention someone else, and plain events the server already counted', () => {
    const tracker = new MentionTracker(ME);
    const room = roomWith([
      message('$1', 1, { body: 'hi carol', 'm.mentions': { user_ids: ['@carol:example.test'] } }),
      message('$2', 2, { body: 'hi', 'm.mentions': { user_ids: [ME] } }, '@bob:example.test', {}),
    ]);
    tracker.applyToRoom(ROOM, room);
    assert.equal(highlightOf(room), 1);
  });

  it('keeps counting an unread mention in later syncs, and forgets it once the user reads past it', () => {
    const tracker = new MentionTracker(ME);
    tracker.applyToRoom(ROOM, roomWith([message('$1', 10, { body: 'x', 'm.mentions': { user_ids: [ME] } })]));
    const later = roomWith([message('$2', 20, { body: 'unrelated' })]);
    tracker.applyToRoom(ROOM, later);
    assert.equal(highlightOf(later), 2);

    const receipt = { events: [{ type: 'm.receipt', content: { $2: { 'm.read': { [ME]: { ts: 30 } } } } }] };
    const read = roomWith([], { ephemeral: receipt });
    tracker.applyToRoom(ROOM, read);
    assert.equal(highlightOf(read), 1);
  });

  it("forgets mentions older than the user's own message", () => {
    const tracker = new MentionTracker(ME);
    tracker.applyToRoom(ROOM, roomWith([message('$1', 10, { body: 'x', 'm.mentions': { user_ids: [ME] } })]));
    const answered = roomWith([message('$2', 20, { body: 'on it' }, ME)]);
    tracker.applyToRoom(ROOM, answered);
    assert.equal(highlightOf(answered), 1);
  });

  it('matches the display name when the event has no m.mentions, and keyword rules with a highlight tweak', () => {
    const tracker = new MentionTracker(ME);
    tracker.observeAccountData({
      account_data: {
        events: [
          {
            type: 'm.push_rules',
            content: {
              global: {
                content: [
                  {
                    rule_id: 'pancakes',
                    pattern: 'pancake*',
                    enabled: true,
                    actions: ['notify', { set_tweak: 'highlight' }],
                  },
                  { rule_id: 'quiet', pattern: 'waffles', enabled: true, actions: ['notify'] },
                  {
                    rule_id: '.m.rule.contains_user_name',
                    pattern: 'alice',
                    enabled: true,
                    actions: ['notify', { set_tweak: 'highlight' }],
                  },
                ],
              },
            },
          },
        ],
      },
    });
    const member = {
      type: 'm.room.member',
      state_key: ME,
      content: { membership: 'join', displayname: 'Alice Liddell' },
    };
    const room = roomWith(
      [
        message('$1', 1, { body: 'ask Alice Liddell' }),
        message('$2', 2, { body: 'Pancakes tonight' }),
        message('$3', 3, { body: 'waffles tonight' }),
        message('$4', 4, { body: 'Alice Liddell', 'm.mentions': {} }),
      ],
      { state: { events: [member] } },
    );
    tracker.applyToRoom(ROOM, room);
    assert.equal(highlightOf(room), 3);
  });

  it('survives malformed input', () => {
    const tracker = new MentionTracker(ME);
    tracker.observeAccountData({
      account_data: { events: [null, { type: 'm.push_rules', content: { global: { content: 'x' } } }] },
    });
    const room: any = {
      timeline: { events: [null, 5, { event_id: 1 }] },
      ephemeral: { events: [{ type: 'm.receipt', content: { $x: null } }] },
      unread_notifications: 'x',
    };
    tracker.applyToRoom(ROOM, room);
    assert.equal(room.unread_notifications, 'x');
  });
});
