/**
 * Kirjava's worker may be stopped by the browser at any moment. The story: the plain client
 * sends a stream of messages into an encrypted room while the worker is killed 100 times at
 * random points; every message reaches the peer encrypted exactly once or the client got an
 * error for it, and none is ever stored in clear or twice (the transaction id makes a
 * retried send idempotent on the homeserver). And a worker stopped while the client waits
 * is started by the client's next long-poll, before the homeserver answers it.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { poll, sleep } from '../fixtures/net.ts';
import { StoryBed, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const KILLS = 100;

for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  describe(`Worker kills during a stream of sends (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });

    after(async () => {
      try {
        await bed.cleanUp();
      } finally {
        await bed.stop();
      }
    });

    it(
      `${KILLS} worker kills at random points: each message arrives ` +
        `encrypted exactly once or the client got an error; none in clear`,
      { timeout: 240_000 },
      async () => {
        const alice = await bed.synapse.register('alice', 'password-alice');
        const { client, ...session } = await bed.givenLoggedInClient(alice);
        const peer = await bed.givenPeer(await bed.synapse.register('bob', 'password-bob'));
        const roomId = await givenEncryptedRoom(peer, client, session.userId, session.deviceId);

        const received: Array<{ body: string; decrypted: boolean; eventId: string }> = [];
        const stopListening = peer.onText(roomId, (text) => received.push(text));

        // One kill per message, at a random point of its way (before, during or after the
        // worker encrypts it): 100 messages, 100 kills.
        const sent = new Map<string, string>(); // body -> event id
        const failed = new Map<string, string>(); // body -> error
        const started = Date.now();
        for (let i = 0; i < KILLS; i++) {
          const body = `Message ${i} of the stream`;
          const send = client.sendText(roomId, body).then(
            (eventId) => void sent.set(body, eventId),
            (error) => void failed.set(body, (error as Error).message),
          );
          await sleep(Math.random() * 300);
          await bed.browser.stopWorker();
          await send;
        }
        const streamMs = Date.now() - started;
        console.log(`[kills] ${KILLS} kills in ${streamMs} ms; ${sent.size} sends succeeded, ${failed.size} failed`);
        if (failed.size) console.log('[kills] first errors:', [...failed.values()].slice(0, 3));
        assert.ok(sent.size >= KILLS / 2, `only ${sent.size} sends went through during the kills`);

        await poll(
          'the peer to decrypt every message the client sent',
          () => ([...sent.keys()].every((body) => received.some((r) => r.body === body)) ? true : undefined),
          60_000,
        );
        await sleep(2_000); // room for a late duplicate to show up
        stopListening();

        for (const text of received) assert.equal(text.decrypted, true, `"${text.body}" reached the peer in clear`);
        const counts = new Map<string, number>();
        for (const text of received) counts.set(text.body, (counts.get(text.body) ?? 0) + 1);
        for (const [body, count] of counts) assert.equal(count, 1, `"${body}" arrived ${count} times`);
        for (const [body, eventId] of sent) {
          assert.equal(
            received.find((r) => r.body === body)?.eventId,
            eventId,
            `"${body}" arrived under another event id`,
          );
        }

        // The server's own copy of the room: only ciphertext from the client.
        const response = await fetch(
          `${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${encodeURIComponent(roomId)}/messages?dir=b&limit=1000`,
          { headers: { Authorization: `Bearer ${peer.accessToken}` } },
        );
        const { chunk } = (await response.json()) as {
          chunk: Array<{ sender: string; type: string; state_key?: string }>;
        };
        const fromClient = chunk.filter((e) => e.sender === session.userId && e.state_key === undefined);
        assert.deepEqual([...new Set(fromClient.map((e) => e.type))], ['m.room.encrypted']);
        assert.equal(fromClient.length, counts.size, 'the server holds more client events than the peer decrypted');
      },
    );

    it(
      'a worker stopped while the client waits: ' +
        'the next /sync long-poll has it open the account before the homeserver answers',
      { timeout: 60_000 },
      async () => {
        const user = await bed.newUser('carol');
        const { page } = await bed.givenClientTab();
        const base = bed.homeserverUrl;
        // The first sync discovers the account (whoami, device keys) through Kirjava; the next
        // ones catch up with what that caused (own device list, key counts) until one is quiet.
        const sync = (since: string | undefined, timeout: number) =>
          page.evaluate(
            async ({ base, token, since, timeout }) => {
              const query = `timeout=${timeout}${since ? `&since=${encodeURIComponent(since)}` : ''}`;
              const started = performance.now();
              const body = await (
                await fetch(`${base}/_matrix/client/v3/sync?${query}`, {
                  headers: { Authorization: `Bearer ${token}` },
                })
              ).json();
              return { next: body.next_batch as string, heldMs: performance.now() - started };
            },
            { base, token: user.accessToken, since, timeout },
          );
        let since = (await sync(undefined, 0)).next;
        for (let quiet = false; !quiet;) {
          const answer = await sync(since, 1000);
          since = answer.next;
          quiet = answer.heldMs >= 900;
        }
        // Stopped until seen stopped: on a loaded machine an event still on its way (the last
        // sync's follow-up work) may start the worker again right after the first stop.
        await bed.browser.stopWorker();
        await poll(
          'the worker to stop',
          async () => {
            if (!(await bed.browser.backgroundRunning())) return true;
            await bed.browser.stopWorker();
            return undefined;
          },
          30_000,
          500,
        );

        // Nothing happens for this user: Synapse holds the long-poll for 8 s.
        await page.evaluate(
          ({ base, token, since }) => {
            const w = window as unknown as { longPoll?: Promise<number>; longPollDone?: boolean };
            w.longPoll = fetch(`${base}/_matrix/client/v3/sync?since=${encodeURIComponent(since)}&timeout=8000`, {
              headers: { Authorization: `Bearer ${token}` },
            }).then((r) => {
              w.longPollDone = true;
              return r.status;
            });
          },
          { base, token: user.accessToken, since },
        );
        // Chromium starts the worker for the request anyway (webRequest listeners); Kirjava's
        // part is that it also loads the crypto library and opens the account right away.
        await poll(
          'the worker to open the account',
          async () => ((await bed.browser.openAccounts()) > 0 ? true : undefined),
          6_000,
        );
        assert.equal(
          await page.evaluate(() => (window as unknown as { longPollDone?: boolean }).longPollDone ?? false),
          false,
          'the homeserver had not answered yet',
        );
        assert.equal(await page.evaluate(() => (window as unknown as { longPoll: Promise<number> }).longPoll), 200);
      },
    );
  });
}
