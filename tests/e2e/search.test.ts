/**
 * Search in encrypted rooms: the homeserver only holds ciphertext there, so `POST /search`
 * finds nothing; through Kirjava the plain client's search finds the decrypted messages,
 * with context, page by page, merged with what the homeserver finds in unencrypted rooms.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { StoryBed, assertEncryptedOnServer, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';
import { poll } from '../fixtures/net.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import type { Peer } from '../fixtures/peer.ts';

const story = { timeout: 120_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  const SEARCH = '/_matrix/client/v3/search';

  function roomEvents(term: string, extra: Record<string, unknown> = {}) {
    return { search_categories: { room_events: { search_term: term, ...extra } } };
  }

  /** The homeserver's own answer, bypassing Kirjava (the peer's token, from Node). */
  async function serverSearch(peer: Peer, term: string): Promise<any> {
    const response = await fetch(`${bed.synapse.baseUrl}${SEARCH}`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${peer.accessToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify(roomEvents(term)),
    });
    assert.equal(response.status, 200);
    return (await response.json()).search_categories.room_events;
  }

  async function search(client: PlainClient, body: unknown, nextBatch?: string, via: 'fetch' | 'xhr' = 'fetch') {
    const path = nextBatch === undefined ? SEARCH : `${SEARCH}?next_batch=${encodeURIComponent(nextBatch)}`;
    const answer = await (via === 'fetch' ? client.rawFetch('POST', path, body) : client.rawXhr('POST', path, body));
    assert.equal(answer.status, 200, JSON.stringify(answer.json));
    return answer.json.search_categories.room_events;
  }

  describe(`Searching encrypted rooms through Kirjava (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });
    afterEach(() => bed.cleanUp());
    after(() => bed.stop());

    it(
      'A word in an encrypted room: decrypted matches with context, over pages joined by next_batch',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);

        const matches: string[] = [];
        const fillers = new Map<string, string>();
        for (let i = 1; i <= 21; i++) {
          const fillerId = await peer.sendText(roomId, `Filler line ${i}`);
          const id = await peer.sendText(roomId, `Jar ${i} of marmalade`);
          fillers.set(id, fillerId);
          matches.push(id);
        }
        await peer.sendText(roomId, 'The end of the list');
        await client.waitForBody(roomId, 'The end of the list', 30_000);
        await assertEncryptedOnServer(peer, roomId, matches[0], 'Jar 1 of marmalade');
        assert.equal(
          (await serverSearch(peer, 'marmalade')).count,
          0,
          'the homeserver itself cannot search ciphertext',
        );

        const request = roomEvents('Marmalade', {
          order_by: 'recent',
          filter: { limit: 10 },
          event_context: { before_limit: 1, after_limit: 1, include_profile: true },
        });
        const first = await search(client, request);
        assert.equal(first.count, 21);
        assert.ok(first.highlights.includes('marmalade'));
        assert.equal(first.results.length, 10);
        assert.deepEqual(
          first.results.map((r: any) => r.result.event_id),
          matches.slice(-10).reverse(),
          'newest first',
        );
        const top = first.results[0];
        assert.equal(top.result.type, 'm.room.message');
        assert.equal(top.result.content.body, 'Jar 21 of marmalade');
        assert.equal(top.result.room_id, roomId);
        assert.equal(top.result.sender, peer.userId);
        assert.equal(top.result.unsigned['io.kirjava.encryption'].decrypted, true);
        // Context: the filler just before, the closing line just after, both decrypted.
        assert.deepEqual(
          top.context.events_before.map((e: any) => [e.event_id, e.content.body]),
          [[fillers.get(matches[20]), 'Filler line 21']],
        );
        assert.deepEqual(
          top.context.events_after.map((e: any) => e.content.body),
          ['The end of the list'],
        );
        assert.equal(typeof top.context.start, 'string');
        assert.ok(peer.userId in top.context.profile_info, JSON.stringify(top.context.profile_info));
        assert.equal(typeof first.next_batch, 'string');

        // Page two through XMLHttpRequest, page three through fetch: together every match once.
        const second = await search(client, request, first.next_batch, 'xhr');
        assert.equal(second.count, 21);
        assert.deepEqual(
          second.results.map((r: any) => r.result.event_id),
          matches.slice(1, 11).reverse(),
        );
        assert.equal(second.results[9].context.events_before[0].content.body, 'Filler line 2');
        const third = await search(client, request, second.next_batch);
        assert.deepEqual(
          third.results.map((r: any) => [r.result.event_id, r.result.content.body]),
          [[matches[0], 'Jar 1 of marmalade']],
        );
        assert.equal(third.next_batch, undefined, 'the last page has no next_batch');

        // Two words must both be present; an excluded word removes its matches.
        const both = await search(client, roomEvents('jar 7 marmalade'));
        assert.deepEqual(
          both.results.map((r: any) => r.result.content.body),
          ['Jar 7 of marmalade'],
        );
        const without = await search(client, roomEvents('marmalade -7 -8 -9', { filter: { limit: 50 } }));
        assert.equal(without.count, 18);

        // Like the homeserver, search covers the rooms the user is in: after leaving, nothing.
        const left = await client.rawFetch('POST', `/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/leave`, {});
        assert.equal(left.status, 200);
        assert.equal((await search(client, roomEvents('marmalade'))).count, 0);
      },
    );

    it(
      'A word only in an unencrypted room comes from the server; the rooms filter is honoured; ' +
        'a redaction is forgotten',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const secretRoom = await givenEncryptedRoom(peer, client, userId, deviceId);
        const openRoom = await peer.createPlainRoom([userId]);
        assert.equal(await client.waitForInvite(), openRoom);
        await client.joinRoom(openRoom);
        await peer.waitForMembership(openRoom, userId, 'join');

        const zucchini = await peer.sendText(openRoom, 'Zucchini soup tonight');
        const openPumpkin = await peer.sendText(openRoom, 'Pumpkin pie in public');
        const secretPumpkin = await peer.sendText(secretRoom, 'Pumpkin recipe, secret');
        await client.waitForBody(secretRoom, 'Pumpkin recipe, secret');
        await client.waitForBody(openRoom, 'Pumpkin pie in public');

        const fromServer = await search(client, roomEvents('zucchini'));
        assert.equal(fromServer.count, 1);
        assert.deepEqual(
          fromServer.results.map((r: any) => [r.result.event_id, r.result.room_id, r.result.content.body]),
          [[zucchini, openRoom, 'Zucchini soup tonight']],
        );
        assert.equal(
          fromServer.results[0].result.unsigned?.['io.kirjava.encryption'],
          undefined,
          'not Kirjava’s result',
        );

        const everywhere = await search(client, roomEvents('pumpkin'));
        assert.equal(everywhere.count, 2);
        assert.deepEqual(
          new Set(everywhere.results.map((r: any) => r.result.event_id)),
          new Set([openPumpkin, secretPumpkin]),
        );

        const onlySecret = await search(client, roomEvents('pumpkin', { filter: { rooms: [secretRoom] } }));
        assert.deepEqual(
          onlySecret.results.map((r: any) => r.result.content.body),
          ['Pumpkin recipe, secret'],
        );
        assert.equal(onlySecret.count, 1);
        const onlyOpen = await search(
          client,
          roomEvents('pumpkin', { filter: { rooms: [openRoom] } }),
          undefined,
          'xhr',
        );
        assert.deepEqual(
          onlyOpen.results.map((r: any) => r.result.content.body),
          ['Pumpkin pie in public'],
        );
        const notSecret = await search(client, roomEvents('pumpkin', { filter: { not_rooms: [secretRoom] } }));
        assert.deepEqual(
          notSecret.results.map((r: any) => r.result.event_id),
          [openPumpkin],
        );

        const grouped = await search(client, roomEvents('pumpkin', { groupings: { group_by: [{ key: 'room_id' }] } }));
        assert.deepEqual(Object.keys(grouped.groups.room_id).sort(), [openRoom, secretRoom].sort());
        assert.deepEqual(grouped.groups.room_id[secretRoom].results, [secretPumpkin]);

        // The peer redacts its secret: once the client has synced the redaction, search forgets it.
        await peer.client.redactEvent(secretRoom, secretPumpkin);
        const afterRedaction = await poll(
          'the redacted message to leave the index',
          async () => {
            const answer = await search(client, roomEvents('pumpkin'));
            return answer.count === 1 ? answer : undefined;
          },
          15_000,
        );
        assert.deepEqual(
          afterRedaction.results.map((r: any) => r.result.event_id),
          [openPumpkin],
        );
      },
    );

    it('Messages the client never synced are found after "Index history for search" in the popup', story, async () => {
      const user = await bed.newUser('alice');
      const client = await bed.givenClientTab();
      const { userId, deviceId, accessToken } = await client.login(bed.synapse.baseUrl, user.userId, user.password);
      const peer = await bed.givenPeer();
      const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
      await client.close(); // the client goes away while the peer writes

      const quinces: string[] = [];
      for (let i = 1; i <= 12; i++) quinces.push(await peer.sendText(roomId, `Quince number ${i}`));
      await peer.sendText(roomId, 'Last word');

      // The client comes back with a short initial sync: most quinces are only in history.
      const returning = await bed.givenClientTab();
      await returning.startWithToken(bed.synapse.baseUrl, userId, accessToken, deviceId, { initialSyncLimit: 3 });
      await returning.waitForBody(roomId, 'Last word');
      const before = await search(returning, roomEvents('quince', { filter: { limit: 50 } }));
      assert.ok(before.count < 12, `only the synced quinces are indexed yet (found ${before.count})`);

      const popup = await bed.browser.openPopup();
      try {
        const panel = popup.getByRole('article', { name: userId }).getByRole('region', { name: 'Search index' });
        await panel.getByRole('button', { name: 'Index history for search' }).click();
        await poll(
          'history indexing to finish',
          async () =>
            /History indexed: 1 encrypted room/.test((await panel.getByRole('status').textContent()) ?? '')
              ? true
              : undefined,
          30_000,
        );
        const indexed = await panel.getByTestId('indexed-count').textContent();
        assert.match(indexed ?? '', /^\d+ messages indexed/);
      } finally {
        await popup.close();
      }

      const afterHistory = await search(returning, roomEvents('quince', { filter: { limit: 50 }, order_by: 'recent' }));
      assert.equal(afterHistory.count, 12);
      assert.deepEqual(
        afterHistory.results.map((r: any) => r.result.event_id),
        [...quinces].reverse(),
      );
      assert.equal(afterHistory.results[11].result.content.body, 'Quince number 1');
    });
  });
}
