/** `POST /search` reaches Kirjava with its `next_batch`; other methods and paths do not. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { routeOf } from '../../src/content/routes.ts';

const BASE = 'https://matrix.example.org';

describe('The search route', () => {
  it('routes POST /search in every version, with the next_batch query parameter', () => {
    for (const version of ['r0', 'v3', 'unstable']) {
      assert.deepEqual(routeOf(BASE, 'POST', `${BASE}/_matrix/client/${version}/search`), {
        kind: 'search',
        nextBatch: undefined,
      });
    }
    assert.deepEqual(routeOf(BASE, 'post', `${BASE}/_matrix/client/v3/search?next_batch=kirjava1.abc%3D`), {
      kind: 'search',
      nextBatch: 'kirjava1.abc=',
    });
  });

  it('leaves GET /search, user directory search and other homeservers alone', () => {
    assert.equal(routeOf(BASE, 'GET', `${BASE}/_matrix/client/v3/search`), undefined);
    assert.equal(routeOf(BASE, 'POST', `${BASE}/_matrix/client/v3/user_directory/search`), undefined);
    assert.equal(routeOf(BASE, 'POST', 'https://other.example.org/_matrix/client/v3/search'), undefined);
  });
});
