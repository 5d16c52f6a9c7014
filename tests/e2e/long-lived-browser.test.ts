/**
 * A long-lived browser, as a user's week goes: two tabs of one client on one account (both
 * read, both send, every message once on the server and at the peer); two accounts on two
 * allowed sites at once (each reads its own, neither gets the other's); and a browser restart
 * on the same profile (settings, account, device and keys survive, the client's stored
 * session resumes on the same device, history from before reads, and the send guard is in
 * force before the client's first request). Real Chromium with Kirjava, real Synapse, an
 * E2EE peer.
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { sendThrough } from '../fixtures/bypass.ts';
import { startClientServer, type ClientServer } from '../fixtures/client-server.ts';
import { poll } from '../fixtures/net.ts';
import type { Peer } from '../fixtures/peer.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import {
  StoryBed,
  assertClientReads,
  assertEncryptedOnServer,
  assertPeerDecrypts,
  givenEncryptedRoom,
} from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 240_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);
  let otherSite: ClientServer | undefined;

  /** Every event of the room as the homeserver stores it (read by the peer, no decryption). */
  async function serverEvents(peer: Peer, roomId: string): Promise<Array<Record<string, any>>> {
    const room = encodeURIComponent(roomId);
    const url = `${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${room}/messages?dir=b&limit=1000`;
    const response = await fetch(url, { headers: { Authorization: `Bearer ${peer.accessToken}` } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { chunk: Array<Record<string, any>> }).chunk;
  }

  /** What the peer's client received from others in the room, live, body by body. */
  function recordAtPeer(peer: Peer, roomId: string) {
    const bodies: string[] = [];
    const stop = peer.onText(roomId, (text) => {
      assert.equal(text.decrypted, true, `the peer got "${text.body}" unencrypted`);
      bodies.push(text.body);
    });
    return { bodies, stop };
  }

  const countOf = (entries: Array<{ body?: string; type: string }>, body: string) =>
    entries.filter((e) => e.type === 'm.room.message' && e.body === body).length;

  describe(`A long-lived browser: several tabs, several accounts, a restart (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });
    afterEach(() => bed.cleanUp());
    after(async () => {
      await bed.stop();
      await otherSite?.stop();
    });

    it(
      'Two tabs of one client on one account: both read, both send, every message once on the server and at the peer',
      story,
      async () => {
        const started = Date.now();
        const { client: first, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, first, userId, deviceId);
        const second = await bed.givenClientTab();
        await second.startWithToken(bed.homeserverUrl, userId, accessToken, deviceId);
        const atPeer = recordAtPeer(peer, roomId);

        const fromPeer = 'From the peer, to both tabs';
        await peer.sendText(roomId, fromPeer);
        await assertClientReads(first, roomId, fromPeer, peer.userId);
        await assertClientReads(second, roomId, fromPeer, peer.userId);

        // Both tabs send, the second while the first's send may still be under way.
        const sent: Array<[PlainClient, string]> = [
          [first, 'Sent from the first tab'],
          [second, 'Sent from the second tab'],
          [first, 'The first tab again'],
          [second, 'The second tab again'],
        ];
        const eventIds = await Promise.all(sent.map(([tab, body]) => tab.sendText(roomId, body)));
        for (const [i, [, body]] of sent.entries()) {
          await assertPeerDecrypts(peer, roomId, eventIds[i]!, body, userId);
          await assertEncryptedOnServer(peer, roomId, eventIds[i]!, body);
          await assertClientReads(first, roomId, body, userId);
          await assertClientReads(second, roomId, body, userId);
        }
        assert.equal(new Set(eventIds).size, sent.length, 'two sends got one event id');

        // Once everywhere: the server holds exactly one encrypted event per send, the peer got
        // each body once, and each tab shows each body once.
        await new Promise((resolve) => setTimeout(resolve, 2_000)); // a duplicate would have arrived by now
        const mine = (await serverEvents(peer, roomId)).filter((e) => e.sender === userId && !('state_key' in e));
        assert.deepEqual(
          mine.map((e) => e.type),
          sent.map(() => 'm.room.encrypted'),
          'the server holds other than one encrypted event per send',
        );
        atPeer.stop();
        for (const [, body] of sent) assert.equal(atPeer.bodies.filter((b) => b === body).length, 1, body);
        for (const tab of [first, second]) {
          const timeline = await tab.timeline(roomId);
          for (const body of [fromPeer, ...sent.map(([, b]) => b)]) assert.equal(countOf(timeline, body), 1, body);
        }
        console.log(`# two tabs, one account: ${Date.now() - started} ms`);
      },
    );

    it(
      'Two accounts on two allowed sites at the same time: each reads and sends its own; ' +
        "neither site gets the other's room, by its own token or by the other's",
      story,
      async () => {
        const started = Date.now();
        otherSite ??= await startClientServer('127.0.0.2');
        await bed.allowSite(otherSite.origin);

        const {
          client: alice,
          userId: aliceId,
          deviceId: aliceDevice,
          accessToken: aliceToken,
        } = await bed.givenLoggedInClient();
        const carolUser = await bed.newUser('carol');
        const carol = await bed.givenClientTab(otherSite.origin);
        const carolSession = await carol.login(bed.homeserverUrl, carolUser.userId, carolUser.password);
        const peer = await bed.givenPeer();
        const aliceRoom = await givenEncryptedRoom(peer, alice, aliceId, aliceDevice);
        const carolRoom = await givenEncryptedRoom(peer, carol, carolSession.userId, carolSession.deviceId);

        // Both at once: each site's client reads the peer's message to it and sends back.
        const forAlice = 'For Alice only, on the first site';
        const forCarol = 'For Carol only, on the second site';
        await Promise.all([peer.sendText(aliceRoom, forAlice), peer.sendText(carolRoom, forCarol)]);
        await Promise.all([
          assertClientReads(alice, aliceRoom, forAlice, peer.userId),
          assertClientReads(carol, carolRoom, forCarol, peer.userId),
        ]);
        const [aliceSent, carolSent] = await Promise.all([
          alice.sendText(aliceRoom, 'Alice answers from the first site'),
          carol.sendText(carolRoom, 'Carol answers from the second site'),
        ]);
        await assertPeerDecrypts(peer, aliceRoom, aliceSent, 'Alice answers from the first site', aliceId);
        await assertPeerDecrypts(peer, carolRoom, carolSent, 'Carol answers from the second site', carolSession.userId);

        // Neither client knows the other's room.
        assert.equal((await alice.timeline(aliceRoom)).length > 0, true);
        await assert.rejects(alice.timeline(carolRoom), /does not know room/);
        await assert.rejects(carol.timeline(aliceRoom), /does not know room/);
        // Its own token reads nothing of the other's room (the homeserver refuses).
        const byOwnToken = await carol.rawFetch(
          'GET',
          `/_matrix/client/v3/rooms/${encodeURIComponent(aliceRoom)}/messages?dir=b&limit=50`,
        );
        assert.equal(byOwnToken.status, 403, JSON.stringify(byOwnToken.json));
        // The other account's token, used on the second site (which never logged Alice in),
        // gets the ciphertext the server holds at most, never Alice's plaintext.
        const byAlicesToken = await carol.page.evaluate(
          async ([base, roomId, token]) => {
            const url = `${base}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=50`;
            try {
              const response = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
              return { status: response.status, text: await response.text() };
            } catch (error) {
              return { status: 0, text: String(error) };
            }
          },
          [bed.homeserverUrl, aliceRoom, aliceToken] as const,
        );
        assert.ok(
          !byAlicesToken.text.includes(forAlice),
          `the second site read Alice's message: ${byAlicesToken.text}`,
        );
        assert.ok(!byAlicesToken.text.includes('Alice answers'), 'the second site read what Alice sent');
        const chunk = (() => {
          try {
            return JSON.parse(byAlicesToken.text).chunk as Array<Record<string, any>> | undefined;
          } catch {
            return undefined;
          }
        })();
        for (const event of chunk ?? []) {
          if (event.sender === peer.userId && !('state_key' in event)) assert.equal(event.type, 'm.room.encrypted');
        }
        console.log(
          `# second site with the first site's token: ${byAlicesToken.status}; ` +
            `two accounts, two sites: ${Date.now() - started} ms`,
        );
      },
    );

    it(
      'A browser restart on the same profile: settings, account, device and keys survive; the guard is in ' +
        "force before the client's first request; the stored session resumes on the same device and reads history",
      story,
      async () => {
        const started = Date.now();
        const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const before1 = 'From the peer before the restart';
        await peer.sendText(roomId, before1);
        await assertClientReads(client, roomId, before1, peer.userId);
        const before2 = 'From the client before the restart';
        const before2Id = await client.sendText(roomId, before2);
        await assertPeerDecrypts(peer, roomId, before2Id, before2, userId);
        const accountId = `${bed.homeserverUrl}|${userId}|${deviceId}`;
        const stored = await bed.browser.inExtension(() => chrome.storage.local.get(['settings', 'accounts']));
        assert.ok((stored.accounts as Record<string, unknown>)[accountId], 'no account record before the restart');
        const keysBefore = (await peer.queryDeviceKeys(userId))[deviceId];
        assert.ok(keysBefore, 'no device keys before the restart');
        await client.close();

        const restartStarted = Date.now();
        await bed.browser.restart();
        const restartMs = Date.now() - restartStarted;

        // Before any page: the guard's rules are back (session rules do not survive a restart).
        const rules = await poll(
          'the send guard rules after the restart',
          async () => {
            const now = await bed.browser.inExtension(() => chrome.declarativeNetRequest.getSessionRules());
            return now.some((r) => r.action.type === 'block') ? now : undefined;
          },
          10_000,
        );
        const guardMs = Date.now() - restartStarted - restartMs;
        assert.ok(
          rules.some((r) => r.action.type === 'block'),
          'no block rule after the restart',
        );
        // Settings and the account record as they were.
        const after = await bed.browser.inExtension(() => chrome.storage.local.get(['settings', 'accounts']));
        assert.deepEqual(after.settings, stored.settings, 'the settings changed across the restart');
        assert.deepEqual(
          Object.keys(after.accounts as object).sort(),
          Object.keys(stored.accounts as object).sort(),
          'the accounts changed across the restart',
        );

        // A page of the site whose Web Worker sends plaintext before the client made any request.
        const tab = await bed.givenClientTab();
        const early = await sendThrough(tab.page, 'page Web Worker fetch', {
          url: `${bed.homeserverUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/send/m.room.message/e1`,
          method: 'PUT',
          headers: { Authorization: `Bearer ${accessToken}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ msgtype: 'm.text', body: 'Plaintext before the client started' }),
        });
        assert.equal(early.status, 0, `a plaintext send after the restart went through: ${early.status} ${early.text}`);

        // The client's stored session resumes: same token, same device; history reads.
        await tab.startWithToken(bed.homeserverUrl, userId, accessToken, deviceId);
        await assertClientReads(tab, roomId, before1, peer.userId);
        await assertClientReads(tab, roomId, before2, userId);
        const history = await tab.scrollback(roomId, 50);
        assert.equal(
          history.filter((e) => e.type === 'm.room.encrypted').length,
          0,
          'history from before the restart is undecryptable',
        );

        // Keys survived: a new message each way, on the same device and the same identity keys.
        const afterPeer = 'From the peer after the restart';
        await peer.sendText(roomId, afterPeer);
        await assertClientReads(tab, roomId, afterPeer, peer.userId);
        const afterClient = 'From the client after the restart';
        const afterId = await tab.sendText(roomId, afterClient);
        await assertPeerDecrypts(peer, roomId, afterId, afterClient, userId);
        await assertEncryptedOnServer(peer, roomId, afterId, afterClient);
        const raw = await peer.rawEvent(roomId, afterId);
        assert.equal(raw.content.device_id, deviceId, 'the send after the restart came from another device');
        assert.deepEqual((await peer.queryDeviceKeys(userId))[deviceId], keysBefore, 'the device keys changed');
        assert.deepEqual(Object.keys(await peer.queryDeviceKeys(userId)), [deviceId], 'a new device appeared');
        const accountsNow = await bed.browser.inExtension(() => chrome.storage.local.get('accounts'));
        assert.deepEqual(Object.keys(accountsNow.accounts as object), Object.keys(stored.accounts as object));
        await assertNoPlaintextFrom(peer, roomId, userId);
        console.log(
          `# restart: browser back in ${restartMs} ms, guard rules seen ${guardMs} ms later; ` +
            `story ${Date.now() - started} ms`,
        );
      },
    );
  });

  /** No event from `userId` in the room is stored as plaintext. */
  async function assertNoPlaintextFrom(peer: Peer, roomId: string, userId: string) {
    const plaintext = (await serverEvents(peer, roomId)).filter(
      (e) => e.sender === userId && !('state_key' in e) && e.type !== 'm.room.encrypted',
    );
    assert.deepEqual(
      plaintext.map((e) => e.content?.body),
      [],
    );
  }
}
