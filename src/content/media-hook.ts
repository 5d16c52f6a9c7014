/**
 * Encrypted media for the page, inside the MAIN-world hook (Matrix spec, client-server API,
 * "Sending encrypted attachments").
 *
 * - Download: a download or thumbnail of an mxc whose key Kirjava knows (the page's own
 *   upload, or a file a decrypted event named: the worker's MediaKeyRing) is fetched whole as
 *   ciphertext, its SHA-256 checked, and decrypted here with WebCrypto; the page gets the
 *   plaintext with the event's content type. A mismatch is an error, never bytes. Anything
 *   else passes through untouched.
 * - Upload: every upload is encrypted before it leaves the browser, since the target room is
 *   not known yet. A send that references the upload becomes `file` (with the key) when the
 *   worker encrypts it for an encrypted room; any other request that names the upload (a send
 *   into an unencrypted room, a profile or room avatar) gets the plaintext, uploaded then.
 *
 * Decrypting here, not in the worker, keeps megabytes off the extension port (see
 * docs/architecture.md, "The path of a request"); the per-file keys are part of event content
 * the page receives anyway. Kirjava's own keys never come here.
 *
 * Memory: files are processed in 1 MiB chunks (src/crypto/media/attachments.ts). A download's
 * ciphertext must be complete and checked before any byte is returned, so it waits in a Blob
 * (the browser's blob store, which keeps large blobs on disk), then is decrypted chunk by
 * chunk as the page reads the response; an upload is encrypted the same way into a Blob. The
 * page's own memory holds about one chunk per file in flight; what the page does with the
 * plaintext (e.g. `response.arrayBuffer()`) is its own. Recent uploads' plaintexts are kept
 * (as the page's Blobs) for sends into unencrypted rooms, bounded below.
 */
import { AttachmentError, encryptBlob, openEncrypted } from '../crypto/media/attachments.ts';
import type { MediaKey } from '../shared/media.ts';
import type { MediaRoute } from './media-routes.ts';

/** The key the worker gives the hook for one of the page's encrypted files. */
export type MediaKeyInfo = MediaKey;

/** One upload of the page, encrypted by Kirjava. */
interface Upload extends MediaKeyInfo {
  /** The page's plaintext, kept for a send into an unencrypted room; dropped when old. */
  plaintext?: Blob;
  /** The page's upload URL and Authorization, to upload the plaintext the same way. */
  uploadUrl: string;
  authorization: string | null;
  /** The plaintext's mxc, once it had to be uploaded. */
  plainMxc?: Promise<string>;
}

/** Upload progress of the page's request, in bytes (ciphertext and plaintext are the same size). */
export type UploadProgress = (loaded: number, total: number) => void;

/** What MediaHook needs from the hook: the browser's own fetch and XHR, and the worker's media keys. */
export interface MediaHookDeps {
  nativeFetch: typeof fetch;
  /** The browser's own XMLHttpRequest: the one way to observe upload progress. */
  NativeXHR?: typeof XMLHttpRequest;
  /** The worker's key for `mxc` (null: none), asked with the page's token for that homeserver. */
  askKey(baseUrl: string, token: string, mxc: string): Promise<MediaKeyInfo | null>;
}

/**
 * Plaintexts kept for sends into unencrypted rooms (the newest, up to this many and bytes);
 * older ones are downloaded and decrypted again when needed.
 */
const RETAINED_PLAINTEXTS = 8;
const RETAINED_BYTES = 64 * 1024 * 1024;
const REMEMBERED_UPLOADS = 1000;

const SAFE_MIMETYPE = /^[\w.+-]+\/[\w.+-]+$/;

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function jsonError(status: number, errcode: string, error: string): Response {
  return new Response(JSON.stringify({ errcode, error }), { status, headers: { 'Content-Type': 'application/json' } });
}

/**
 * Encrypts the page's uploads and decrypts its downloads of files whose key Kirjava knows,
 * remembering the uploads so a send can reference them with their key.
 */
