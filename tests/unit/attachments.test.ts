/**
 * The spec's encrypted attachments (AES-256-CTR, JWK key, SHA-256 of the ciphertext), the
 * worker's memory of file keys, and which media requests the hook takes part in.
 */
import assert from 'node:assert/strict';
import { createCipheriv, createDecipheriv, createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import {
  AttachmentError,
  CHUNK_BYTES,
  decryptAttachment,
  encryptAttachment,
  encryptBlob,
  fromBase64,
  openEncrypted,
} from '../../src/crypto/media/attachments.ts';
import { Sha256 } from '../../src/crypto/media/sha256.ts';
import { MediaKeyRing } from '../../src/crypto/media/media-keys.ts';
import { mediaRouteOf } from '../../src/content/media-routes.ts';

const image = () => new Uint8Array(randomBytes(70_000)); // more than one 64 KiB chunk of anything

describe('encrypted attachments', () => {
  it('round trip: what encryptAttachment makes, decryptAttachment turns back into the plaintext', async () => {
    const plaintext = image();
    const { ciphertext, file } = await encryptAttachment(plaintext);
    assert.equal(ciphertext.length, plaintext.length, 'CTR mode does not pad');
    assert.notDeepEqual(ciphertext, plaintext);
    assert.deepEqual(await decryptAttachment(ciphertext, file), plaintext);
  });

  it(
    'writes the EncryptedFile as the spec says: v2, A256CTR JWK, ' +
      'counter half of the IV zero, SHA-256 of the ciphertext',
    async () => {
      const { ciphertext, file } = await encryptAttachment(image());
      assert.equal(file.v, 'v2');
      assert.deepEqual(
        { ...file.key, k: undefined },
        { kty: 'oct', key_ops: ['encrypt', 'decrypt'], alg: 'A256CTR', k: undefined, ext: true },
      );
      assert.match(file.key.k, /^[A-Za-z0-9_-]{43}$/, 'unpadded base64url of 32 bytes');
      assert.match(file.iv, /^[A-Za-z0-9+/]{22}$/, 'unpadded base64 of 16 bytes');
      assert.deepEqual([...fromBase64(file.iv)!.subarray(8)], [0, 0, 0, 0, 0, 0, 0, 0]);
      assert.equal(file.hashes.sha256, createHash('sha256').update(ciphertext).digest('base64').replace(/=+$/, ''));
    },
  );

  it('decrypts what another implementation encrypted (Node crypto, AES-256-CTR from the spec fields)', async () => {
    const plaintext = image();
    const key = randomBytes(32);
    const iv = Buffer.concat([randomBytes(8), Buffer.alloc(8)]);
    const cipher = createCipheriv('aes-256-ctr', key, iv);
    const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    const file = {
      key: {
        kty: 'oct' as const,
        key_ops: ['encrypt', 'decrypt'],
        alg: 'A256CTR' as const,
        k: key.toString('base64url'),
        ext: true as const,
      },
      iv: iv.toString('base64').replace(/=+$/, ''),
      hashes: { sha256: createHash('sha256').update(ciphertext).digest('base64') }, // padded: accepted too
      v: 'v2',
    };
    assert.deepEqual(await decryptAttachment(ciphertext, file), plaintext);
  });

  it('refuses altered ciphertext before decrypting anything: a hash mismatch is an error, never bytes', async () => {
    const { ciphertext, file } = await encryptAttachment(image());
    const tampered = ciphertext.slice();
    tampered[1234] ^= 0x01;
    await assert.rejects(decryptAttachment(tampered, file), (error: unknown) => {
      assert.ok(error instanceof AttachmentError);
      assert.equal(error.reason, 'hash');
      assert.match(error.message, /altered/);
      return true;
    });
    // A truncated or extended file is just as wrong.
    await assert.rejects(decryptAttachment(ciphertext.subarray(1), file), AttachmentError);
  });

  it(
    'with the wrong key the bytes are not the plaintext: ' +
      'the hash guards the ciphertext, the key comes from the megolm-authenticated event',
    async () => {
      const plaintext = image();
      const { ciphertext, file } = await encryptAttachment(plaintext);
      const other = await encryptAttachment(image());
      const wrong = await decryptAttachment(ciphertext, { ...file, key: other.file.key });
      assert.equal(wrong.length, plaintext.length);
      assert.notDeepEqual(wrong, plaintext);
    },
  );

  it('refuses malformed or unsupported EncryptedFile objects with a reason', async () => {
    const { ciphertext, file } = await encryptAttachment(image());
    for (const broken of [
      { ...file, v: 'v3' },
      { ...file, key: { ...file.key, k: 'short' } },
      { ...file, key: { ...file.key, alg: 'A128CTR' as any } },
      { ...file, iv: 'AAAA' },
      { ...file, hashes: {} },
      { ...file, hashes: { sha256: 'not base64!' } },
    ]) {
      await assert.rejects(
        decryptAttachment(ciphertext, broken),
        (error: unknown) => error instanceof AttachmentError && error.reason === 'invalid',
      );
    }
  });
});

describe('large files, chunk by chunk', () => {
  const big = () => new Uint8Array(randomBytes(2 * CHUNK_BYTES + 4_321)); // three chunks, the last one ragged

  it('Sha256 agrees with Node for every length around a block and any split of the input', () => {
    for (const length of [0, 1, 55, 56, 63, 64, 65, 119, 120, 128, 5_000]) {
      const data = new Uint8Array(randomBytes(length));
      const hash = new Sha256();
      for (let offset = 0; offset < length;) {
        const take = 1 + ((offset * 7919) % 97);
        hash.update(data.subarray(offset, offset + take));
        offset += take;
      }
      assert.equal(
        Buffer.from(hash.digest()).toString('hex'),
        createHash('sha256').update(data).digest('hex'),
        `length ${length}`,
      );
    }
  });

  it('encryptBlob across chunk boundaries is the same AES-256-CTR stream Node computes in one go', async () => {
    const plaintext = big();
    const { ciphertext, file } = await encryptBlob(new Blob([plaintext]));
    const bytes = new Uint8Array(await ciphertext.arrayBuffer());
    const decipher = createDecipheriv(
      'aes-256-ctr',
      Buffer.from(file.key.k, 'base64url'),
      Buffer.from(file.iv, 'base64'),
    );
    assert.ok(Buffer.concat([decipher.update(bytes), decipher.final()]).equals(plaintext));
    assert.equal(file.hashes.sha256, createHash('sha256').update(bytes).digest('base64').replace(/=+$/, ''));
  });

  it(
    'openEncrypted decrypts a stream that arrives in odd pieces, ' + 'and refuses before any byte when one bit differs',
    async () => {
      const plaintext = big();
      const { ciphertext, file } = await encryptAttachment(plaintext);
      const inPieces = (bytes: Uint8Array) =>
        new ReadableStream<Uint8Array>({
          start(controller) {
            for (let offset = 0; offset < bytes.length; offset += 333_333)
              controller.enqueue(bytes.slice(offset, offset + 333_333));
            controller.close();
          },
        });
      const opened = await openEncrypted(inPieces(ciphertext), file);
      assert.equal(opened.size, plaintext.length);
      assert.ok(Buffer.from(await new Response(opened.plaintext).arrayBuffer()).equals(plaintext));
      const tampered = ciphertext.slice();
      tampered[tampered.length - 1] ^= 0x80; // in the last chunk: still refused up front
      await assert.rejects(
        openEncrypted(inPieces(tampered), file),
        (error: unknown) => error instanceof AttachmentError && error.reason === 'hash',
      );
    },
  );
});

describe('MediaKeyRing', () => {
  const file = (url: string) => ({
    url,
    key: { kty: 'oct', key_ops: ['decrypt'], alg: 'A256CTR', k: 'k', ext: true },
    iv: 'iv',
    hashes: { sha256: 'h' },
    v: 'v2',
  });

  it(
    'gives a plain client `url` and `info.thumbnail_url` next ' +
      'to the standard `file` fields, and remembers both keys',
    async () => {
      const ring = new MediaKeyRing();
      const content = {
        msgtype: 'm.image',
        body: 'cat.png',
        file: file('mxc://hs/full'),
        info: {
          mimetype: 'image/png',
          thumbnail_file: file('mxc://hs/thumb'),
          thumbnail_info: { mimetype: 'image/jpeg' },
        },
      };
      const exposed = ring.expose(content) as any;
      assert.equal(exposed.url, 'mxc://hs/full');
      assert.equal(exposed.info.thumbnail_url, 'mxc://hs/thumb');
      assert.deepEqual(exposed.file, content.file, 'the standard shape stays');
      assert.deepEqual(exposed.info.thumbnail_file, content.info.thumbnail_file);
      assert.deepEqual(await ring.lookup('mxc://hs/full'), { file: content.file, mimetype: 'image/png' });
      assert.deepEqual(await ring.lookup('mxc://hs/thumb'), {
        file: content.info.thumbnail_file,
        mimetype: 'image/jpeg',
      });
      assert.equal(await ring.lookup('mxc://hs/other'), undefined);
    },
  );

  it('also exposes the file of an edit that replaces it (m.new_content), and leaves other content alone', async () => {
    const ring = new MediaKeyRing();
    const edit = ring.expose({
      body: '* new',
      'm.new_content': { msgtype: 'm.file', body: 'new', file: file('mxc://hs/new') },
    }) as any;
    assert.equal(edit['m.new_content'].url, 'mxc://hs/new');
    assert.ok(await ring.lookup('mxc://hs/new'));
    const topLevel = ring.expose({
      msgtype: 'm.video',
      file: file('mxc://hs/video'),
      thumbnail_file: file('mxc://hs/poster'),
      thumbnail_info: { mimetype: 'image/jpeg' },
    }) as any;
    assert.equal(topLevel.thumbnail_url, 'mxc://hs/poster');
    assert.equal((await ring.lookup('mxc://hs/poster'))?.mimetype, 'image/jpeg');
    const text = { msgtype: 'm.text', body: 'hi' };
    assert.equal(ring.expose(text), text);
    const plain = { msgtype: 'm.image', url: 'mxc://hs/plain', file: 'not an EncryptedFile' };
    assert.equal(ring.expose(plain), plain);
  });

  it('says when every key it named is stored: a worker stopped after the page got the event loses none', async () => {
    const saves: Array<{ mxc: string; done: () => void; fail: (error: Error) => void }> = [];
    const stored = new Map<string, unknown>();
    const ring = new MediaKeyRing(10, {
      load: async (mxc) => stored.get(mxc) as any,
      save: (mxc, key) =>
        new Promise<void>((resolve, reject) => {
          saves.push({ mxc, done: () => (stored.set(mxc, key), resolve()), fail: reject });
        }),
    });
    await ring.stored(); // nothing shown yet
    ring.expose({ file: file('mxc://hs/one') });
    ring.expose({ file: file('mxc://hs/two') });
    let settled = false;
    const waiting = ring.stored().then(() => (settled = true));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(settled, false, 'stored() resolved before the saves finished');
    saves[0]!.done();
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(settled, false, 'stored() resolved with a save still under way');
    saves[1]!.fail(new Error('QuotaExceededError')); // a failed save is logged, not waited for forever
    await waiting;
    assert.ok(stored.has('mxc://hs/one'));
    // A fresh ring over the same store (a restarted worker) finds the stored key.
    assert.ok(
      await new MediaKeyRing(10, { load: async (mxc) => stored.get(mxc) as any, save: async () => {} }).lookup(
        'mxc://hs/one',
      ),
    );
  });

  it('is bounded: the least recently seen key goes first', async () => {
    const ring = new MediaKeyRing(2);
    ring.expose({ file: file('mxc://hs/a') });
    ring.expose({ file: file('mxc://hs/b') });
    ring.expose({ file: file('mxc://hs/a') });
    ring.expose({ file: file('mxc://hs/c') });
    assert.ok(await ring.lookup('mxc://hs/a'));
    assert.equal(await ring.lookup('mxc://hs/b'), undefined);
    assert.ok(await ring.lookup('mxc://hs/c'));
  });
});

describe('MediaKeyRing with a store', () => {
  const file = (url: string) => ({
    url,
    key: { kty: 'oct', key_ops: ['decrypt'], alg: 'A256CTR', k: 'k', ext: true },
    iv: 'iv',
    hashes: { sha256: 'h' },
    v: 'v2',
  });

  it('saves each new key once and finds keys a previous worker saved', async () => {
    const saved = new Map<string, unknown>();
    const store = {
      load: async (mxc: string) => saved.get(mxc) as any,
      save: async (mxc: string, key: unknown) => void saved.set(mxc, key),
    };
    const first = new MediaKeyRing(10, store);
    first.expose({ file: file('mxc://hs/a'), info: { mimetype: 'image/png' } });
    first.expose({ file: file('mxc://hs/a'), info: { mimetype: 'image/png' } });
    assert.equal(saved.size, 1);
    const afterRestart = new MediaKeyRing(10, store);
    assert.deepEqual(await afterRestart.lookup('mxc://hs/a'), { file: file('mxc://hs/a'), mimetype: 'image/png' });
    assert.equal(await afterRestart.lookup('mxc://hs/b'), undefined);
  });
});

describe('mediaRouteOf', () => {
  const BASE = 'https://matrix.example.org';

  it('recognises authenticated and legacy downloads; a thumbnail names the whole file in the same API', () => {
    assert.deepEqual(mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/client/v1/media/download/example.org/abc`), {
      kind: 'media-download',
      mxc: 'mxc://example.org/abc',
      thumbnail: false,
      downloadUrl: `${BASE}/_matrix/client/v1/media/download/example.org/abc`,
    });
    assert.deepEqual(
      mediaRouteOf(
        BASE,
        'GET',
        `${BASE}/_matrix/client/v1/media/thumbnail/example.org/abc?width=64&height=64&method=scale`,
      ),
      {
        kind: 'media-download',
        mxc: 'mxc://example.org/abc',
        thumbnail: true,
        downloadUrl: `${BASE}/_matrix/client/v1/media/download/example.org/abc`,
      },
    );
    for (const version of ['r0', 'v1', 'v3']) {
      const route = mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/media/${version}/thumbnail/example.org/abc?width=1`);
      assert.deepEqual(route, {
        kind: 'media-download',
        mxc: 'mxc://example.org/abc',
        thumbnail: true,
        downloadUrl: `${BASE}/_matrix/media/${version}/download/example.org/abc`,
      });
    }
    assert.equal(
      (mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/media/v3/download/example.org/abc/cat.png`) as any).mxc,
      'mxc://example.org/abc',
    );
    assert.equal(
      (mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/media/v3/thumbnail/example.org/abc?width=8&access_token=tok`) as any)
        .downloadUrl,
      `${BASE}/_matrix/media/v3/download/example.org/abc?access_token=tok`,
      'a token in the query string stays with the request',
    );
  });

  it('keeps the base path and ignores other homeservers, other methods and other paths', () => {
    const base = 'https://example.org/matrix';
    assert.equal(
      (mediaRouteOf(base, 'GET', `${base}/_matrix/client/v1/media/thumbnail/s/m`) as any).downloadUrl,
      `${base}/_matrix/client/v1/media/download/s/m`,
    );
    assert.equal(mediaRouteOf(BASE, 'GET', 'https://evil.example/_matrix/client/v1/media/download/s/m'), undefined);
    assert.equal(mediaRouteOf(BASE, 'POST', `${BASE}/_matrix/client/v1/media/download/s/m`), undefined);
    assert.equal(mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/client/v1/media/config`), undefined);
    assert.equal(mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/client/v3/sync`), undefined);
  });

  it('recognises uploads: POST .../upload, and PUT .../upload/{serverName}/{mediaId} after /create', () => {
    for (const version of ['r0', 'v1', 'v3']) {
      assert.deepEqual(mediaRouteOf(BASE, 'POST', `${BASE}/_matrix/media/${version}/upload?filename=cat.png`), {
        kind: 'media-upload',
      });
    }
    assert.deepEqual(mediaRouteOf(BASE, 'PUT', `${BASE}/_matrix/media/v3/upload/example.org/xyz`), {
      kind: 'media-upload',
      mxc: 'mxc://example.org/xyz',
    });
    assert.equal(mediaRouteOf(BASE, 'GET', `${BASE}/_matrix/media/v3/upload`), undefined);
    assert.equal(mediaRouteOf(BASE, 'POST', `${BASE}/_matrix/media/v1/create`), undefined);
  });
});
