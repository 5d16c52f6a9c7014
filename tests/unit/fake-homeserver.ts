/**
 * A fake homeserver for unit tests only: just enough of the Matrix client-server API for
 * two or three CryptoAccounts to find each other's devices, set up Olm sessions and share
 * Megolm keys, all in-process. It is handed to `CryptoAccount.open` as `fetchFn`; nothing
 * listens on a socket. It checks no signatures, keeps no event graph, and builds /sync
 * bodies on demand (`syncFor`) from what was uploaded and what the test puts in.
 */

type Json = Record<string, any>;

interface Device {
  userId: string;
  deviceId: string;
  keys?: Json;
  oneTimeKeys: Map<string, Json>;
  fallbackKeys: Map<string, { id: string; key: Json; used: boolean }>;
  inbox: Json[];
  changed: Set<string>;
}

/** One request as the fake saw it, for tests that count calls. */
export interface SeenRequest {
  method: string;
  path: string;
  userId?: string;
}

export interface SyncExtras {
  /** room id → timeline events of that joined room */
  timeline?: Record<string, Json[]>;
  /** room id → state events of that joined room */
  state?: Record<string, Json[]>;
}

const PREFIX = '/_matrix/client/v3';

const json = (status: number, body: unknown): Response =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });
const error = (status: number, errcode: string, message: string): Response => json(status, { errcode, error: message });

export class FakeHomeserver {
  readonly baseUrl = 'https://hs.example.test';
  readonly requests: SeenRequest[] = [];
  /** Lets a test answer a request itself (e.g. a 500); return undefined to fall through. */
  intercept: (method: string, path: string) => Response | undefined = () => undefined;

  private readonly tokens = new Map<string, Device>();
  private readonly devices = new Map<string, Device>();
  private readonly members = new Map<string, Map<string, string>>();
  private readonly encryptedRooms = new Set<string>();
  private nextEvent = 1;

  /** Logs a device in (an existing device keeps its keys, as on a real server); returns its access token. */
  login(userId: string, deviceId: string): string {
    const id = `${userId}|${deviceId}`;
    const device: Device = this.devices.get(id) ?? {
      userId,
      deviceId,
      oneTimeKeys: new Map(),
      fallbackKeys: new Map(),
      inbox: [],
      changed: new Set(),
    };
    this.devices.set(id, device);
    const token = `token_${userId}_${deviceId}`;
    this.tokens.set(token, device);
    return token;
  }

  /** Puts device keys on the server as if another app had uploaded them. */
  setDeviceKeys(userId: string, deviceId: string, keys: Json): void {
    this.device(userId, deviceId).keys = keys;
  }

  setMembership(roomId: string, userId: string, membership: 'join' | 'invite' | 'leave'): void {
    if (!this.members.has(roomId)) this.members.set(roomId, new Map());
    this.members.get(roomId)!.set(userId, membership);
  }

  setEncrypted(roomId: string): void {
    this.encryptedRooms.add(roomId);
  }

  /** A room event as a homeserver would serve it. */
  event(roomId: string, sender: string, type: string, content: Json, extra: Json = {}): Json {
    const n = this.nextEvent++;
    return {
      event_id: `$event${n}`,
      room_id: roomId,
      sender,
      type,
      content,
      origin_server_ts: 1_700_000_000_000 + n,
      ...extra,
    };
  }

  /** The /sync body for one device; pending to-device events and device list changes are handed out once. */
  syncFor(userId: string, deviceId: string, extras: SyncExtras = {}): string {
    const device = this.device(userId, deviceId);
    const join: Json = {};
    for (const roomId of new Set([...Object.keys(extras.timeline ?? {}), ...Object.keys(extras.state ?? {})])) {
      join[roomId] = {
        state: { events: extras.state?.[roomId] ?? [] },
        timeline: { events: extras.timeline?.[roomId] ?? [], limited: false },
      };
    }
    const body = {
      next_batch: `s${this.nextEvent++}`,
      to_device: { events: device.inbox.splice(0) },
      device_lists: { changed: [...device.changed], left: [] },
      device_one_time_keys_count: { signed_curve25519: device.oneTimeKeys.size },
      device_unused_fallback_key_types: [...device.fallbackKeys].filter(([, k]) => !k.used).map(([alg]) => alg),
      rooms: { join },
    };
    device.changed.clear();
    return JSON.stringify(body);
  }

