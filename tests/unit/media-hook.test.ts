/**
 * The page side of encrypted media (src/content/media-hook.ts) against an in-process media
 * repository: what goes to the server, what the page gets back, and how an upload's mxc is
 * rewritten for encrypted and unencrypted destinations.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { decryptAttachment, encryptAttachment } from '../../src/crypto/media/attachments.ts';
import { MediaHook, type MediaKeyInfo } from '../../src/content/media-hook.ts';
import { mediaRouteOf } from '../../src/content/media-routes.ts';

const BASE = 'https://hs.example';
const TOKEN = 'page-token';

/** A media repository: stores what it is sent, serves it back, logs every request. */
function mediaServer() {
  const files = new Map<string, Uint8Array>();
  const log: { method: string; url: string; contentType: string | null; authorization: string | null }[] = [];
  let next = 0;
  const nativeFetch = (async (input: RequestInfo | URL, init?: RequestInit) => {
    const request = new Request(input, init);
    log.push({
      method: request.method,
      url: request.url,
      contentType: request.headers.get('Content-Type'),
      authorization: request.headers.get('Authorization'),
    });
    const path = new URL(request.url).pathname;
    const reserved = /^\/_matrix\/media\/v3\/upload\/hs\.example\/([^/]+)$/.exec(path);
    if (request.method === 'PUT' && reserved) {
      files.set(`mxc://hs.example/${reserved[1]}`, new Uint8Array(await request.arrayBuffer()));
      return Response.json({});
    }
    if (request.method === 'POST' && path === '/_matrix/media/v3/upload') {
      const mxc = `mxc://hs.example/m${++next}`;
      files.set(mxc, new Uint8Array(await request.arrayBuffer()));
      return Response.json({ content_uri: mxc });
    }
    const download = /\/(?:download|thumbnail)\/hs\.example\/([^/?]+)/.exec(path);
    const bytes = download && files.get(`mxc://hs.example/${download[1]}`);
    if (bytes) return new Response(bytes as BodyInit, { headers: { 'Content-Type': 'application/octet-stream' } });
    return Response.json({ errcode: 'M_NOT_FOUND', error: 'Not found' }, { status: 404 });
  }) as typeof fetch;
  return { files, log, nativeFetch };
}

function hookWith(server: ReturnType<typeof mediaServer>, keys: Record<string, MediaKeyInfo> = {}) {
  const asked: string[] = [];
  const hook = new MediaHook({
    nativeFetch: server.nativeFetch,
    askKey: async (_base, token, mxc) => {
      asked.push(`${token} ${mxc}`);
      return keys[mxc] ?? null;
    },
  });
  const request = (method: string, path: string, body?: BodyInit, headers: Record<string, string> = {}) => {
    const url = `${BASE}${path}`;
    const route = mediaRouteOf(BASE, method, url)!;
    const req = new Request(url, { method, body, headers: { Authorization: `Bearer ${TOKEN}`, ...headers } });
    return route ? hook.handle(route, req, BASE, TOKEN) : Promise.reject(new Error(`not a media route: ${path}`));
  };
  return { hook, asked, request };
}

const bytes = (n: number) => new Uint8Array(randomBytes(n));

describe('MediaHook downloads', () => {
  it(
    'decrypts a file whose key the worker knows, ' + 'with its content type; a thumbnail fetches the whole file',
    async () => {
      const server = mediaServer();
      const image = bytes(20_000);
      const { ciphertext, file } = await encryptAttachment(image);
      server.files.set('mxc://hs.example/enc', ciphertext);
      const { request, asked } = hookWith(server, {
        'mxc://hs.example/enc': { file: { ...file, url: 'mxc://hs.example/enc' }, mimetype: 'image/png' },
      });

      const got = await request('GET', '/_matrix/client/v1/media/thumbnail/hs.example/enc?width=32&height=32');
      assert.equal(got.status, 200);
      assert.equal(got.headers.get('Content-Type'), 'image/png');
      assert.deepEqual(new Uint8Array(await got.arrayBuffer()), image);
      assert.equal(server.log.at(-1)!.url, `${BASE}/_matrix/client/v1/media/download/hs.example/enc`);
      assert.equal(server.log.at(-1)!.authorization, `Bearer ${TOKEN}`, "the page's own token carries the download");
      // The second time the page has the key already.
      await request('GET', '/_matrix/media/v3/download/hs.example/enc');
      assert.deepEqual(asked, [`${TOKEN} mxc://hs.example/enc`]);
    },
  );

  it('passes media without a known key through untouched, and server errors as they are', async () => {
    const server = mediaServer();
    server.files.set('mxc://hs.example/plain', new Uint8Array([1, 2, 3]));
    const { request } = hookWith(server);
    const plain = await request('GET', '/_matrix/client/v1/media/download/hs.example/plain');
    assert.equal(plain.headers.get('Content-Type'), 'application/octet-stream');
    assert.deepEqual(new Uint8Array(await plain.arrayBuffer()), new Uint8Array([1, 2, 3]));
    assert.equal((await request('GET', '/_matrix/client/v1/media/download/hs.example/missing')).status, 404);
  });

  it(
    'answers altered ciphertext with a Matrix error and no bytes; ' + 'an unusable content type becomes octet-stream',
    async () => {
      const server = mediaServer();
      const { ciphertext, file } = await encryptAttachment(bytes(5_000));
      const altered = ciphertext.slice();
      altered[0] ^= 1;
      server.files.set('mxc://hs.example/bad', altered);
      server.files.set('mxc://hs.example/ok', ciphertext);
      const { request } = hookWith(server, {
        'mxc://hs.example/bad': { file: { ...file, url: 'mxc://hs.example/bad' }, mimetype: 'image/png' },
        'mxc://hs.example/ok': { file: { ...file, url: 'mxc://hs.example/ok' }, mimetype: 'text/html; <script>' },
      });
      const bad = await request('GET', '/_matrix/client/v1/media/download/hs.example/bad');
      assert.equal(bad.status, 502);
      assert.equal((await bad.json()).errcode, 'IO.KIRJAVA.MEDIA_TAMPERED');
      const ok = await request('GET', '/_matrix/client/v1/media/download/hs.example/ok');
      assert.equal(ok.headers.get('Content-Type'), 'application/octet-stream');
    },
  );
});

