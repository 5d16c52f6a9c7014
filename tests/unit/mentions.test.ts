/**
 * Highlight counts in encrypted rooms: the server cannot see mentions in ciphertext, so Kirjava
 * adds the unread mentions it decrypted to the count the server sent.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { RoomEventDecryptor } from '../../src/crypto/receive/event-decryptor.ts';
import { MentionTracker } from '../../src/crypto/receive/mentions.ts';
import { decryptNotifications } from '../../src/crypto/receive/sync-decryptor.ts';

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

describe('/notifications agree with the highlight counts', () => {
  /** Decrypts by reading the "plaintext" the test put into the ciphertext field. */
  const decryptor = {
    noteRedaction() {},
    async decrypt(_roomId: string, envelope: any) {
      const { type, content } = JSON.parse(envelope.content.ciphertext);
      return { ...envelope, type, content, unsigned: decrypted };
    },
  } as unknown as RoomEventDecryptor;
  const encrypted = (id: string, content: Record<string, unknown>) => ({
    event_id: id,
    type: 'm.room.encrypted',
    sender: '@bob:example.test',
    origin_server_ts: 1,
    content: { algorithm: 'm.megolm.v1.aes-sha2', ciphertext: JSON.stringify({ type: 'm.room.message', content }) },
  });
  const notification = (event: unknown, actions: unknown[], room = ROOM) => ({
    room_id: room,
    event,
    actions,
    read: false,
    ts: 1,
  });
  const serverNotify = ['notify', { set_tweak: 'highlight', value: false }];
  const body = () => ({
    next_token: 'n2',
    notifications: [
      notification(encrypted('$mention', { body: 'alice?', 'm.mentions': { user_ids: [ME] } }), serverNotify),
      notification(encrypted('$chat', { body: 'just chatting' }), ['notify']),
      notification(
        message('$plain', 1, { body: 'alice!' }, '@bob:example.test', {}),
        ['notify', { set_tweak: 'highlight' }],
        '!plain:example.test',
      ),
    ],
  });
  const highlighted = (result: any) =>
    result.notifications.map((n: any) => [
      n.event.event_id,
      n.actions.some((a: any) => a?.set_tweak === 'highlight' && a.value !== false),
    ]);

  it('a decrypted mention of the user highlights; other messages keep the actions the server gave', async () => {
    const tracker = new MentionTracker(ME);
    const result: any = await decryptNotifications(decryptor, body(), tracker);
    assert.deepEqual(highlighted(result), [
      ['$mention', true],
      ['$chat', false],
      ['$plain', true],
    ]);
    assert.deepEqual(result.notifications[0].actions, ['notify', { set_tweak: 'highlight', value: true }]);
    assert.deepEqual(result.notifications[1].actions, ['notify']);
    assert.equal(result.notifications[0].event.content.body, 'alice?');
    assert.equal(result.next_token, 'n2');
  });

  it('only=highlight keeps the highlights, the encrypted mention among them, and the server’s next_token', async () => {
    const result: any = await decryptNotifications(decryptor, body(), new MentionTracker(ME), true);
    assert.deepEqual(
      result.notifications.map((n: any) => n.event.event_id),
      ['$mention', '$plain'],
    );
    assert.equal(result.next_token, 'n2');
  });

  it('a mention by display name (no m.mentions) counts once the tracker knows the name from a sync', async () => {
    const tracker = new MentionTracker(ME);
    tracker.applyToRoom(ROOM, {
      state: { events: [{ type: 'm.room.member', state_key: ME, content: { displayname: 'Alice' } }] },
      timeline: { events: [] },
    });
    const result: any = await decryptNotifications(
      decryptor,
      { notifications: [notification(encrypted('$name', { body: 'hi Alice' }), ['notify'])] },
      tracker,
      true,
    );
    assert.deepEqual(highlighted(result), [['$name', true]]);
  });
});
