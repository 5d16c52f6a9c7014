/**
 * The plain client under test: a web page built on matrix-js-sdk *without* crypto, like the web
 * clients Kirjava is for. `usingExternalCrypto` (the pantalaimon flag) lets it send into encrypted
 * rooms as plaintext, which the extension must encrypt. The Playwright tests drive it through
 * `window.kirjavaTest` (see api.ts); a small room list and timeline make screenshots readable.
 */
import {
  ClientEvent,
  createClient,
  EventType,
  NotificationCountType,
  KnownMembership,
  Preset,
  RoomEvent,
  type IMatrixClientCreateOpts,
  type MatrixClient,
  type MatrixEvent,
  type Room,
} from 'matrix-js-sdk';
import { startClientPrepared, waitForClient } from './sdk-wait.ts';
import type { KirjavaTestApi, MediaResponse, RawResponse, Session, StartOptions, TimelineEntry } from './api.ts';

let client: MatrixClient | undefined;
let session: (Session & { baseUrl: string }) | undefined;
let selectedRoomId: string | undefined;

function running(): MatrixClient {
  if (!client) throw new Error('The test client is not started: call login() or startWithToken() first');
  return client;
}

function summarize(event: MatrixEvent): TimelineEntry {
  const content = event.getContent();
  return {
    eventId: event.getId() ?? '',
    type: event.getType(),
    sender: event.getSender() ?? '',
    body: typeof content.body === 'string' ? content.body : undefined,
    msgtype: typeof content.msgtype === 'string' ? content.msgtype : undefined,
    status: event.status ?? null,
    ...(event.replacingEvent() ? { originalBody: String(event.getOriginalContent().body) } : {}),
  };
}

function timelineOf(roomId: string): TimelineEntry[] {
  const room = running().getRoom(roomId);
  if (!room) throw new Error(`The client does not know room ${roomId}`);
  return room.getLiveTimeline().getEvents().map(summarize);
}

function waitFor<T>(what: string, probe: () => T | undefined, timeoutMs: number): Promise<T> {
  return waitForClient(running(), what, probe, timeoutMs);
}

async function start(baseUrl: string, who: Session, options: StartOptions = {}): Promise<Session> {
  if (client) throw new Error('The test client is already started');
  // createClient's parameter type omits usingExternalCrypto, but it passes the option through.
  const clientOptions: IMatrixClientCreateOpts = {
    baseUrl,
    userId: who.userId,
    deviceId: who.deviceId,
    accessToken: who.accessToken,
    usingExternalCrypto: true,
  };
  client = createClient(clientOptions);
  session = { ...who, baseUrl };
  client.on(ClientEvent.Sync, render);
  client.on(RoomEvent.Timeline, render);
  client.on(ClientEvent.Room, render);
  await startClientPrepared(client, {
    lazyLoadMembers: true,
    initialSyncLimit: options.initialSyncLimit ?? 20,
  });
  render();
  return who;
}

async function raw(
  transport: (url: string, method: string, headers: Record<string, string>, body?: string) => Promise<RawResponse>,
  method: string,
  path: string,
  body?: unknown,
): Promise<RawResponse> {
  if (!session) throw new Error('The test client is not started');
  const headers: Record<string, string> = { Authorization: `Bearer ${session.accessToken}` };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  return transport(`${session.baseUrl}${path}`, method, headers, body === undefined ? undefined : JSON.stringify(body));
}

function parseJson(text: string): any {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

const bytesOf = (base64: string) => Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
function base64Of(buffer: ArrayBuffer): string {
  const bytes = new Uint8Array(buffer);
  let binary = '';
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary);
}

function mediaResponse(status: number, contentType: string | null, buffer: ArrayBuffer): MediaResponse {
  let json: any = null;
  if (contentType?.startsWith('application/json')) json = parseJson(new TextDecoder().decode(buffer));
  return { status, contentType, bytesBase64: base64Of(buffer), json };
}