export class MediaHook {
  private readonly uploads = new Map<string, Upload>();
  private readonly learned = new Map<string, MediaKeyInfo>();
  /** The page's latest token per homeserver, to look up keys for downloads sent without one. */
  private readonly tokens = new Map<string, string>();

  constructor(private readonly deps: MediaHookDeps) {}

  /**
   * `upload.progress` reports an upload's progress to the page (XHR's `upload` events);
   * `upload.body` is the page's own Blob (a picked File stays on disk and is read in chunks),
   * else the request's body is read.
   */
  handle(
    route: MediaRoute,
    request: Request,
    baseUrl: string,
    token: string | undefined,
    upload: { progress?: UploadProgress; body?: Blob } = {},
  ): Promise<Response> {
    return route.kind === 'media-upload'
      ? this.upload(request, route.mxc, upload.body, upload.progress)
      : this.download(request, route, baseUrl, token);
  }

  /** Remembers the token of a page request to this homeserver. */
  noteToken(baseUrl: string, token: string): void {
    this.tokens.set(baseUrl, token);
  }

  private async keyOf(
    mxc: string,
    baseUrl: string,
    requestToken: string | undefined,
  ): Promise<MediaKeyInfo | undefined> {
    const known = this.uploads.get(mxc) ?? this.learned.get(mxc);
    // Legacy downloads may go without a token: the key is the page's own account's.
    const token = requestToken ?? this.tokens.get(baseUrl);
    if (known || !token) return known;
    const answer = await this.deps.askKey(baseUrl, token, mxc);
    if (!answer) return undefined;
    this.learned.set(mxc, answer);
    if (this.learned.size > REMEMBERED_UPLOADS) this.learned.delete(this.learned.keys().next().value as string);
    return answer;
  }

  private async download(
    request: Request,
    route: Extract<MediaRoute, { kind: 'media-download' }>,
    baseUrl: string,
    token: string | undefined,
  ): Promise<Response> {
    const key = await this.keyOf(route.mxc, baseUrl, token);
    if (!key) return this.deps.nativeFetch(request);
    // The server cannot scale ciphertext: a thumbnail of an encrypted file is the whole file.
    const response = await this.deps.nativeFetch(
      route.thumbnail
        ? new Request(route.downloadUrl, {
            headers: request.headers,
            signal: request.signal,
            credentials: request.credentials,
          })
        : request,
    );
    if (!response.ok) return response;
    let opened: Awaited<ReturnType<typeof openEncrypted>>;
    try {
      opened = await openEncrypted(response.body, key.file);
    } catch (error) {
      if (error instanceof AttachmentError) {
        return jsonError(
          502,
          error.reason === 'hash' ? 'IO.KIRJAVA.MEDIA_TAMPERED' : 'IO.KIRJAVA.MEDIA_INVALID',
          `Kirjava: ${error.message}`,
        );
      }
      throw error;
    }
    const type = key.mimetype && SAFE_MIMETYPE.test(key.mimetype) ? key.mimetype : 'application/octet-stream';
    const decrypted = new Response(opened.plaintext, {
      status: 200,
      headers: { 'Content-Type': type, 'Content-Length': String(opened.size), 'Cache-Control': 'private, no-store' },
    });
    Object.defineProperty(decrypted, 'url', { value: response.url });
    return decrypted;
  }