  readonly fetchFn = async (input: string, init: RequestInit = {}): Promise<Response> => {
    const url = new URL(input);
    const method = (init.method ?? 'GET').toUpperCase();
    const path = url.pathname.startsWith(PREFIX) ? url.pathname.slice(PREFIX.length) : url.pathname;
    const auth = new Headers(init.headers).get('Authorization')?.replace(/^Bearer /, '');
    const caller = auth === undefined ? undefined : this.tokens.get(auth);
    this.requests.push({ method, path, userId: caller?.userId });
    const intercepted = this.intercept(method, path);
    if (intercepted) return intercepted;
    if (!caller) return error(401, 'M_UNKNOWN_TOKEN', 'Unknown access token');
    const body = typeof init.body === 'string' && init.body ? JSON.parse(init.body) : {};
    const segments = path.split('/').slice(1).map(decodeURIComponent);

    if (method === 'POST' && path === '/keys/upload') return json(200, this.upload(caller, body));
    if (method === 'POST' && path === '/keys/query') return json(200, this.query(body));
    if (method === 'POST' && path === '/keys/claim') return json(200, this.claim(body));
    if (method === 'POST' && path === '/keys/signatures/upload') return json(200, { failures: {} });
    if (method === 'PUT' && segments[0] === 'sendToDevice' && segments.length === 3) {
      this.sendToDevice(caller, segments[1], body);
      return json(200, {});
    }
    if (method === 'GET' && segments[0] === 'rooms' && segments[2] === 'members') {
      return json(200, { chunk: this.memberEvents(segments[1], url.searchParams.get('not_membership')) });
    }
    if (method === 'GET' && segments[0] === 'rooms' && segments[2] === 'state' && segments[3] === 'm.room.encryption') {
      return this.encryptedRooms.has(segments[1])
        ? json(200, { algorithm: 'm.megolm.v1.aes-sha2' })
        : error(404, 'M_NOT_FOUND', 'Event not found.');
    }
    return error(404, 'M_UNRECOGNIZED', `Unrecognized request ${method} ${path}`);
  };

  private device(userId: string, deviceId: string): Device {
    const device = this.devices.get(`${userId}|${deviceId}`);
    if (!device) throw new Error(`fake homeserver: no device ${userId} ${deviceId}; call login() first`);
    return device;
  }

  private upload(device: Device, body: Json): Json {
    if (body.device_keys) {
      device.keys = body.device_keys;
      // Everyone's next sync says this user's devices changed (a real server limits it to users sharing a room).
      for (const other of this.devices.values()) other.changed.add(device.userId);
    }
    for (const [id, key] of Object.entries<Json>(body.one_time_keys ?? {})) device.oneTimeKeys.set(id, key);
    for (const [id, key] of Object.entries<Json>(body.fallback_keys ?? {})) {
      device.fallbackKeys.set(id.split(':')[0], { id, key, used: false });
    }
    return { one_time_key_counts: { signed_curve25519: device.oneTimeKeys.size } };
  }

  private query(body: Json): Json {
    const deviceKeys: Json = {};
    for (const [userId, wanted] of Object.entries<string[]>(body.device_keys ?? {})) {
      deviceKeys[userId] = {};
      for (const device of this.devices.values()) {
        if (device.userId !== userId || !device.keys) continue;
        if (wanted.length > 0 && !wanted.includes(device.deviceId)) continue;
        deviceKeys[userId][device.deviceId] = device.keys;
      }
    }
    return { device_keys: deviceKeys, failures: {}, master_keys: {}, self_signing_keys: {}, user_signing_keys: {} };
  }

  /** Hands out (and removes) one one-time key of the wanted algorithm, else the fallback key. */
  private claim(body: Json): Json {
    const out: Json = {};
    for (const [userId, byDevice] of Object.entries<Json>(body.one_time_keys ?? {})) {
      for (const [deviceId, algorithm] of Object.entries<string>(byDevice)) {
        const device = this.devices.get(`${userId}|${deviceId}`);
        if (!device) continue;
        const otk = [...device.oneTimeKeys].find(([id]) => id.startsWith(`${algorithm}:`));
        let key: [string, Json] | undefined;
        if (otk) {
          device.oneTimeKeys.delete(otk[0]);
          key = otk;
        } else {
          const fallback = device.fallbackKeys.get(algorithm);
          if (fallback) {
            fallback.used = true;
            key = [fallback.id, fallback.key];
          }
        }
        if (key) (out[userId] ??= {})[deviceId] = { [key[0]]: key[1] };
      }
    }
    return { one_time_keys: out, failures: {} };
  }

  private sendToDevice(sender: Device, type: string, body: Json): void {
    for (const [userId, byDevice] of Object.entries<Json>(body.messages ?? {})) {
      for (const [deviceId, content] of Object.entries<Json>(byDevice)) {
        for (const device of this.devices.values()) {
          if (device.userId !== userId || (deviceId !== '*' && device.deviceId !== deviceId)) continue;
          device.inbox.push({ type, sender: sender.userId, content });
        }
      }
    }
  }

  private memberEvents(roomId: string, notMembership: string | null): Json[] {
    return [...(this.members.get(roomId) ?? [])]
      .filter(([, membership]) => membership !== notMembership)
      .map(([userId, membership]) =>
        this.event(roomId, userId, 'm.room.member', { membership }, { state_key: userId }),
      );
  }
}
