/**
 * Which page requests the MAIN-world hook hands to the worker (routeOf), whose token
 * they carry (tokenOf), and which sends to an unknown host it refuses (roomSendBase). A
 * request routeOf does not recognise goes out untouched, so a send it misses goes out in
 * plaintext.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalSendUrl, roomSendBase, routeOf, tokenOf, withoutOnly } from '../../src/content/routes.ts';

const BASE = 'https://matrix.example.org';
const ROOM = '!abc:example.org';
const ROOM_SEGMENT = '!abc%3Aexample.org';
const url = (path: string, base = BASE) => `${base}/_matrix/client/v3${path}`;

describe('routeOf', () => {
  describe('sync, login and logout', () => {
    it('recognises /sync under r0, v3 and unstable, with a query string', () => {
      for (const version of ['r0', 'v3', 'unstable']) {
        assert.deepEqual(
          routeOf(BASE, 'GET', `${BASE}/_matrix/client/${version}/sync?since=s72594_4483_1934&timeout=30000`),
          { kind: 'sync' },
          version,
        );
      }
    });

    it('recognises POST /login and /logout, /logout/all, and nothing else with those paths', () => {
      assert.deepEqual(routeOf(BASE, 'POST', url('/login')), { kind: 'login' });
      assert.deepEqual(routeOf(BASE, 'post', url('/logout')), { kind: 'logout', all: false });
      assert.deepEqual(routeOf(BASE, 'POST', url('/logout/all')), { kind: 'logout', all: true });
      assert.equal(routeOf(BASE, 'GET', url('/login')), undefined, 'GET /login lists login flows');
      assert.equal(routeOf(BASE, 'POST', url('/sync')), undefined);
    });

    it('ignores other client-server endpoints and other APIs', () => {
      assert.equal(routeOf(BASE, 'GET', url('/account/whoami')), undefined);
      assert.equal(routeOf(BASE, 'GET', url(`/rooms/${ROOM_SEGMENT}/members`)), undefined);
      assert.equal(routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/state/m.room.topic/`)), undefined);
      assert.equal(routeOf(BASE, 'GET', `${BASE}/_matrix/media/v3/download/example.org/abc`), undefined);
      assert.equal(routeOf(BASE, 'GET', `${BASE}/_matrix/client/v4/sync`), undefined);
      assert.equal(routeOf(BASE, 'GET', `${BASE}/sync`), undefined);
    });
  });

  describe('room history', () => {
    it('recognises /messages, /context/{eventId} and /event/{eventId} with the room id decoded', () => {
      for (const tail of ['messages?dir=b&limit=20', 'context/%24event%3Aexample.org', 'event/$event:example.org']) {
        assert.deepEqual(
          routeOf(BASE, 'GET', url(`/rooms/${ROOM_SEGMENT}/${tail}`)),
          { kind: 'events', roomId: ROOM },
          tail,
        );
      }
    });

    it('accepts a room id written unencoded and one with an encoded slash', () => {
      assert.deepEqual(routeOf(BASE, 'GET', url(`/rooms/${ROOM}/messages`)), { kind: 'events', roomId: ROOM });
      assert.deepEqual(routeOf(BASE, 'GET', url('/rooms/!a%2Fb%3Aexample.org/messages')), {
        kind: 'events',
        roomId: '!a/b:example.org',
      });
    });

    it('ignores history endpoints with another method, or with extra path segments', () => {
      assert.equal(routeOf(BASE, 'POST', url(`/rooms/${ROOM_SEGMENT}/messages`)), undefined);
      assert.equal(routeOf(BASE, 'GET', url(`/rooms/${ROOM_SEGMENT}/event/$a/b`)), undefined);
      assert.equal(routeOf(BASE, 'GET', url(`/rooms/${ROOM_SEGMENT}/context`)), undefined);
    });
  });

  describe('sends', () => {
    it('recognises PUT /rooms/{roomId}/send/{eventType}/{txnId} with everything decoded', () => {
      assert.deepEqual(routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/m1700000000.7`)), {
        kind: 'send',
        roomId: ROOM,
        eventType: 'm.room.message',
        txnId: 'm1700000000.7',
        sendSegment: '/send/m.room.message/m1700000000.7',
      });
    });

    it('recognises the same path sent with POST, and lower-case methods', () => {
      assert.equal(routeOf(BASE, 'POST', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/t1`))?.kind, 'send');
      assert.equal(routeOf(BASE, 'put', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/t1`))?.kind, 'send');
      assert.equal(routeOf(BASE, 'GET', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/t1`)), undefined);
    });

    it('keeps dotted and percent-encoded event types and txn ids, decoded, with the raw segment for rewriting', () => {
      const route = routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/org.example.poll.v2/a%2Fb%20c`));
      assert.deepEqual(route, {
        kind: 'send',
        roomId: ROOM,
        eventType: 'org.example.poll.v2',
        txnId: 'a/b c',
        sendSegment: '/send/org.example.poll.v2/a%2Fb%20c',
      });
      const encodedDots = routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/m%2Eroom%2Emessage/t`));
      assert.equal(encodedDots?.kind === 'send' && encodedDots.eventType, 'm.room.message');
    });

    it('recognises a send under r0 and unstable too', () => {
      for (const version of ['r0', 'unstable']) {
        const path = `${BASE}/_matrix/client/${version}/rooms/${ROOM_SEGMENT}/send/m.room.message/t`;
        assert.equal(routeOf(BASE, 'PUT', path)?.kind, 'send', version);
      }
    });

    // Synapse serves these sends (synapse/rest/client/room.py register_txn_path: POST without a
    // txn id, PUT with a possibly empty one, both also under /_matrix/client/api/v1). A send
    // routeOf misses leaves the page in plaintext, even into an encrypted room.
    it('does not miss a POST /rooms/{roomId}/send/{eventType} without txn id (served by Synapse)', () => {
      assert.equal(routeOf(BASE, 'POST', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message`))?.kind, 'send');
    });

    it('does not miss a send under the legacy /_matrix/client/api/v1 prefix (served by Synapse)', () => {
      const path = `${BASE}/_matrix/client/api/v1/rooms/${ROOM_SEGMENT}/send/m.room.message/t1`;
      assert.equal(routeOf(BASE, 'PUT', path)?.kind, 'send');
    });

    it('does not miss a PUT send with an empty txn id (served by Synapse)', () => {
      assert.equal(routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/`))?.kind, 'send');
    });
  });

  describe('malformed percent-encoding', () => {
    it('does not throw, and a non-send request with a malformed room id is left alone', () => {
      assert.equal(routeOf(BASE, 'GET', url('/rooms/%E0%A4%A/messages')), undefined);
      assert.equal(routeOf(BASE, 'GET', url('/rooms/%ZZ/messages')), undefined);
      assert.equal(routeOf(BASE, 'GET', url('/rooms/%/event/x')), undefined);
    });

    // Synapse decodes path segments with urllib.parse.unquote, which never fails (invalid
    // UTF-8 becomes U+FFFD, a stray % stays), so it accepts this send: routeOf must fail closed.
    it('still routes a send whose txn id or event type is malformed, so it cannot leave in plaintext', () => {
      assert.equal(routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message/%E0%A4%A`))?.kind, 'send');
      assert.equal(routeOf(BASE, 'PUT', url(`/rooms/${ROOM_SEGMENT}/send/m.room.message%FF/t1`))?.kind, 'send');
    });
  });

  describe('homeserver base URL', () => {
    it('accepts a base URL with a path prefix, with or without a trailing slash', () => {
      for (const base of ['https://example.org/matrix', 'https://example.org/matrix/']) {
        assert.deepEqual(
          routeOf(base, 'GET', 'https://example.org/matrix/_matrix/client/v3/sync'),
          { kind: 'sync' },
          base,
        );
        const send = routeOf(
          base,
          'PUT',
          `https://example.org/matrix/_matrix/client/v3/rooms/${ROOM_SEGMENT}/send/m.room.message/t`,
        );
        assert.equal(send?.kind === 'send' && send.roomId, ROOM, base);
      }
    });

    it('ignores a URL on the same origin outside the base path', () => {
      const base = 'https://example.org/matrix';
      assert.equal(routeOf(base, 'GET', 'https://example.org/_matrix/client/v3/sync'), undefined);
      // Same length as "/matrix", but another path: not this homeserver.
      assert.equal(routeOf(base, 'GET', 'https://example.org/abcdef/_matrix/client/v3/sync'), undefined);
      assert.equal(routeOf(base, 'GET', 'https://example.org/other/matrix/_matrix/client/v3/sync'), undefined);
    });

    it('ignores other origins: host, scheme, port', () => {
      for (const other of [
        'https://evil.example/_matrix/client/v3/sync',
        'http://matrix.example.org/_matrix/client/v3/sync',
        'https://matrix.example.org:8448/_matrix/client/v3/sync',
        'https://matrix.example.org.evil.example/_matrix/client/v3/sync',
      ]) {
        assert.equal(routeOf(BASE, 'GET', other), undefined, other);
      }
    });

    it('treats the default port and host case as the same origin', () => {
      assert.deepEqual(routeOf(BASE, 'GET', 'https://MATRIX.example.org:443/_matrix/client/v3/sync'), { kind: 'sync' });
    });

    it('returns undefined for unparseable URLs instead of throwing', () => {
      assert.equal(routeOf(BASE, 'GET', '/_matrix/client/v3/sync'), undefined);
      assert.equal(routeOf('not a url', 'GET', url('/sync')), undefined);
      assert.equal(routeOf(BASE, 'GET', 'http://[::1/_matrix/client/v3/sync'), undefined);
    });
  });
});

describe('tokenOf', () => {
  const plain = url('/sync');

  it('takes the token of an Authorization: Bearer header, scheme case-insensitive', () => {
    assert.equal(tokenOf('Bearer syt_abc_123', plain), 'syt_abc_123');
    assert.equal(tokenOf('bearer syt_abc_123', plain), 'syt_abc_123');
    assert.equal(tokenOf('Bearer   syt_abc_123', plain), 'syt_abc_123');
  });

  it('falls back to the legacy access_token query parameter, decoded', () => {
    assert.equal(tokenOf(null, `${plain}?since=x&access_token=syt_q%2B1`), 'syt_q+1');
  });

  it('prefers the header when both are present', () => {
    assert.equal(tokenOf('Bearer from_header', `${plain}?access_token=from_query`), 'from_header');
  });

  it('uses the query parameter when the header is not a usable bearer token', () => {
    for (const header of ['Basic dXNlcjpwYXNz', 'Bearer', 'Bearer ', 'Bearer two words', '']) {
      assert.equal(tokenOf(header, `${plain}?access_token=q`), 'q', JSON.stringify(header));
    }
  });

  it('has no token when there is neither, and never throws on a bad URL', () => {
    assert.equal(tokenOf(null, plain), undefined);
    assert.equal(tokenOf('Basic x', plain), undefined);
    assert.equal(tokenOf(null, 'not a url'), undefined);
  });
});

describe('roomSendBase', () => {
  const send = `/_matrix/client/v3/rooms/${ROOM_SEGMENT}/send/m.room.message/t1`;

  it('finds a room send on any host, and the base URL that host would be configured with', () => {
    assert.equal(roomSendBase('PUT', new URL(`http://localhost:8008${send}`)), 'http://localhost:8008');
    assert.equal(roomSendBase('post', new URL(`http://[::ffff:127.0.0.1]:8008${send}`)), 'http://[::ffff:7f00:1]:8008');
    assert.equal(
      roomSendBase('PUT', new URL(`https://example.org/matrix${send}?access_token=x`)),
      'https://example.org/matrix',
    );
  });

  it('spells sends as loosely as the send guard: any prefix, doubled slashes, any case, backslashes', () => {
    for (const path of [
      `/_matrix/client/r0/rooms/${ROOM}/send/m.room.encrypted`,
      `/_matrix/client/v4/rooms/${ROOM}/send/m.room.message/t`,
      `/_matrix//client//v3//rooms//${ROOM}//send//m.room.message`,
      `/_MATRIX/Client/V3/Rooms/${ROOM}/SEND/m.room.message/t`,
      `\\_matrix\\client\\v3\\rooms\\${ROOM}\\send\\m.room.message\\t`,
    ]) {
      assert.equal(roomSendBase('PUT', new URL(`https://hs.example.org${path}`)), 'https://hs.example.org', path);
    }
  });

  it('leaves everything else alone: reads, other endpoints, other methods', () => {
    for (const [method, path] of [
      ['GET', send],
      ['PUT', `/_matrix/client/v3/rooms/${ROOM}/state/m.room.name/`],
      ['GET', '/_matrix/client/v3/sync'],
      ['POST', '/_matrix/client/v3/login'],
      ['POST', `/api/upload?next=/_matrix/client/v3/rooms/${ROOM}/send/m.room.message/t`],
    ]) {
      assert.equal(roomSendBase(method, new URL(`https://hs.example.org${path}`)), undefined, `${method} ${path}`);
    }
  });
});

describe('canonicalSendUrl: the one spelling of a send the guard allows', () => {
  const send = (segment: string, prefix = 'v3', base = BASE) =>
    `${base}/_matrix/client/${prefix}/rooms/${segment}/send/m.room.message/t1?x=1`;
  const everyByte = (id: string) =>
    [...new TextEncoder().encode(id)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('');

  it('re-encodes a room id with every byte escaped (lower-case) or unescaped as encodeURIComponent does', () => {
    assert.equal(everyByte('!a:b').startsWith('%21%61'), true);
    for (const segment of [everyByte(ROOM), everyByte(ROOM).toUpperCase(), ROOM, '%21abc%3aexample.org']) {
      assert.equal(canonicalSendUrl(send(segment)), send(ROOM_SEGMENT), segment);
    }
    assert.equal(canonicalSendUrl(send(everyByte(ROOM), 'r0')), send(ROOM_SEGMENT, 'r0'));
    // A homeserver below a path, and a v12 room id without a server name.
    const base = 'https://example.org/matrix';
    assert.equal(canonicalSendUrl(send(everyByte('!opaque_Id-9'), 'v3', base)), send('!opaque_Id-9', 'v3', base));
  });

  it('leaves the canonical spelling, malformed escapes and ids that are not room ids as the page wrote them', () => {
    for (const segment of [ROOM_SEGMENT, '%21abc%3Aexample.org%zz', '%23alias%3Aexample.org', '%21a%2Fb', '%21a%20b']) {
      assert.equal(canonicalSendUrl(send(segment)), send(segment), segment);
    }
    const notSend = `${BASE}/_matrix/client/v3/rooms/${everyByte(ROOM)}/messages`;
    assert.equal(canonicalSendUrl(notSend), notSend);
  });
});

describe('/notifications', () => {
  it('is routed, and says whether the page asked for only=highlight', () => {
    assert.deepEqual(routeOf(BASE, 'GET', url('/notifications?limit=10')), {
      kind: 'notifications',
      onlyHighlight: false,
    });
    assert.deepEqual(routeOf(BASE, 'GET', url('/notifications?from=n1&only=highlight')), {
      kind: 'notifications',
      onlyHighlight: true,
    });
    assert.equal(
      withoutOnly(url('/notifications?from=n1&only=highlight&limit=5')),
      url('/notifications?from=n1&limit=5'),
    );
  });
});