const api: KirjavaTestApi = {
  async login(baseUrl, user, password, options) {
    const answer = await createClient({ baseUrl }).loginRequest({
      type: 'm.login.password',
      identifier: { type: 'm.id.user', user },
      password,
      initial_device_display_name: 'Plain test client',
    });
    return start(
      baseUrl,
      { userId: answer.user_id, deviceId: answer.device_id, accessToken: answer.access_token },
      options,
    );
  },

  startWithToken: (baseUrl, userId, accessToken, deviceId, options) =>
    start(baseUrl, { userId, accessToken, deviceId }, options),

  timeline: async (roomId) => timelineOf(roomId),

  async unreadCounts(roomId) {
    const room = running().getRoom(roomId);
    return {
      total: room?.getUnreadNotificationCount(NotificationCountType.Total) ?? 0,
      highlight: room?.getUnreadNotificationCount(NotificationCountType.Highlight) ?? 0,
    };
  },

  waitForBody: (roomId, body, timeoutMs = 30_000) =>
    waitFor(
      `a message "${body}" in ${roomId}`,
      () => timelineOf(roomId).find((e) => e.type === EventType.RoomMessage && e.body === body && e.status === null),
      timeoutMs,
    ),

  async sendText(roomId, body) {
    const { event_id } = await running().sendTextMessage(roomId, body);
    return event_id;
  },

  async createRoom({ encrypted, invite }) {
    const { room_id: roomId } = await running().createRoom({
      preset: Preset.PrivateChat,
      invite,
      initial_state: encrypted
        ? [{ type: EventType.RoomEncryption, state_key: '', content: { algorithm: 'm.megolm.v1.aes-sha2' } }]
        : [],
    });
    await waitFor(
      `room ${roomId} to reach the client`,
      () => {
        const room = running().getRoom(roomId);
        return room && (!encrypted || room.hasEncryptionStateEvent()) ? room : undefined;
      },
      30_000,
    );
    selectedRoomId = roomId;
    render();
    return roomId;
  },

  async joinRoom(roomId) {
    await running().joinRoom(roomId);
    await waitFor(
      `our join of ${roomId} to sync`,
      () => (running().getRoom(roomId)?.getMyMembership() === KnownMembership.Join ? true : undefined),
      30_000,
    );
    selectedRoomId = roomId;
    render();
  },

  waitForInvite: (timeoutMs = 30_000) =>
    waitFor(
      'an invite',
      () =>
        running()
          .getRooms()
          .find((room) => room.getMyMembership() === KnownMembership.Invite)?.roomId,
      timeoutMs,
    ),

  async scrollback(roomId, limit) {
    const room = running().getRoom(roomId);
    if (!room) throw new Error(`The client does not know room ${roomId}`);
    await running().scrollback(room, limit);
    return timelineOf(roomId);
  },

  rawFetch: (method, path, body) =>
    raw(
      async (url, method, headers, body) => {
        const response = await window.fetch(url, { method, headers, body });
        return { status: response.status, json: parseJson(await response.text()) };
      },
      method,
      path,
      body,
    ),

  rawXhr: (method, path, body) =>
    raw(
      (url, method, headers, body) =>
        new Promise((resolve, reject) => {
          const xhr = new XMLHttpRequest();
          xhr.open(method, url);
          for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
          xhr.onload = () => resolve({ status: xhr.status, json: parseJson(xhr.responseText) });
          xhr.onerror = () => reject(new Error(`XHR ${method} ${url} failed`));
          xhr.send(body ?? null);
        }),
      method,
      path,
      body,
    ),

  async downloadMedia(path, via = 'fetch', options = {}) {
    if (!session) throw new Error('The test client is not started');
    const url = `${session.baseUrl}${path}`;
    const headers: Record<string, string> = options.withoutToken
      ? {}
      : { Authorization: `Bearer ${session.accessToken}` };
    if (via === 'fetch') {
      const response = await window.fetch(url, { headers });
      return mediaResponse(response.status, response.headers.get('Content-Type'), await response.arrayBuffer());
    }
    return new Promise((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open('GET', url);
      xhr.responseType = 'arraybuffer';
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.onload = () =>
        resolve(mediaResponse(xhr.status, xhr.getResponseHeader('Content-Type'), xhr.response as ArrayBuffer));
      xhr.onerror = () => reject(new Error(`XHR GET ${url} failed`));
      xhr.send();
    });
  },

  async uploadAndSendImage(roomId, image) {
    const sdk = running();
    const progress: number[] = [];
    const { content_uri: url } = await sdk.uploadContent(new Blob([bytesOf(image.base64)], { type: image.mimetype }), {
      name: image.body,
      progressHandler: ({ loaded }) => progress.push(loaded),
    });
    if (progress.length === 0) throw new Error('The upload reported no progress');
    const { content_uri: thumbnailUrl } = await sdk.uploadContent(
      new Blob([bytesOf(image.thumbnailBase64)], { type: 'image/png' }),
      { name: `thumbnail-${image.body}` },
    );
    const { event_id: eventId } = await sdk.sendImageMessage(
      roomId,
      url,
      {
        mimetype: image.mimetype,
        size: bytesOf(image.base64).length,
        thumbnail_url: thumbnailUrl,
        thumbnail_info: { mimetype: 'image/png' },
      },
      image.body,
    );
    return { eventId, url, thumbnailUrl };
  },

  waitForEventContent: (roomId, eventId, timeoutMs = 30_000) =>
    waitFor(
      `event ${eventId} in ${roomId}`,
      () => {
        const event = running().getRoom(roomId)?.findEventById(eventId);
        return event && event.status === null ? event.getContent() : undefined;
      },
      timeoutMs,
    ),

  async stop() {
    client?.stopClient();
    client = undefined;
    session = undefined;
    render();
  },
};