  private async upload(
    request: Request,
    reservedMxc: string | undefined,
    body: Blob | undefined,
    progress?: UploadProgress,
  ): Promise<Response> {
    const plaintext = body ?? (await request.blob());
    const mimetype = (plaintext.type || request.headers.get('Content-Type') || '').split(';')[0].trim() || undefined;
    const { ciphertext, file } = await encryptBlob(plaintext);
    // The name would tell the homeserver what the file is: the ciphertext goes without it.
    const url = new URL(request.url);
    url.searchParams.delete('filename');
    const headers = new Headers(request.headers);
    headers.set('Content-Type', 'application/octet-stream');
    headers.delete('Content-Length');
    const response = await this.send(url.href, request, headers, ciphertext, progress);
    if (!response.ok) return response;
    const text = await response.text();
    let mxc = reservedMxc;
    if (!mxc) {
      try {
        const uri = JSON.parse(text)?.content_uri;
        if (typeof uri === 'string' && uri.startsWith('mxc://')) mxc = uri;
      } catch {
        // not JSON: the page sees the server's answer as it is
      }
    }
    if (mxc) {
      const uploadUrl = new URL(request.url);
      if (reservedMxc) uploadUrl.pathname = uploadUrl.pathname.replace(/\/upload\/[^/]+\/[^/]+$/, '/upload');
      this.remember(mxc, {
        file: { ...file, url: mxc },
        ...(mimetype ? { mimetype } : {}),
        plaintext,
        uploadUrl: uploadUrl.href,
        authorization: request.headers.get('Authorization'),
      });
    }
    const answer = new Response(text, {
      status: response.status,
      statusText: response.statusText,
      headers: response.headers,
    });
    Object.defineProperty(answer, 'url', { value: response.url });
    return answer;
  }

  /**
   * Sends an upload body; through the native XHR when the page watches progress (fetch cannot
   * report upload progress, and clients such as matrix-js-sdk abort an upload that reports
   * none for 30 s).
   */
  private send(
    url: string,
    request: Request,
    headers: Headers,
    body: Blob,
    progress?: UploadProgress,
  ): Promise<Response> {
    const NativeXHR = this.deps.NativeXHR;
    if (!progress || !NativeXHR) {
      return this.deps.nativeFetch(url, {
        method: request.method,
        headers,
        body,
        signal: request.signal,
        credentials: request.credentials,
      });
    }
    return new Promise((resolve, reject) => {
      const xhr = new NativeXHR();
      xhr.open(request.method, url);
      headers.forEach((value, name) => xhr.setRequestHeader(name, value));
      xhr.withCredentials = request.credentials === 'include';
      xhr.upload.onprogress = (event) => progress(event.loaded, event.total);
      xhr.onload = () => {
        const responseHeaders = new Headers();
        for (const line of xhr
          .getAllResponseHeaders()
          .trim()
          .split(/[\r\n]+/)) {
          const colon = line.indexOf(':');
          if (colon > 0) responseHeaders.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
        }
        resolve(
          new Response(xhr.responseText, { status: xhr.status, statusText: xhr.statusText, headers: responseHeaders }),
        );
      };
      xhr.onerror = () => reject(new TypeError('Failed to fetch'));
      xhr.onabort = () => reject(new DOMException('The upload was aborted', 'AbortError'));
      request.signal.addEventListener('abort', () => xhr.abort());
      xhr.send(body);
    });
  }

  private remember(mxc: string, upload: Upload): void {
    this.uploads.set(mxc, upload);
    let count = 0;
    let bytes = 0;
    for (const kept of [...this.uploads.values()].reverse()) {
      if (!kept.plaintext) continue;
      count += 1;
      bytes += kept.plaintext.size;
      // The newest file is always kept: it is the one the page is about to send.
      if (kept !== upload && (count > RETAINED_PLAINTEXTS || bytes > RETAINED_BYTES)) kept.plaintext = undefined;
    }
    if (this.uploads.size > REMEMBERED_UPLOADS) this.uploads.delete(this.uploads.keys().next().value as string);
  }

  /** Whether a JSON request body names one of the page's encrypted uploads (as a whole string). */
  private namesUpload(text: string): boolean {
    if (this.uploads.size === 0 || !text.includes('mxc://')) return false;
    for (const mxc of this.uploads.keys()) if (text.includes(JSON.stringify(mxc))) return true;
    return false;
  }

