/**
 * The contract between the plain test client page (main.ts, in the browser) and the Node-side
 * tests: what `window.kirjavaTest` offers. Types only, so both sides can import it.
 */

/** One timeline event as the plain client sees it (after whatever the extension did to it). */
export interface TimelineEntry {
  eventId: string;
  type: string;
  sender: string;
  body: string | undefined;
  msgtype: string | undefined;
  /** The SDK's send status for local echoes (`sending`, `sent`, ...); null once the server sent it back. */
  status: string | null;
  /** Present once an edit (`m.replace`) replaced the event: the body it was first shown with. */
  originalBody?: string;
}

export interface Session {
  userId: string;
  deviceId: string;
  accessToken: string;
}

export interface RawResponse {
  status: number;
  /** The parsed JSON body, or null when the body is not JSON. */
  json: any;
}

/** A media download as the page got it. */
export interface MediaResponse {
  status: number;
  contentType: string | null;
  /** The body's bytes, base64. */
  bytesBase64: string;
  /** The body parsed as JSON (error responses), or null. */
  json: any;
}

export interface SentImage {
  eventId: string;
  /** The mxc URIs the SDK's uploads returned (what the client put into the event). */
  url: string;
  thumbnailUrl: string;
}

export interface StartOptions {
  /** `limit` of the initial sync's room timelines (the SDK's default is 8). */
  initialSyncLimit?: number;
}

export interface KirjavaTestApi {
  /** Password login through the SDK (`POST /login`, a new device), then starts syncing. */
  login(baseUrl: string, user: string, password: string, options?: StartOptions): Promise<Session>;
  /** Starts syncing as a client that was already logged in elsewhere. */
  startWithToken(
    baseUrl: string,
    userId: string,
    accessToken: string,
    deviceId: string,
    options?: StartOptions,
  ): Promise<Session>;
  timeline(roomId: string): Promise<TimelineEntry[]>;
  /** The room's unread counts as the SDK keeps them (from the sync's `unread_notifications`). */
  unreadCounts(roomId: string): Promise<{ total: number; highlight: number }>;
  /** Resolves with the first server-confirmed `m.room.message` with this body. */
  waitForBody(roomId: string, body: string, timeoutMs?: number): Promise<TimelineEntry>;
  /** `client.sendTextMessage`: the SDK's real send path. Returns the event id. */
  sendText(roomId: string, body: string): Promise<string>;
  createRoom(options: { encrypted: boolean; invite: string[] }): Promise<string>;
  joinRoom(roomId: string): Promise<void>;
  /** The id of a room we are invited to, waiting for one to arrive. */
  waitForInvite(timeoutMs?: number): Promise<string>;
  /** `client.scrollback` (`GET /rooms/{roomId}/messages`), then the timeline. */
  scrollback(roomId: string, limit: number): Promise<TimelineEntry[]>;
  /** A plain `window.fetch` to the homeserver with the session's token; `path` starts with `/_matrix/`. */
  rawFetch(method: string, path: string, body?: unknown): Promise<RawResponse>;
  /** The same through `XMLHttpRequest`. */
  rawXhr(method: string, path: string, body?: unknown): Promise<RawResponse>;
  /**
   * GET `path` (a media download or thumbnail) with the session's token (or without one, as
   * legacy media allows), through `fetch` or `XMLHttpRequest` (responseType arraybuffer), as a
   * client showing an image does.
   */
  downloadMedia(path: string, via?: 'fetch' | 'xhr', options?: { withoutToken?: boolean }): Promise<MediaResponse>;
  /**
   * The SDK's real path for a picture: `uploadContent` (XHR) for the image and its thumbnail,
   * then `sendImageMessage` with `url` and `info.thumbnail_url`.
   */
  uploadAndSendImage(
    roomId: string,
    image: { base64: string; mimetype: string; thumbnailBase64: string; body: string },
  ): Promise<SentImage>;
  /** The content of a server-confirmed event in the client's timeline, once it arrives. */
  waitForEventContent(roomId: string, eventId: string, timeoutMs?: number): Promise<Record<string, any>>;
  stop(): Promise<void>;
}

declare global {
  interface Window {
    kirjavaTest: KirjavaTestApi;
  }
}
