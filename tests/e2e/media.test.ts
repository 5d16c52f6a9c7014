/**
 * Pictures in encrypted rooms, both ways. The peer (Element's crypto) sends encrypted images the
 * way Element does; the plain client, which knows nothing of EncryptedFile, downloads them through
 * authenticated and legacy media and gets the original bytes, and a tampered file gets an error,
 * never bytes. The plain client's own uploads leave the browser encrypted; the peer decrypts them,
 * and in an unencrypted room receives the plain picture.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import { StoryBed, assertEncryptedOnServer, givenEncryptedRoom } from '../fixtures/stories.ts';
import { storyBrowsers } from '../fixtures/browser.ts';
import { decryptFile, downloadRaw, sendEncryptedImage, uploadRaw, waitForImage } from '../fixtures/peer-media.ts';
import type { PlainClient } from '../fixtures/plain-client.ts';

const story = { timeout: 120_000 };
for (const browserName of storyBrowsers()) {
  const bed = new StoryBed(browserName);

  /** A picture's bytes: a PNG signature, then noise (so no two tests share bytes). */
  const picture = (size: number) => Buffer.concat([Buffer.from('89504e470d0a1a0a', 'hex'), randomBytes(size - 8)]);
  const mediaId = (mxc: string) => mxc.slice('mxc://'.length);
  const v1 = (what: 'download' | 'thumbnail', mxc: string) => `/_matrix/client/v1/media/${what}/${mediaId(mxc)}`;
  const legacy = (what: 'download' | 'thumbnail', mxc: string) => `/_matrix/media/v3/${what}/${mediaId(mxc)}`;
  const THUMB_QUERY = '?width=64&height=64&method=scale';

  async function assertDownloads(
    client: PlainClient,
    path: string,
    bytes: Buffer,
    contentType: string,
    via: 'fetch' | 'xhr' = 'fetch',
  ) {
    const got = await client.downloadMedia(path, via);
    assert.equal(got.status, 200, `${via} ${path}: ${JSON.stringify(got.json)}`);
    assert.equal(got.contentType, contentType, `${via} ${path}`);
    assert.ok(Buffer.from(got.bytesBase64, 'base64').equals(bytes), `${via} ${path} did not return the original bytes`);
  }

  describe(`Encrypted media: the plain client sees pictures, the homeserver only ciphertext (${browserName})`, () => {
    // Legacy unauthenticated media is off by default in current Synapse; homeservers that still
    // serve it exist, and clients use it there.
    before(() => bed.start({ synapse: { config: { enable_authenticated_media: false } } }), { timeout: 180_000 });
    afterEach(() => bed.cleanUp());
    after(() => bed.stop());

    it(
      'The peer sends an encrypted image with a thumbnail: the plain client downloads both and gets the original bytes',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const image = picture(2_500_000); // more than two of Kirjava's 1 MiB chunks
        const thumbnail = picture(5_000);

        const sent = await sendEncryptedImage(peer, roomId, {
          bytes: image,
          mimetype: 'image/png',
          thumbnail,
          thumbnailMimetype: 'image/jpeg',
          body: 'sunset.png',
        });
        await assertEncryptedOnServer(peer, roomId, sent.eventId, 'sunset.png');
        assert.ok(!(await downloadRaw(peer, sent.file.url)).equals(image), 'the server holds the plaintext image');

        // The client gets the standard shape, plus the `url`s a plain client knows how to use.
        const content = await client.waitForEventContent(roomId, sent.eventId);
        assert.equal(content.msgtype, 'm.image');
        assert.deepEqual(content.file, sent.file);
        assert.deepEqual(content.info.thumbnail_file, sent.thumbnailFile);
        assert.equal(content.url, sent.file.url);
        assert.equal(content.info.thumbnail_url, sent.thumbnailFile.url);

        // Authenticated media, through fetch and XHR; the thumbnail as the client asks for it.
        await assertDownloads(client, v1('download', content.url), image, 'image/png');
        await assertDownloads(client, v1('download', content.url), image, 'image/png', 'xhr');
        await assertDownloads(
          client,
          v1('thumbnail', content.info.thumbnail_url) + THUMB_QUERY,
          thumbnail,
          'image/jpeg',
          'xhr',
        );
        // A client without a thumbnail_url asks for a thumbnail of the image: the server cannot
        // scale ciphertext, so it gets the whole image.
        await assertDownloads(client, v1('thumbnail', content.url) + THUMB_QUERY, image, 'image/png');
        // The legacy media API.
        await assertDownloads(client, legacy('download', content.url), image, 'image/png');
        await assertDownloads(
          client,
          legacy('thumbnail', content.info.thumbnail_url) + THUMB_QUERY,
          thumbnail,
          'image/jpeg',
        );

        // Media Kirjava has no key for passes through untouched.
        const plain = picture(2_000);
        const plainMxc = await uploadRaw(peer, plain);
        await assertDownloads(client, v1('download', plainMxc), plain, 'application/octet-stream');
      },
    );

    it(
      'After the worker restarts, a picture decrypted before still downloads decrypted, also without a token',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const image = picture(50_000);
        const thumbnail = picture(2_000);
        const sent = await sendEncryptedImage(peer, roomId, {
          bytes: image,
          mimetype: 'image/webp',
          thumbnail,
          thumbnailMimetype: 'image/png',
          body: 'before-restart.webp',
        });
        const content = await client.waitForEventContent(roomId, sent.eventId);
        assert.equal(content.url, sent.file.url);

        await bed.browser.stopWorker();
        // The page never asked for this file before: its key comes from the restarted worker's store.
        const got = await client.downloadMedia(legacy('download', content.url), 'fetch', { withoutToken: true });
        assert.equal(got.status, 200, JSON.stringify(got.json));
        assert.equal(got.contentType, 'image/webp');
        assert.ok(Buffer.from(got.bytesBase64, 'base64').equals(image));
      },
    );

    it('A tampered ciphertext is refused with an error, and no bytes', story, async () => {
      const { client, userId, deviceId } = await bed.givenLoggedInClient();
      const peer = await bed.givenPeer();
      const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
      const image = picture(100_000);
      const thumbnail = picture(3_000);

      // The stored ciphertext differs from what the sender hashed: a homeserver altering it.
      const sent = await sendEncryptedImage(peer, roomId, {
        bytes: image,
        mimetype: 'image/png',
        thumbnail,
        thumbnailMimetype: 'image/png',
        body: 'forged.png',
        tamper: true,
      });
      const content = await client.waitForEventContent(roomId, sent.eventId);
      for (const [path, via] of [
        [v1('download', content.url), 'fetch'],
        [v1('download', content.url), 'xhr'],
        [v1('thumbnail', content.url) + THUMB_QUERY, 'fetch'],
        [legacy('download', content.url), 'fetch'],
      ] as const) {
        const got = await client.downloadMedia(path, via);
        assert.equal(got.status, 502, `${via} ${path}`);
        assert.equal(got.json?.errcode, 'IO.KIRJAVA.MEDIA_TAMPERED', `${via} ${path}`);
        assert.match(got.json.error, /altered/);
        assert.ok(Buffer.from(got.bytesBase64, 'base64').length < 1000, 'the answer carries more than an error');
      }
      // The untouched thumbnail of the same event still shows.
      await assertDownloads(client, v1('download', content.info.thumbnail_url), thumbnail, 'image/png');
    });

    it(
      'The plain client uploads an image into an encrypted room: ' +
        'the server stores only ciphertext and the peer decrypts it',
      story,
      async () => {
        const { client, userId, deviceId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
        const image = picture(2_600_000); // more than two of Kirjava's 1 MiB chunks
        const thumbnail = picture(4_000);

        const sent = await client.uploadAndSendImage(roomId, {
          base64: image.toString('base64'),
          mimetype: 'image/png',
          thumbnailBase64: thumbnail.toString('base64'),
          body: 'holiday.png',
        });
        await assertEncryptedOnServer(peer, roomId, sent.eventId, 'holiday.png');
        const storedImage = await downloadRaw(peer, sent.url);
        const storedThumbnail = await downloadRaw(peer, sent.thumbnailUrl);
        assert.equal(storedImage.length, image.length);
        assert.ok(!storedImage.equals(image), 'the server stores the plaintext image');
        assert.ok(!storedThumbnail.equals(thumbnail), 'the server stores the plaintext thumbnail');
        assert.ok(!storedImage.includes(image.subarray(0, 64)), 'the image is stored in clear in part');

        // The peer gets a standard encrypted image: `file` and `thumbnail_file`, no plaintext `url`.
        const received = await waitForImage(peer, roomId, 'holiday.png');
        assert.equal(received.eventId, sent.eventId);
        assert.equal(received.decrypted, true);
        assert.equal(received.content.url, undefined);
        assert.equal(received.content.file.url, sent.url);
        assert.equal(received.content.info.thumbnail_url, undefined);
        assert.equal(received.content.info.thumbnail_file.url, sent.thumbnailUrl);
        assert.ok(decryptFile(await downloadRaw(peer, received.content.file.url), received.content.file).equals(image));
        assert.ok(
          decryptFile(
            await downloadRaw(peer, received.content.info.thumbnail_file.url),
            received.content.info.thumbnail_file,
          ).equals(thumbnail),
        );

        // The client shows its own picture too.
        await assertDownloads(client, v1('download', sent.url), image, 'image/png');
      },
    );

    it(
      'The plain client uploads an image into an unencrypted room: the peer receives the plain image',
      story,
      async () => {
        const { client, userId } = await bed.givenLoggedInClient();
        const peer = await bed.givenPeer();
        const roomId = await peer.createPlainRoom([userId]);
        assert.equal(await client.waitForInvite(), roomId);
        await client.joinRoom(roomId);
        await peer.waitForMembership(roomId, userId, 'join');
        const image = picture(200_000);
        const thumbnail = picture(3_000);

        const sent = await client.uploadAndSendImage(roomId, {
          base64: image.toString('base64'),
          mimetype: 'image/png',
          thumbnailBase64: thumbnail.toString('base64'),
          body: 'public.png',
        });
        const raw = await peer.rawEvent(roomId, sent.eventId);
        assert.equal(raw.type, 'm.room.message');

        const received = await waitForImage(peer, roomId, 'public.png');
        assert.equal(received.decrypted, false);
        assert.equal(received.content.file, undefined);
        assert.equal(typeof received.content.url, 'string');
        assert.ok(
          (await downloadRaw(peer, received.content.url)).equals(image),
          'the peer does not get the plain image',
        );
        assert.ok(
          (await downloadRaw(peer, received.content.info.thumbnail_url)).equals(thumbnail),
          'the peer does not get the plain thumbnail',
        );
        assert.equal(received.content.info.mimetype, 'image/png');
      },
    );
  });
}