describe('MediaHook uploads and the requests that name them', () => {
  it("uploads only ciphertext, without the file name, and answers with the server's mxc", async () => {
    const server = mediaServer();
    const { request } = hookWith(server);
    const image = bytes(10_000);
    const answer = await request(
      'POST',
      '/_matrix/media/v3/upload?filename=secret-plans.png',
      new Blob([image], { type: 'image/png' }),
    );
    const { content_uri } = await answer.json();
    const stored = server.files.get(content_uri)!;
    assert.equal(stored.length, image.length);
    assert.notDeepEqual(stored, image);
    const upload = server.log.at(-1)!;
    assert.equal(new URL(upload.url).searchParams.get('filename'), null);
    assert.equal(upload.contentType, 'application/octet-stream');
  });

  it(
    'encrypts an upload to an mxc reserved with /create (PUT), ' + 'and uploads its plaintext with POST when needed',
    async () => {
      const server = mediaServer();
      const { hook, request } = hookWith(server);
      const image = bytes(2_000);
      assert.equal(
        (await request('PUT', '/_matrix/media/v3/upload/hs.example/reserved', new Blob([image], { type: 'image/gif' })))
          .status,
        200,
      );
      assert.notDeepEqual(server.files.get('mxc://hs.example/reserved'), image);
      assert.equal(
        JSON.parse(hook.encryptedContent(JSON.stringify({ msgtype: 'm.image', url: 'mxc://hs.example/reserved' }))!)
          .file.url,
        'mxc://hs.example/reserved',
      );
      const plain = await hook.withPlaintextUploads(
        new Request(`${BASE}/_matrix/client/v3/rooms/!r/state/m.room.avatar/`, {
          method: 'PUT',
          body: JSON.stringify({ url: 'mxc://hs.example/reserved' }),
        }),
      );
      assert.deepEqual(server.files.get(JSON.parse(await plain.text()).url), image);
      assert.equal(server.log.at(-1)!.contentType, 'image/gif');
    },
  );

  it(
    "turns `url` and `info.thumbnail_url` of the page's uploads " +
      'into `file` and `thumbnail_file` for an encrypted room',
    async () => {
      const server = mediaServer();
      const { hook, request } = hookWith(server);
      const image = bytes(3_000);
      const { content_uri: url } = await (
        await request('POST', '/_matrix/media/v3/upload', new Blob([image], { type: 'image/jpeg' }))
      ).json();
      const { content_uri: thumb } = await (
        await request('POST', '/_matrix/media/v3/upload', new Blob([bytes(300)]))
      ).json();
      const body = JSON.stringify({
        msgtype: 'm.image',
        body: 'a.jpg',
        url,
        info: { mimetype: 'image/jpeg', thumbnail_url: thumb },
      });
      const content = JSON.parse(hook.encryptedContent(body)!);
      assert.equal(content.url, undefined);
      assert.equal(content.info.thumbnail_url, undefined);
      assert.equal(content.file.url, url);
      assert.equal(content.info.thumbnail_file.url, thumb);
      assert.deepEqual(await decryptAttachment(server.files.get(url)!, content.file), image);
      assert.equal(
        hook.encryptedContent(JSON.stringify({ msgtype: 'm.text', body: url })),
        undefined,
        'a mention in text is not an attachment',
      );
      assert.equal(
        hook.encryptedContent(JSON.stringify({ msgtype: 'm.image', url: 'mxc://hs.example/someone-elses' })),
        undefined,
      );
    },
  );

  it(
    'for anything unencrypted uploads the plaintext once and names it instead; ' +
      'an old upload is fetched back and decrypted',
    async () => {
      const server = mediaServer();
      const { hook, request } = hookWith(server);
      // Ten uploads: mxc://hs.example/m1 is a prefix of mxc://hs.example/m10, and only m10 is named.
      const images = Array.from({ length: 10 }, () => bytes(1_000));
      const uris: string[] = [];
      for (const image of images) {
        uris.push(
          (await (await request('POST', '/_matrix/media/v3/upload', new Blob([image], { type: 'image/png' }))).json())
            .content_uri,
        );
      }
      const send = (uri: string) =>
        hook.withPlaintextUploads(
          new Request(`${BASE}/_matrix/client/v3/profile/@me:hs.example/avatar_url`, {
            method: 'PUT',
            headers: { Authorization: `Bearer ${TOKEN}` },
            body: JSON.stringify({ avatar_url: uri }),
          }),
        );
      for (const index of [9, 0]) {
        // 0's plaintext is no longer kept: it comes back from the server
        const rewritten = JSON.parse(await (await send(uris[index])).text()).avatar_url;
        assert.notEqual(rewritten, uris[index]);
        assert.deepEqual(server.files.get(rewritten), images[index]);
        assert.equal(JSON.parse(await (await send(uris[index])).text()).avatar_url, rewritten, 'uploaded once');
      }
      const untouched = new Request(`${BASE}/_matrix/client/v3/rooms/!r/send/m.room.message/1`, {
        method: 'PUT',
        body: '{"body":"hi"}',
      });
      assert.equal(await hook.withPlaintextUploads(untouched), untouched);
    },
  );
});
