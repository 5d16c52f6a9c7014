/**
 * The send guard, told as user stories: whatever part of a plain client sends plaintext
 * into an encrypted room (a Web Worker, its own Service Worker, an iframe, a native fetch
 * or XHR grabbed before the hook could wrap it, a form post, a beacon), under whatever name
 * it reaches the homeserver, the homeserver never stores it; the same sends into an
 * unencrypted room go through. Real Chromium with Kirjava, real Synapse, an E2EE peer; the
 * proof is the server's own copy of the room (`/messages` as the peer).
 */
import assert from 'node:assert/strict';
import { after, afterEach, before, describe, it } from 'node:test';
import { BYPASSES, POSTERS, postThrough, sendThrough, type RawOutcome } from '../fixtures/bypass.ts';
import { poll } from '../fixtures/net.ts';
import type { Peer } from '../fixtures/peer.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';
import { StoryBed } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';

const story = { timeout: 180_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  interface Setup {
    client: PlainClient;
    peer: Peer;
    userId: string;
    token: string;
  }

  async function givenClientAndPeer(): Promise<Setup> {
    const { client, userId, deviceId, accessToken } = await bed.givenLoggedInClient();
    const peer = await bed.givenPeer();
    await peer.waitForDeviceKeys(userId, deviceId);
    return { client, peer, userId, token: accessToken };
  }

  /**
   * A room made by the peer and joined by the client. Room version 10, whose ids carry the
   * server name (`!opaque:localhost`), so the `:` encodings are exercised (v12 ids have none).
   */
  async function givenRoom({ client, peer, userId }: Setup, encrypted: boolean): Promise<string> {
    const { room_id: roomId } = await peer.client.createRoom({
      preset: 'private_chat' as any,
      room_version: '10',
      invite: [userId],
      initial_state: encrypted
        ? [{ type: 'm.room.encryption', state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }]
        : [],
    });
    assert.match(roomId, /^!.+:localhost$/);
    assert.equal(await client.waitForInvite(), roomId);
    await client.joinRoom(roomId);
    await peer.waitForMembership(roomId, userId, 'join');
    return roomId;
  }

  /** Every event of the room as the homeserver stores it, read by the peer without decryption. */
  async function serverEvents(peer: Peer, roomId: string): Promise<Array<Record<string, any>>> {
    const room = encodeURIComponent(roomId);
    const url = `${bed.synapse.baseUrl}/_matrix/client/v3/rooms/${room}/messages?dir=b&limit=1000`;
    const response = await fetch(url, { headers: { Authorization: `Bearer ${peer.accessToken}` } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { chunk: Array<Record<string, any>> }).chunk;
  }

  /** The session rules the extension has installed. */
  function guardRules(): Promise<chrome.declarativeNetRequest.Rule[]> {
    return bed.browser.inExtension(() => chrome.declarativeNetRequest.getSessionRules());
  }

  const allowsRoom = (rules: chrome.declarativeNetRequest.Rule[], roomId: string) =>
    rules.some(
      (rule) => rule.action.type === 'allow' && (rule.condition.regexFilter ?? '').includes(roomId.slice(1, 8)),
    );

  function sendUrl(
    roomPath: string,
    type = 'm.room.message',
    txn?: string,
    prefix = 'v3',
    base = bed.synapse.baseUrl,
  ): string {
    const tail = txn === undefined ? '' : `/${txn}`;
    return `${base}/_matrix/client/${prefix}/rooms/${roomPath}/send/${type}${tail}`;
  }

  /**
   * The test Synapse (configured in Kirjava as http://127.0.0.1:PORT) under the other names
   * the browser reaches it by, as a CNAME or a .well-known name would be.
   */
  const aliases = () => {
    const { port } = new URL(bed.synapse.baseUrl);
    return [`http://localhost:${port}`, `http://[::ffff:127.0.0.1]:${port}`];
  };

  /** A plain client in an encrypted and an unencrypted room (the latter's allow rule in place). */
  async function givenBothRooms(): Promise<Setup & { encrypted: string; plain: string }> {
    const setup = await givenClientAndPeer();
    const encrypted = await givenRoom(setup, true);
    const plain = await givenRoom(setup, false);
    await poll(
      'an allow rule for the unencrypted room',
      async () => (allowsRoom(await guardRules(), plain) ? true : undefined),
      20_000,
    );
    return { ...setup, encrypted, plain };
  }

  /** The server's copy of the room holds no event from the client with a plaintext body. */
  async function assertNoPlaintext(peer: Peer, roomId: string, userId: string) {
    const stored = await serverEvents(peer, roomId);
    const plaintext = stored.filter(
      (e) => e.sender === userId && e.type !== 'm.room.encrypted' && !e.state_key && e.state_key !== '',
    );
    assert.deepEqual(
      plaintext.map((e) => [e.type, e.content?.body]),
      [],
      'plaintext events from the client are on the server',
    );
    assert.ok(!JSON.stringify(stored).includes('Plaintext'), 'a plaintext body is somewhere in the room on the server');
  }

  /** The homeserver stored `body` in the room as the plaintext message it was sent as. */
  async function assertStored(peer: Peer, roomId: string, body: string) {
    const stored = (await serverEvents(peer, roomId)).find((e) => e.content?.body === body);
    assert.equal(stored?.type, 'm.room.message', `"${body}" is not on the server`);
  }

  describe(`Send guard: no plaintext reaches an encrypted room, from any part of the page (${browserName})`, () => {
    before(() => bed.start(), { timeout: 180_000 });

    afterEach(() => bed.cleanUp());

    after(() => bed.stop());

    it(
      'Plaintext sent into an encrypted room from every bypass is blocked ' +
        '(or encrypted by the hook): the server holds zero plaintext events',
      story,
      async () => {
        const setup = await givenClientAndPeer();
        const roomId = await givenRoom(setup, true);
        const headers = { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' };
        const outcomes = new Map<string, RawOutcome>();

        for (const bypass of BYPASSES) {
          const body = `Plaintext via ${bypass}`;
          const outcome = await sendThrough(setup.client.page, bypass, {
            url: sendUrl(encodeURIComponent(roomId), 'm.room.message', `t-${Date.now()}-${outcomes.size}`),
            method: 'PUT',
            headers,
            body: JSON.stringify({ msgtype: 'm.text', body }),
          });
          outcomes.set(bypass, outcome);
          if (outcome.status === 200) {
            const eventId = JSON.parse(outcome.text).event_id;
            const stored = (await serverEvents(setup.peer, roomId)).find((e) => e.event_id === eventId);
            assert.equal(stored?.type, 'm.room.encrypted', `${bypass}: the server stored ${stored?.type}`);
          } else {
            assert.equal(outcome.status, 0, `${bypass}: ${outcome.status} ${outcome.text}`);
          }
        }
        console.log(
          '[guard] encrypted room:',
          JSON.stringify(
            Object.fromEntries([...outcomes].map(([k, v]) => [k, v.status === 0 ? 'blocked' : 'encrypted'])),
          ),
        );
        // Whatever the hook cannot see must be blocked by the guard itself. (Iframes on the
        // page's origin get the hook at creation, so they encrypt: either outcome is safe.)
        for (const bypass of BYPASSES.filter((b) => /Worker|sandboxed/.test(b))) {
          assert.equal(outcomes.get(bypass)?.status, 0, `${bypass} was not blocked`);
        }

        // Odd spellings of the same send, from the page's Web Worker (outside the hook).
        const raw = roomId;
        const encoded = encodeURIComponent(roomId);
        const variants: Array<[string, string, string]> = [
          ['raw room id', sendUrl(raw, 'm.room.message', 'v1'), 'PUT'],
          [
            'lower-case escapes',
            sendUrl(encoded.replace('%3A', '%3a').replace('!', '%21'), 'm.room.message', 'v2'),
            'PUT',
          ],
          ['r0 prefix', sendUrl(encoded, 'm.room.message', 'v3', 'r0'), 'PUT'],
          ['api/v1 prefix', sendUrl(encoded, 'm.room.message', 'v4', 'api/v1'), 'PUT'],
          ['POST without txn id', sendUrl(encoded), 'POST'],
          ['empty txn id', sendUrl(encoded, 'm.room.message', ''), 'PUT'],
          ['upper-case m.room.encrypted', sendUrl(encoded, 'M.ROOM.ENCRYPTED', 'v5'), 'PUT'],
          [
            'm.room.encrypted in the query',
            `${sendUrl(encoded, 'm.room.message', 'v6')}?x=/send/m.room.encrypted`,
            'PUT',
          ],
          ['escaped event type', sendUrl(encoded, 'm.room.encrypte%64', 'v7'), 'PUT'],
          [
            'access token in the query',
            `${sendUrl(encoded, 'm.room.message', 'v8')}?access_token=${setup.token}`,
            'PUT',
          ],
        ];
        for (const [what, url, method] of variants) {
          const outcome = await sendThrough(setup.client.page, 'page Web Worker fetch', {
            url,
            method,
            headers,
            body: JSON.stringify({ msgtype: 'm.text', body: `Plaintext, ${what}` }),
          });
          assert.equal(outcome.status, 0, `${what}: ${outcome.status} ${outcome.text}`);
        }

        // A genuine m.room.encrypted from the same bypass passes (E2EE clients keep working).
        const ciphertext = await sendThrough(setup.client.page, 'page Web Worker fetch', {
          url: sendUrl(encoded, 'm.room.encrypted', `enc-${Date.now()}`),
          method: 'PUT',
          headers,
          body: JSON.stringify({
            algorithm: 'm.megolm.v1.aes-sha2',
            ciphertext: 'AwgA',
            sender_key: 'x',
            device_id: 'X',
            session_id: 's',
          }),
        });
        assert.equal(ciphertext.status, 200, ciphertext.text);

        await assertNoPlaintext(setup.peer, roomId, setup.userId);
      },
    );

    it(
      'Form posts and beacons, token in the query, never store plaintext in an encrypted room, ' +
        'under any host name; into a known unencrypted room they reach the homeserver',
      story,
      async () => {
        const setup = await givenBothRooms();
        const outcomes: Record<string, string> = {};
        const notSentByFirefox: string[] = [];
        const firefoxReports: string[] = [];
        for (const poster of POSTERS) {
          // A navigating form takes its tab away: it gets a fresh tab of the allowed site.
          const page =
            poster === 'form post navigating the tab'
              ? () => bed.givenClientTab().then((tab) => tab.page)
              : async () => setup.client.page;
          const query = `?access_token=${encodeURIComponent(setup.token)}`;
          for (const base of [bed.synapse.baseUrl, ...aliases()]) {
            const url = (roomId: string) =>
              sendUrl(encodeURIComponent(roomId), 'm.room.message', undefined, 'v3', base) + query;
            const outcome = await postThrough(
              await page(),
              poster,
              url(setup.encrypted),
              JSON.stringify({ msgtype: 'm.text', body: `Plaintext via ${poster} to ${base}` }),
            );
            // Blocked (0); in Firefox also unreported (-1): the homeserver's copy below is the proof.
            const blocked = outcome.status === 0 || (bed.browserName === 'firefox' && outcome.status === -1);
            assert.ok(blocked, `${poster} to ${base}: ${outcome.status} ${outcome.text}`);
            // The same post into the unencrypted room is stored: the post itself works.
            const body = `Plain via ${poster} to ${base}`;
            const plain = await postThrough(
              await page(),
              poster,
              url(setup.plain),
              JSON.stringify({ msgtype: 'm.text', body }),
            );
            if (plain.status === -1 && bed.browserName === 'firefox') {
              // Firefox sends some posts to a host alias not at all (a form into a hidden iframe
              // to [::ffff:127.0.0.1]) and says nothing: the guard is not what stopped it there.
              notSentByFirefox.push(`${poster} to ${base}`);
              continue;
            }
            if (bed.browserName === 'firefox' && plain.status !== 200) {
              // Firefox reports a beacon as failed (NS_ERROR_FAILURE) whatever became of it:
              // the homeserver's copy says whether it went out.
              firefoxReports.push(`${poster} to ${base}: ${plain.status} ${plain.text}`);
            } else {
              assert.equal(plain.status, 200, `${poster} to ${base}, unencrypted room: ${plain.status} ${plain.text}`);
            }
            await assertStored(setup.peer, setup.plain, body);
          }
          outcomes[poster] = 'blocked; unencrypted room: stored';
        }
        console.log('[guard] posts:', JSON.stringify(outcomes));
        if (bed.browserName === 'firefox') {
          console.log('[guard] Firefox sent not at all:', notSentByFirefox, '; reported otherwise:', firefoxReports);
        }
        await assertNoPlaintext(setup.peer, setup.encrypted, setup.userId);

        // The rules leave no way out: they name every resource type this browser has.
        const types = await bed.browser.inExtension(
          () => Object.values(chrome.declarativeNetRequest.ResourceType) as string[],
        );
        for (const rule of (await guardRules()).filter((r) => r.action.type === 'block')) {
          assert.deepEqual(
            types.filter((type) => !rule.condition.resourceTypes?.includes(type as any)),
            [],
            'resource types the block rule leaves out',
          );
        }
      },
    );

    it(
      'Sends to the homeserver under another name (localhost, IPv4-mapped IPv6) never store plaintext: ' +
        'the hook answers with a Matrix error and sends nothing, the guard blocks what the hook cannot see',
      story,
      async () => {
        const setup = await givenBothRooms();
        const headers = { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' };
        /** Sends from every bypass to every alias; what each got, and what the network saw of it. */
        const sendEverywhere = async (roomId: string, what: string) => {
          const outcomes = new Map<string, RawOutcome & { requests: string[]; body: string }>();
          for (const alias of aliases()) {
            for (const bypass of BYPASSES) {
              const body = `${what} via ${bypass} to ${alias}`;
              const requests: string[] = [];
              const watch = (request: { url(): string }) => {
                if (new URL(request.url()).origin === new URL(alias).origin) requests.push(request.url());
              };
              bed.browser.context.on('request', watch);
              const outcome = await sendThrough(setup.client.page, bypass, {
                url: sendUrl(encodeURIComponent(roomId), 'm.room.message', `a-${Date.now()}`, 'v3', alias),
                method: 'PUT',
                headers,
                body: JSON.stringify({ msgtype: 'm.text', body }),
              });
              bed.browser.context.off('request', watch);
              outcomes.set(`${bypass} to ${new URL(alias).host}`, { ...outcome, requests, body });
            }
          }
          return outcomes;
        };
        const refusedByTheHook = (name: string, outcome: RawOutcome & { requests: string[] }) => {
          assert.equal(outcome.status, 403, `${name}: ${outcome.status} ${outcome.text}`);
          const error = JSON.parse(outcome.text);
          const host = name.slice(name.lastIndexOf(' to ') + 4);
          assert.equal(error.errcode, 'M_FORBIDDEN', `${name}: ${outcome.text}`);
          assert.ok(error.error.startsWith(`Kirjava does not handle ${host}: `), `${name}: ${outcome.text}`);
          assert.ok(error.error.includes(`Add http://${host} as a homeserver`), `${name}: ${outcome.text}`);
          assert.deepEqual(outcome.requests, [], `${name}: Kirjava refused the send but it went out`);
        };
        // Every context the MAIN-world hook runs in answers itself; the others (the same split
        // as above) meet the guard.
        const hookless = (name: string) => /Worker|sandboxed/.test(name);

        const encrypted = await sendEverywhere(setup.encrypted, 'Plaintext');
        console.log(
          '[guard] aliases, encrypted room:',
          JSON.stringify(Object.fromEntries([...encrypted].map(([k, v]) => [k, v.status]))),
        );
        for (const [name, outcome] of encrypted) {
          if (hookless(name)) assert.equal(outcome.status, 0, `${name}: ${outcome.status} ${outcome.text}`);
          else refusedByTheHook(name, outcome);
        }
        // A genuine m.room.encrypted through another name passes (E2EE clients keep working).
        for (const alias of aliases()) {
          const ciphertext = await sendThrough(setup.client.page, 'page Web Worker fetch', {
            url: sendUrl(encodeURIComponent(setup.encrypted), 'm.room.encrypted', `enc-${Date.now()}`, 'v3', alias),
            method: 'PUT',
            headers,
            body: JSON.stringify({
              algorithm: 'm.megolm.v1.aes-sha2',
              ciphertext: 'AwgA',
              sender_key: 'x',
              device_id: 'X',
              session_id: 's',
            }),
          });
          assert.equal(ciphertext.status, 200, `${alias}: ${ciphertext.text}`);
        }
        await assertNoPlaintext(setup.peer, setup.encrypted, setup.userId);

        // The known unencrypted room: the guard lets its sends pass on any host, but the
        // hook refuses a name Kirjava does not know all the same.
        const plain = await sendEverywhere(setup.plain, 'Plain');
        console.log(
          '[guard] aliases, unencrypted room:',
          JSON.stringify(Object.fromEntries([...plain].map(([k, v]) => [k, v.status]))),
        );
        for (const [name, outcome] of plain) {
          if (!hookless(name)) refusedByTheHook(name, outcome);
          else {
            assert.equal(outcome.status, 200, `${name}: ${outcome.status} ${outcome.text}`);
            await assertStored(setup.peer, setup.plain, outcome.body);
            // The watch that shows the hook sent nothing does see a request that went out (a
            // worker's; Playwright reports none from a sandboxed frame).
            // Firefox's BiDi reports no request of a page's own Service Worker.
            const watched =
              name.includes('Worker') && !(bed.browserName === 'firefox' && name.includes('Service Worker'));
            if (watched) assert.notDeepEqual(outcome.requests, [], `${name}: the request went unseen`);
          }
        }
      },
    );

    it('The same sends into an unencrypted room go through from every bypass', story, async () => {
      const setup = await givenClientAndPeer();
      const roomId = await givenRoom(setup, false);
      // The worker looks the room up after the client's sync and adds its allow rule.
      await poll(
        'an allow rule for the unencrypted room',
        async () => (allowsRoom(await guardRules(), roomId) ? true : undefined),
        20_000,
      );
      const headers = { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' };
      const spellings = [
        encodeURIComponent(roomId),
        roomId,
        encodeURIComponent(roomId).replace('%3A', '%3a').replace('!', '%21'),
      ];

      let n = 0;
      for (const bypass of BYPASSES) {
        const body = `Plain via ${bypass}`;
        const outcome = await sendThrough(setup.client.page, bypass, {
          url: sendUrl(spellings[n % spellings.length], 'm.room.message', `p-${Date.now()}-${n++}`),
          method: 'PUT',
          headers,
          body: JSON.stringify({ msgtype: 'm.text', body }),
        });
        assert.equal(outcome.status, 200, `${bypass}: ${outcome.status} ${outcome.text}`);
        const stored = (await serverEvents(setup.peer, roomId)).find(
          (e) => e.event_id === JSON.parse(outcome.text).event_id,
        );
        assert.equal(stored?.type, 'm.room.message');
        assert.equal(stored?.content.body, body);
      }
    });

    it(
      "The send guard story's odd spellings into an unencrypted room through the page's own fetch and XHR " +
        'go through: the hook sends them in the one canonical spelling the allow rule knows',
      story,
      async () => {
        const setup = await givenBothRooms();
        const headers = { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' };
        const encoded = encodeURIComponent(setup.plain);
        const bytes = [...new TextEncoder().encode(setup.plain)];
        const everyByteLower = bytes.map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');
        const everyByteUpper = everyByteLower.toUpperCase();
        const spellings: Array<[string, string, string]> = [
          ['every byte escaped, lower-case', sendUrl(everyByteLower, 'm.room.message', 'o1'), 'PUT'],
          ['every byte escaped, upper-case', sendUrl(everyByteUpper, 'm.room.message', 'o2'), 'PUT'],
          ['raw room id', sendUrl(setup.plain, 'm.room.message', 'o3'), 'PUT'],
          [
            'lower-case escapes',
            sendUrl(encoded.replace('%3A', '%3a').replace('!', '%21'), 'm.room.message', 'o4'),
            'PUT',
          ],
          ['r0 prefix, every byte escaped', sendUrl(everyByteLower, 'm.room.message', 'o5', 'r0'), 'PUT'],
          ['api/v1 prefix', sendUrl(encoded, 'm.room.message', 'o6', 'api/v1'), 'PUT'],
          ['POST without txn id, every byte escaped', sendUrl(everyByteLower), 'POST'],
          ['empty txn id', sendUrl(everyByteLower, 'm.room.message', ''), 'PUT'],
        ];
        const outcomes: Record<string, number> = {};
        for (const bypass of ['page fetch (hooked)', 'page XHR (hooked)'] as const) {
          for (const [what, url, method] of spellings) {
            // The empty txn id is one transaction: the homeserver answers a second one with the first's event.
            if (what === 'empty txn id' && bypass !== 'page fetch (hooked)') continue;
            const body = `Plain, ${what}, via ${bypass}`;
            const outcome = await sendThrough(setup.client.page, bypass, {
              url: url.replace(/\/(o\d)$/, `/$1-${bypass.includes('XHR') ? 'x' : 'f'}`),
              method,
              headers,
              body: JSON.stringify({ msgtype: 'm.text', body }),
            });
            outcomes[`${what} via ${bypass}`] = outcome.status;
            assert.equal(outcome.status, 200, `${what} via ${bypass}: ${outcome.status} ${outcome.text}`);
            await assertStored(setup.peer, setup.plain, body);
          }
        }
        console.log('[guard] odd spellings into an unencrypted room:', JSON.stringify(outcomes));
        // The same spellings into the encrypted room are encrypted by the hook, never plaintext.
        const everyByteEncrypted = [...new TextEncoder().encode(setup.encrypted)]
          .map((b) => `%${b.toString(16).padStart(2, '0')}`)
          .join('');
        const outcome = await sendThrough(setup.client.page, 'page fetch (hooked)', {
          url: sendUrl(everyByteEncrypted, 'm.room.message', `oe-${Date.now()}`),
          method: 'PUT',
          headers,
          body: JSON.stringify({ msgtype: 'm.text', body: 'Plaintext, every byte escaped' }),
        });
        assert.equal(outcome.status, 200, outcome.text);
        const stored = (await serverEvents(setup.peer, setup.encrypted)).find(
          (e) => e.event_id === JSON.parse(outcome.text).event_id,
        );
        assert.equal(stored?.type, 'm.room.encrypted');
        await assertNoPlaintext(setup.peer, setup.encrypted, setup.userId);
      },
    );

    it(
      'A room that turns encrypted: by the time the client shows it encrypted, bypass sends are blocked',
      story,
      async () => {
        const setup = await givenClientAndPeer();
        const roomId = await givenRoom(setup, false);
        await poll(
          'an allow rule for the unencrypted room',
          async () => (allowsRoom(await guardRules(), roomId) ? true : undefined),
          20_000,
        );

        await setup.peer.client.sendStateEvent(
          roomId,
          'm.room.encryption' as any,
          { algorithm: 'm.megolm.v1.aes-sha2' },
          '',
        );
        // The test client lists its only room as "[encrypted room]" once its sync said so.
        await setup.client.page.waitForFunction(() => document.body.textContent!.includes('[encrypted room]'), null, {
          timeout: 15_000,
        });
        assert.equal(allowsRoom(await guardRules(), roomId), false, 'the allow rule outlived the encryption event');
        const outcome = await sendThrough(setup.client.page, 'page Web Worker fetch', {
          url: sendUrl(encodeURIComponent(roomId), 'm.room.message', `late-${Date.now()}`),
          method: 'PUT',
          headers: { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ msgtype: 'm.text', body: 'Plaintext after the room turned encrypted' }),
        });
        assert.equal(outcome.status, 0, `${outcome.status} ${outcome.text}`);
      },
    );

    it(
      "The rules come back after the worker restarts, and the extension's own encrypted sends still pass",
      story,
      async () => {
        const setup = await givenClientAndPeer();
        const roomId = await givenRoom(setup, true);
        await bed.browser.stopWorker();
        const blocked = await sendThrough(setup.client.page, 'page Web Worker fetch', {
          url: sendUrl(encodeURIComponent(roomId), 'm.room.message', `r-${Date.now()}`),
          method: 'PUT',
          headers: { Authorization: `Bearer ${setup.token}`, 'Content-Type': 'application/json' },
          body: JSON.stringify({ msgtype: 'm.text', body: 'Plaintext while the worker is stopped' }),
        });
        assert.equal(blocked.status, 0, `${blocked.status} ${blocked.text}`);
        const eventId = await setup.client.sendText(roomId, 'Encrypted after the restart');
        const stored = (await serverEvents(setup.peer, roomId)).find((e) => e.event_id === eventId);
        assert.equal(stored?.type, 'm.room.encrypted');
        assert.equal((await setup.peer.waitForText(roomId, 'Encrypted after the restart')).decrypted, true);
      },
    );
  });
}
