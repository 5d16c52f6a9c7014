/**
 * Everything the client reads about an encrypted room is decrypted, not just the timeline:
 * threads (`/threads`, `/relations/{id}/m.thread`), edits (bundled `m.replace`), single events
 * and `/notifications`. The peer writes with Element's crypto; the plain client reads through
 * its own `fetch` and `XMLHttpRequest`, which Kirjava mediates.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { StoryBed, assertEncryptedOnServer, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';
import { poll } from '../fixtures/net.ts';

const story = { timeout: 120_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  const room = (roomId: string) => `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}`;
  const v1room = (roomId: string) => `/_matrix/client/v1/rooms/${encodeURIComponent(roomId)}`;

  describe(
    `Threads, edits and notifications in an encrypted room reach the plain client decrypted ` + `(${browserName})`,
    () => {
      before(() => bed.start(), { timeout: 180_000 });
      afterEach(() => bed.cleanUp());
      after(() => bed.stop());

      it('A thread started by the peer: the thread list and the thread view show plaintext', story, async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const rootId = await peer.sendText(roomId, 'Thread root: what shall we eat?');
        const { event_id: replyId } = await peer.client.sendEvent(
          roomId,
          rootId,
          'm.room.message' as any,
          {
            msgtype: 'm.text',
            body: 'In the thread: pancakes',
            'm.relates_to': {
              rel_type: 'm.thread',
              event_id: rootId,
              is_falling_back: true,
              'm.in_reply_to': { event_id: rootId },
            },
          } as any,
        );
        await assertEncryptedOnServer(peer, roomId, replyId, 'In the thread: pancakes');
        await client.waitForBody(roomId, 'Thread root: what shall we eat?');

        // The thread list (GET /threads), with the latest thread event bundled under the root.
        const threads = await poll(
          'the thread with its latest event',
          async () => {
            const answer = await client.rawFetch('GET', `${v1room(roomId)}/threads`);
            const root = answer.json?.chunk?.find((e: any) => e.event_id === rootId);
            return root?.unsigned?.['m.relations']?.['m.thread']?.latest_event ? answer : undefined;
          },
          15_000,
        );
        assert.equal(threads.status, 200);
        const root = threads.json.chunk.find((e: any) => e.event_id === rootId);
        assert.equal(root.type, 'm.room.message');
        assert.equal(root.content.body, 'Thread root: what shall we eat?');
        const latest = root.unsigned['m.relations']['m.thread'].latest_event;
        assert.equal(latest.event_id, replyId);
        assert.equal(latest.type, 'm.room.message');
        assert.equal(latest.content.body, 'In the thread: pancakes');
        assert.equal(latest.content['m.relates_to'].rel_type, 'm.thread');

        // The thread view (GET /relations/{root}/m.thread), through XHR this time.
        const view = await client.rawXhr('GET', `${v1room(roomId)}/relations/${encodeURIComponent(rootId)}/m.thread`);
        assert.equal(view.status, 200);
        assert.deepEqual(
          view.json.chunk.map((e: any) => [e.event_id, e.type, e.content.body, e.content['m.relates_to']?.event_id]),
          [[replyId, 'm.room.message', 'In the thread: pancakes', rootId]],
        );
      });

      it('An edit by the peer shows the edited text', story, async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const originalId = await peer.sendText(roomId, 'Meet at 5');
        const { event_id: editId } = await peer.client.sendEvent(
          roomId,
          'm.room.message' as any,
          {
            msgtype: 'm.text',
            body: '* Meet at 6',
            'm.new_content': { msgtype: 'm.text', body: 'Meet at 6' },
            'm.relates_to': { rel_type: 'm.replace', event_id: originalId },
          } as any,
        );
        await assertEncryptedOnServer(peer, roomId, editId, 'Meet at 6');

        // The edit itself, as the client's timeline gets it.
        const edit = await client.rawFetch('GET', `${room(roomId)}/event/${encodeURIComponent(editId)}`);
        assert.equal(edit.json.type, 'm.room.message');
        assert.equal(edit.json.content['m.new_content'].body, 'Meet at 6');
        assert.deepEqual(edit.json.content['m.relates_to'], { rel_type: 'm.replace', event_id: originalId });

        // The original, with the edit the server bundles decrypted too.
        const original = await client.rawFetch('GET', `${room(roomId)}/event/${encodeURIComponent(originalId)}`);
        assert.equal(original.json.content.body, 'Meet at 5');
        const bundled = original.json.unsigned?.['m.relations']?.['m.replace'];
        assert.equal(bundled?.event_id, editId, JSON.stringify(original.json.unsigned));
        assert.equal(bundled.type, 'm.room.message');
        assert.equal(bundled.content['m.new_content'].body, 'Meet at 6');

        // The edit through the relations endpoint.
        const edits = await client.rawFetch(
          'GET',
          `${v1room(roomId)}/relations/${encodeURIComponent(originalId)}/m.replace`,
        );
        assert.deepEqual(
          edits.json.chunk.map((e: any) => [e.event_id, e.type, e.content['m.new_content']?.body]),
          [[editId, 'm.room.message', 'Meet at 6']],
        );
      });

      it("/notifications lists the peer's encrypted message decrypted", story, async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const eventId = await peer.sendText(roomId, 'A notification-worthy secret');
        await client.waitForBody(roomId, 'A notification-worthy secret');
        const answer = await poll(
          'the notification',
          async () => {
            const got = await client.rawFetch('GET', '/_matrix/client/v3/notifications?limit=10');
            return got.json?.notifications?.some((n: any) => n.event?.event_id === eventId) ? got : undefined;
          },
          15_000,
        );
        const notification = answer.json.notifications.find((n: any) => n.event.event_id === eventId);
        assert.equal(notification.room_id, roomId);
        assert.equal(notification.event.type, 'm.room.message');
        assert.equal(notification.event.content.body, 'A notification-worthy secret');
        assert.equal(notification.event.unsigned['io.kirjava.encryption'].decrypted, true);
      });

      it(
        'A mention of the user inside an encrypted message highlights in the sync and in /notifications ' +
          '(only=highlight too)',
        story,
        async () => {
          const { client, userId, deviceId } = await bed.givenLoggedInClient();
          const peer = await bed.givenPeer();
          const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

          await peer.sendText(roomId, 'Just chatting, nobody in particular');
          await client.waitForBody(roomId, 'Just chatting, nobody in particular');
          assert.equal((await client.unreadCounts(roomId)).highlight, 0, 'a message without a mention highlighted');

          const mentionId = await peer.client.sendEvent(
            roomId,
            'm.room.message' as any,
            {
              msgtype: 'm.text',
              body: `${userId}: are you there?`,
              'm.mentions': { user_ids: [userId] },
            } as any,
          );
          await assertEncryptedOnServer(peer, roomId, mentionId.event_id, 'are you there?');
          await client.waitForBody(roomId, `${userId}: are you there?`);
          const counts = await poll(
            'the highlight',
            async () => {
              const now = await client.unreadCounts(roomId);
              return now.highlight >= 1 ? now : undefined;
            },
            10_000,
          );
          assert.equal(counts.highlight, 1);

          // /notifications agrees: the mention highlights there too, and only=highlight lists it.
          const notificationOf = async (query: string, eventId: string) =>
            (await client.rawFetch('GET', `/_matrix/client/v3/notifications?${query}`)).json?.notifications?.find(
              (n: any) => n.event?.event_id === eventId,
            );
          const mention = await poll('the mention in /notifications', () =>
            notificationOf('limit=20', mentionId.event_id),
          );
          assert.equal(mention.event.content.body, `${userId}: are you there?`);
          assert.deepEqual(
            mention.actions.filter((a: any) => a?.set_tweak === 'highlight'),
            [{ set_tweak: 'highlight', value: true }],
            JSON.stringify(mention.actions),
          );
          const highlights = await client.rawFetch('GET', '/_matrix/client/v3/notifications?limit=20&only=highlight');
          assert.equal(highlights.status, 200);
          assert.deepEqual(
            highlights.json.notifications.map((n: any) => [n.event.event_id, n.event.content.body]),
            [[mentionId.event_id, `${userId}: are you there?`]],
            'only=highlight lists exactly the mention, decrypted',
          );
          // The message without a mention is a notification, not a highlight.
          const chat = (
            await client.rawFetch('GET', '/_matrix/client/v3/notifications?limit=20')
          ).json.notifications.find((n: any) => n.event.content?.body === 'Just chatting, nobody in particular');
          assert.ok(chat, 'the plain chat message is not in /notifications');
          assert.equal(
            chat.actions.some((a: any) => a?.set_tweak === 'highlight' && a.value !== false),
            false,
          );
        },
      );
    },
  );
}