  /**
   * The event content of a send with the page's uploads as EncryptedFile (`url` → `file`,
   * `info.thumbnail_url` → `info.thumbnail_file`, also in `m.new_content`), for the worker
   * to encrypt into an encrypted room; undefined when the send names none of them.
   */
  encryptedContent(body: string): string | undefined {
    if (!this.namesUpload(body)) return undefined;
    let content: unknown;
    try {
      content = JSON.parse(body);
    } catch {
      return undefined;
    }
    if (!isObject(content)) return undefined;
    let changed = false;
    const attach = (part: Json): Json => {
      const out: Json = { ...part };
      const file = typeof out.url === 'string' ? this.uploads.get(out.url) : undefined;
      if (file) {
        delete out.url;
        out.file = file.file;
        changed = true;
      }
      if (isObject(out.info)) {
        const thumb = typeof out.info.thumbnail_url === 'string' ? this.uploads.get(out.info.thumbnail_url) : undefined;
        if (thumb) {
          const { thumbnail_url: _, ...info } = out.info;
          out.info = { ...info, thumbnail_file: thumb.file };
          changed = true;
        }
      }
      return out;
    };
    const out = attach(content);
    if (isObject(out['m.new_content'])) out['m.new_content'] = attach(out['m.new_content']);
    return changed ? JSON.stringify(out) : undefined;
  }

  /**
   * The request with every mention of the page's encrypted uploads replaced by the mxc of
   * the plaintext, uploaded now (once per file): for whatever is not encrypted (sends into
   * unencrypted rooms, state events, profiles). Requests that name none go unchanged.
   */
  async withPlaintextUploads(request: Request): Promise<Request> {
    if (this.uploads.size === 0 || (request.method !== 'PUT' && request.method !== 'POST')) return request;
    const text = await request.clone().text();
    if (!this.namesUpload(text)) return request;
    let body = text;
    for (const [mxc, upload] of this.uploads) {
      // Quoted: mxc://hs/m1 must not match inside "mxc://hs/m10".
      const quoted = JSON.stringify(mxc);
      if (!body.includes(quoted)) continue;
      upload.plainMxc ??= this.uploadPlaintext(upload);
      upload.plainMxc.catch(() => (upload.plainMxc = undefined)); // a later retry uploads again
      body = body.split(quoted).join(JSON.stringify(await upload.plainMxc));
    }
    return new Request(request, { body });
  }

  private async uploadPlaintext(upload: Upload): Promise<string> {
    const plaintext = upload.plaintext ?? (await this.downloadOwn(upload));
    const headers = new Headers({ 'Content-Type': upload.mimetype ?? 'application/octet-stream' });
    if (upload.authorization) headers.set('Authorization', upload.authorization);
    const response = await this.deps.nativeFetch(upload.uploadUrl, { method: 'POST', headers, body: plaintext });
    const answer = await response.json().catch(() => ({}));
    if (!response.ok || typeof answer?.content_uri !== 'string') {
      throw new Error(
        `Kirjava could not upload the file for an unencrypted room: ${response.status} ${answer?.error ?? ''}`,
      );
    }
    return answer.content_uri;
  }

  /** An upload whose plaintext was dropped: its ciphertext from the server, decrypted. */
  private async downloadOwn(upload: Upload): Promise<Blob> {
    const [serverName, mediaId] = upload.file.url.slice('mxc://'.length).split('/');
    const base = upload.uploadUrl.replace(/\/_matrix\/media\/[^/]+\/upload.*$/, '');
    const headers = new Headers();
    if (upload.authorization) headers.set('Authorization', upload.authorization);
    const response = await this.deps.nativeFetch(
      `${base}/_matrix/client/v1/media/download/${encodeURIComponent(serverName)}/${encodeURIComponent(mediaId)}`,
      { headers },
    );
    if (!response.ok)
      throw new Error(`Kirjava could not fetch your earlier upload again (${response.status}): upload the file again.`);
    const { plaintext } = await openEncrypted(response.body, upload.file);
    return new Blob([await new Response(plaintext).blob()], { type: upload.mimetype ?? '' });
  }
}
