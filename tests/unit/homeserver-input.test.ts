/**
 * The "Homeserver URL" field saves only a homeserver that answers: what users type (a server
 * name, a user id, a full base URL) is resolved through `/.well-known/matrix/client` and
 * checked with `/_matrix/client/versions`; a client's page URL, an API path or plain http://
 * to a public host is refused with a message that says what to enter. A wrong URL would leave
 * the client's traffic untouched by Kirjava, so these are the settings that could let
 * plaintext out.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resolveHomeserver } from '../../src/options/homeserver-input.ts';

const VERSIONS = { versions: ['v1.11'] };

/** A network of `url → JSON body` (status 200); anything else is a 404, or a failure for `down` hosts. */
function network(answers: Record<string, unknown>, down: string[] = []) {
  const asked: string[] = [];
  const fetchFn = async (url: string) => {
    asked.push(url);
    if (down.some((host) => url.startsWith(host))) throw new TypeError('Failed to fetch');
    if (url in answers) return new Response(JSON.stringify(answers[url]), { status: 200 });
    return new Response('<html>not found</html>', { status: 404 });
  };
  return { fetchFn, asked };
}

describe('resolveHomeserver', () => {
  it('saves a full base URL that answers as typed, after checking /versions', async () => {
    const { fetchFn, asked } = network({ 'https://matrix.example.org/_matrix/client/versions': VERSIONS });
    assert.deepEqual(await resolveHomeserver(' https://matrix.example.org/ ', fetchFn), {
      ok: true,
      entry: 'https://matrix.example.org',
    });
    assert.deepEqual(asked, ['https://matrix.example.org/_matrix/client/versions']);
  });

  it('resolves a server name and a user id through /.well-known/matrix/client', async () => {
    const { fetchFn } = network({
      'https://example.org/.well-known/matrix/client': { 'm.homeserver': { base_url: 'https://matrix.example.org/' } },
      'https://matrix.example.org/_matrix/client/versions': VERSIONS,
    });
    for (const typed of ['example.org', '@alice:example.org']) {
      assert.deepEqual(await resolveHomeserver(typed, fetchFn), { ok: true, entry: 'https://matrix.example.org' });
    }
  });

  it('follows the well-known of a base URL that is not the homeserver itself', async () => {
    const { fetchFn } = network({
      'https://example.org/.well-known/matrix/client': { 'm.homeserver': { base_url: 'https://matrix.example.org' } },
      'https://matrix.example.org/_matrix/client/versions': VERSIONS,
    });
    assert.deepEqual(await resolveHomeserver('https://example.org', fetchFn), {
      ok: true,
      entry: 'https://matrix.example.org',
    });
  });

  it('takes a server name without a well-known as the homeserver when it answers; http for a local one', async () => {
    const { fetchFn } = network({ 'http://localhost:8008/_matrix/client/versions': VERSIONS }, ['https://localhost']);
    assert.deepEqual(await resolveHomeserver('localhost:8008', fetchFn), { ok: true, entry: 'http://localhost:8008' });
  });

  it('a missing or broken well-known: a clear error that offers the full base URL', async () => {
    const missing = await resolveHomeserver('example.org', network({}).fetchFn);
    assert.equal(missing.ok, false);
    assert.match(!missing.ok ? missing.error : '', /Could not find the homeserver of example\.org/);
    assert.match(!missing.ok ? missing.error : '', /Enter the homeserver’s full base URL/);
    const broken = await resolveHomeserver(
      'example.org',
      network({ 'https://example.org/.well-known/matrix/client': { 'm.homeserver': {} } }).fetchFn,
    );
    assert.match(!broken.ok ? broken.error : '', /names no m\.homeserver base_url/);
    const dead = await resolveHomeserver(
      'example.org',
      network({
        'https://example.org/.well-known/matrix/client': { 'm.homeserver': { base_url: 'https://m.example' } },
      }).fetchFn,
    );
    assert.match(!dead.ok ? dead.error : '', /https:\/\/m\.example, which its well-known names, does not answer/);
  });

  it('refuses a well-known that names plain http:// to a public host, and never asks that host', async () => {
    const { fetchFn, asked } = network({
      'https://example.org/.well-known/matrix/client': { 'm.homeserver': { base_url: 'http://matrix.example.org' } },
      'http://matrix.example.org/_matrix/client/versions': VERSIONS,
    });
    const result = await resolveHomeserver('@alice:example.org', fetchFn);
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.error : '', /names http:\/\/matrix\.example\.org, plain http:\/\//);
    assert.ok(!asked.some((url) => url.startsWith('http://')), `asked over plain http: ${asked.join(', ')}`);
  });

  it("refuses a client's page, an API path and plain http:// to a public host, saying what to enter", async () => {
    const { fetchFn, asked } = network({});
    const refusals: Array<[string, RegExp]> = [
      [
        'https://app.element.io/#/home',
        /looks like the page of a Matrix client.*such as https:\/\/matrix\.example\.org/,
      ],
      [
        'https://matrix.example.org/_matrix/client/v3/sync',
        /is an API path.*Enter the part before \/_matrix\/: https:\/\/matrix\.example\.org$/,
      ],
      ['http://matrix.example.org', /Plain http:\/\/ is only for.*enter https:\/\/matrix\.example\.org$/],
      ['ftp://example.org', /starts with https:\/\//],
      ['@alice', /not a full user id/],
      ['not a server', /is not a homeserver/],
      ['', /Enter your homeserver/],
    ];
    for (const [typed, error] of refusals) {
      const result = await resolveHomeserver(typed, fetchFn);
      assert.equal(result.ok, false, typed);
      assert.match(!result.ok ? result.error : '', error, typed);
    }
    assert.deepEqual(asked, [], 'a refused entry was looked up');
  });

  it('refuses a URL that does not answer as a homeserver (a web page)', async () => {
    const result = await resolveHomeserver('https://app.example.org/home', network({}).fetchFn);
    assert.equal(result.ok, false);
    assert.match(!result.ok ? result.error : '', /does not answer as a Matrix homeserver: it answered 404/);
  });
});