window.kirjavaTest = api;

// --- The visible part: room list and the selected room's timeline, for screenshots and humans. ---

let renderQueued = false;
function render(): void {
  if (renderQueued) return;
  renderQueued = true;
  setTimeout(() => {
    renderQueued = false;
    draw();
  }, 0);
}

function roomLabel(room: Room): string {
  const encrypted = room.hasEncryptionStateEvent() ? ' [encrypted room]' : '';
  const invited = room.getMyMembership() === KnownMembership.Invite ? ' (invited)' : '';
  return `${room.name || room.roomId}${encrypted}${invited}`;
}

function draw(): void {
  const me = document.getElementById('me')!;
  const list = document.getElementById('rooms')!;
  const title = document.getElementById('room-title')!;
  const timeline = document.getElementById('timeline')!;
  me.textContent = session ? `${session.userId} (${session.deviceId})` : 'Not logged in';
  const rooms = client?.getRooms() ?? [];
  list.replaceChildren(
    ...rooms.map((room) => {
      const item = document.createElement('li');
      item.textContent = roomLabel(room);
      item.className = room.roomId === selectedRoomId ? 'selected' : '';
      item.onclick = () => {
        selectedRoomId = room.roomId;
        render();
      };
      return item;
    }),
  );
  const room = selectedRoomId ? client?.getRoom(selectedRoomId) : rooms[0];
  title.textContent = room ? roomLabel(room) : 'No room';
  const events = room ? room.getLiveTimeline().getEvents().map(summarize) : [];
  timeline.replaceChildren(
    ...events
      .filter((e) => e.type === EventType.RoomMessage || e.type === EventType.RoomMessageEncrypted)
      .map((e) => {
        const line = document.createElement('div');
        line.className = e.type === EventType.RoomMessageEncrypted ? 'event encrypted' : 'event';
        const sender = document.createElement('span');
        sender.className = 'sender';
        sender.textContent = e.sender;
        const type = document.createElement('span');
        type.className = 'type';
        type.textContent = e.type;
        const text = e.type === EventType.RoomMessageEncrypted ? '(encrypted, not readable)' : (e.body ?? '');
        line.append(sender, text, type);
        return line;
      }),
  );
  timeline.parentElement!.scrollTop = timeline.parentElement!.scrollHeight; // newest messages in view
  document.getElementById('composer')!.hidden = !room;
}

/** The composer, for people trying the demo by hand: sends like any client would. */
document.getElementById('composer')!.addEventListener('submit', (event) => {
  event.preventDefault();
  const input = document.getElementById('message') as HTMLInputElement;
  const roomId = selectedRoomId ?? client?.getRooms()[0]?.roomId;
  if (!roomId || !input.value.trim()) return;
  api.sendText(roomId, input.value).catch((error) => console.error('Sending failed:', error));
  input.value = '';
});

render();
