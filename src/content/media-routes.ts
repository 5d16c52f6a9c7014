/**
 * Which media repository requests Kirjava takes part in (Matrix spec, client-server API,
 * "Content repository"): downloads and thumbnails through authenticated media
 * (`/_matrix/client/v1/media/...`) and the legacy `/_matrix/media/{r0,v1,v3}/...`, and
 * uploads (`POST .../upload`, and `PUT .../upload/{serverName}/{mediaId}` after `/create`).
 */
import { decode, underBase } from './routes.ts';

/** A media repository request Kirjava takes part in: a download or thumbnail, or an upload. */
export type MediaRoute =
  | {
      kind: 'media-download';
      /** `mxc://{serverName}/{mediaId}` */
      mxc: string;
      thumbnail: boolean;
      /**
       * Where the whole file is, in the API the page used: a thumbnail of an encrypted file
       * is fetched whole, since the server cannot scale ciphertext.
       */
      downloadUrl: string;
    }
  | {
      kind: 'media-upload';
      /** For `PUT .../upload/{serverName}/{mediaId}`: the mxc the page reserved with `/create`. */
      mxc?: string;
    };

const DOWNLOAD =
  /^(\/_matrix\/(?:client\/v1\/media|media\/(?:r0|v1|v3)))\/(download|thumbnail)\/([^/]+)\/([^/]+)(?:\/[^/]*)?$/;
const UPLOAD = /^\/_matrix\/media\/(?:r0|v1|v3)\/upload(?:\/([^/]+)\/([^/]+))?$/;

/** The media route of a request to the homeserver at `baseUrl`; undefined for any other request. */
export function mediaRouteOf(baseUrl: string, method: string, url: string): MediaRoute | undefined {
  const under = underBase(baseUrl, url);
  if (!under) return undefined;
  const { parsed, path } = under;
  method = method.toUpperCase();
  const download = DOWNLOAD.exec(path);
  if (download && method === 'GET') {
    const [, prefix, what, rawServer, rawMedia] = download;
    const serverName = decode(rawServer);
    const mediaId = decode(rawMedia);
    if (serverName === undefined || mediaId === undefined) return undefined;
    const thumbnail = what === 'thumbnail';
    const whole = new URL(parsed.href);
    if (thumbnail) {
      whole.pathname =
        parsed.pathname.slice(0, parsed.pathname.length - path.length) + `${prefix}/download/${rawServer}/${rawMedia}`;
      whole.search = '';
      const legacyToken = parsed.searchParams.get('access_token');
      if (legacyToken) whole.searchParams.set('access_token', legacyToken);
    }
    return { kind: 'media-download', mxc: `mxc://${serverName}/${mediaId}`, thumbnail, downloadUrl: whole.href };
  }
  const upload = UPLOAD.exec(path);
  if (upload && method === 'POST' && upload[1] === undefined) return { kind: 'media-upload' };
  if (upload && method === 'PUT' && upload[1] !== undefined) {
    const serverName = decode(upload[1]);
    const mediaId = decode(upload[2]);
    if (serverName === undefined || mediaId === undefined) return undefined;
    return { kind: 'media-upload', mxc: `mxc://${serverName}/${mediaId}` };
  }
  return undefined;
}
