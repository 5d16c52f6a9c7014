/**
 * The benchmark's encrypted traffic, made by real OlmMachines: four senders in Node
 * (CryptoAccounts over the unit tests' fake homeserver) encrypt realistic messages into
 * several rooms; every device of the receiving user gets the room keys as to-device
 * events, exactly as from a homeserver. Nothing here is pasted ciphertext.
 */
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { CryptoAccount } from '../src/crypto/account.ts';
import { FakeHomeserver } from '../tests/fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

export const ME = '@me:example.test';
const SENDERS = ['@alice:example.test', '@bob:example.test', '@carol:example.test', '@dave:example.test'];
/** Senders who cross-signed their devices (as Element users have), and their rooms. */
export const CROSS_SIGNED_SENDERS = [
  '@erin:example.test',
  '@frank:example.test',
  '@grace:example.test',
  '@heidi:example.test',
];
export const CROSS_SIGNED_ROOMS = roomsNamed('x');
function roomsNamed(prefix: string) {
  return ['family', 'work', 'club', 'ops', 'dm'].map((name) => `!${prefix}${name}:example.test`);
}
/** Rooms of the /sync body; uneven, as real accounts are. */
export const SYNC_ROOMS = [
  '!family:example.test',
  '!work:example.test',
  '!club:example.test',
  '!ops:example.test',
  '!dm:example.test',
];
const ROOM_WEIGHTS = [0.35, 0.3, 0.15, 0.12, 0.08];
/** Rooms whose /messages history is reloaded (item 6); none of their events are in a sync. */
export const HISTORY_ROOMS = ['!archive0:example.test', '!archive1:example.test', '!archive2:example.test'];
/** An unencrypted room, for plaintext sends. */
export const PLAIN_ROOM = '!lobby:example.test';
/** An encrypted room for sends. */
export const SEND_ROOM = '!send:example.test';

const WORDS = (
  'the a to of and in is it you that for on with this be are was at have not but we can will ' +
  'meeting tomorrow lunch deploy release build test coffee weekend photos trip dinner train late ' +
  'thanks sure okay great sounds good let me check again later today tonight morning review branch ' +
  'merge ticket customer invoice kids school football concert tickets birthday cake flowers garden'
).split(' ');

/** A deterministic pseudo-random source, so every run encrypts the same plaintexts. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** Plaintext contents as clients send them: text, formatted, replies, edits, reactions, images. */
export function plaintexts(count: number, seed = 7): { type: string; content: Json }[] {
  const random = rng(seed);
  const pick = <T>(list: T[]) => list[Math.floor(random() * list.length)];
  const sentence = (min: number, max: number) => {
    const n = min + Math.floor(random() * (max - min));
    const words = Array.from({ length: n }, () => pick(WORDS));
    words[0] = words[0][0].toUpperCase() + words[0].slice(1);
    return `${words.join(' ')}${pick(['.', '!', '?', '', ' :)'])}`;
  };
  const out: { type: string; content: Json }[] = [];
  for (let i = 0; i < count; i++) {
    const r = random();
    const earlier = `$earlier${Math.floor(random() * 1e6)}`;
    if (r < 0.55) {
      out.push({ type: 'm.room.message', content: { msgtype: 'm.text', body: sentence(2, 30), 'm.mentions': {} } });
    } else if (r < 0.7) {
      const text = sentence(5, 40);
      out.push({
        type: 'm.room.message',
        content: {
          msgtype: 'm.text',
          body: text,
          format: 'org.matrix.custom.html',
          formatted_body: `<p>${text.replace(/(\w+)/, '<b>$1</b>')}</p>`,
          'm.mentions': {},
        },
      });
    } else if (r < 0.8) {
      out.push({
        type: 'm.room.message',
        content: {
          msgtype: 'm.text',
          body: `> <@someone:example.test> ${sentence(3, 10)}\n\n${sentence(2, 20)}`,
          'm.relates_to': { 'm.in_reply_to': { event_id: earlier } },
          'm.mentions': {},
        },
      });
    } else if (r < 0.87) {
      const text = sentence(2, 20);
      out.push({
        type: 'm.room.message',
        content: {
          msgtype: 'm.text',
          body: `* ${text}`,
          'm.new_content': { msgtype: 'm.text', body: text },
          'm.relates_to': { rel_type: 'm.replace', event_id: earlier },
        },
      });
    } else if (r < 0.95) {
      out.push({
        type: 'm.reaction',
        content: {
          'm.relates_to': { rel_type: 'm.annotation', event_id: earlier, key: pick(['👍', '😂', '❤️', '🎉', '👀']) },
        },
      });
    } else {
      out.push({
        type: 'm.room.message',
        content: {
          msgtype: 'm.image',
          body: 'IMG_2041.jpg',
          info: {
            mimetype: 'image/jpeg',
            size: 183_211 + i,
            w: 1600,
            h: 1200,
            thumbnail_info: { mimetype: 'image/jpeg', size: 18_112, w: 800, h: 600 },
          },
          file: {
            url: `mxc://example.test/m${i}`,
            key: { alg: 'A256CTR', ext: true, k: 'q'.repeat(43), key_ops: ['encrypt', 'decrypt'], kty: 'oct' },
            iv: 'A'.repeat(22),
            hashes: { sha256: 'h'.repeat(43) },
            v: 'v2',
          },
        },
      });
    }
  }
  return out;
}

export interface Corpus {
  hs: FakeHomeserver;
  /** room id → encrypted timeline events of the /sync body, in timeline order. */
  syncTimeline: Record<string, Json[]>;
  /** room id → its encrypted events, newest first as /messages?dir=b serves them. */
  histories: Map<string, Json[]>;
  /** More distinct timelines shaped like syncTimeline (memory after many decryptions). */
  batches: Record<string, Json[]>[];
  /**
   * Timelines shaped like syncTimeline, one per run of item 2: each run decrypts events
   * the worker has never seen, so the decrypted-event cache cannot answer for it.
   */
  fresh: Record<string, Json[]>[];
  /** Encrypted events of SYNC_ROOMS[0], one per cold start: never seen before either. */
  singles: Json[];
  senders: CryptoAccount[];
  close(): void;
}

/**
 * Encrypts the corpus for every device of ME that is logged in on `hs` and has uploaded
 * its keys (the Node receiver and the browser's device). Call it after those devices
 * exist: room keys are shared with the devices the server knows at send time.
 */
export async function makeCorpus(
  hs: FakeHomeserver,
  options: { syncEvents: number; historyEvents: number; batches: number; fresh: number; singles: number },
  /** Other senders (openSenders) writing into other rooms: the corpus of item 2's cross-signed figure. */
  cast?: { senders: CryptoAccount[]; rooms: string[] },
): Promise<Corpus> {
  const senders = cast?.senders ?? (await openSenders(hs, SENDERS));
  const syncRooms = cast?.rooms ?? SYNC_ROOMS;
  const userIds = senders.map((s) => s.identity.userId);
  for (const room of [...syncRooms, ...HISTORY_ROOMS, SEND_ROOM]) {
    hs.setEncrypted(room);
    for (const user of [ME, ...userIds]) hs.setMembership(room, user, 'join');
  }
  for (const user of [ME, ...userIds]) hs.setMembership(PLAIN_ROOM, user, 'join');

  const random = rng(11);
  const encryptAs = async (room: string, sender: number, message: { type: string; content: Json }) => {
    const decision = await senders[sender].prepareSend(room, message.type, JSON.stringify(message.content));
    if (decision === 'passthrough') throw new Error(`bench corpus: ${room} is not encrypted`);
    return hs.event(room, userIds[sender]!, 'm.room.encrypted', JSON.parse(decision.body), { unsigned: { age: 1234 } });
  };

  const timeline = async (seed: number) => {
    const out: Record<string, Json[]> = Object.fromEntries(syncRooms.map((r) => [r, []]));
    for (const message of plaintexts(options.syncEvents, seed)) {
      let x = random();
      let room = syncRooms.length - 1;
      for (const [i, weight] of ROOM_WEIGHTS.entries()) {
        if ((x -= weight) < 0) {
          room = i;
          break;
        }
      }
      const sender = Math.floor(random() * senders.length);
      out[syncRooms[room]!]!.push(await encryptAs(syncRooms[room]!, sender, message));
    }
    return out;
  };
  const syncTimeline = await timeline(7);
  const histories = new Map<string, Json[]>();
  for (const [i, room] of HISTORY_ROOMS.entries()) {
    const events: Json[] = [];
    for (const message of plaintexts(options.historyEvents, 100 + i))
      events.push(await encryptAs(room, Math.floor(random() * senders.length), message));
    histories.set(room, events.reverse());
  }
  const batches: Record<string, Json[]>[] = [];
  for (let i = 0; i < options.batches; i++) batches.push(await timeline(200 + i));
  const fresh: Record<string, Json[]>[] = [];
  for (let i = 0; i < options.fresh; i++) fresh.push(await timeline(500 + i));
  const singles: Json[] = [];
  for (let i = 0; i < options.singles; i++) {
    singles.push(
      await encryptAs(SYNC_ROOMS[0], i % senders.length, {
        type: 'm.room.message',
        content: { msgtype: 'm.text', body: `Are you awake? (${i})` },
      }),
    );
  }
  return {
    hs,
    syncTimeline,
    histories,
    batches,
    fresh,
    singles,
    senders,
    close: () => senders.forEach((s) => s.close()),
  };
}

/**
 * Sender accounts with their device keys uploaded; `crossSign`: each also cross-signs its
 * device (bootstrap, signing keys and signature uploaded), as Element does at first login.
 */
export async function openSenders(hs: FakeHomeserver, userIds: string[], crossSign = false): Promise<CryptoAccount[]> {
  const senders: CryptoAccount[] = [];
  for (const [i, userId] of userIds.entries()) {
    const deviceId = `SENDER${i}`;
    const accessToken = hs.login(userId, deviceId);
    const account = await CryptoAccount.open({
      baseUrl: hs.baseUrl,
      userId,
      deviceId,
      accessToken,
      fetchFn: hs.fetchFn,
    });
    await account.claimDevice();
    if (crossSign) {
      const requests = await account.machine.bootstrapCrossSigning(true);
      for (const [path, body] of [
        ['/keys/device_signing/upload', requests.uploadSigningKeysRequest.body],
        ['/keys/signatures/upload', requests.uploadSignaturesRequest.body],
      ] as const) {
        const answer = await hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3${path}`, {
          method: 'POST',
          headers: { Authorization: `Bearer ${accessToken}` },
          body,
        });
        if (answer.status !== 200) throw new Error(`bench corpus: ${path} answered ${answer.status}`);
      }
    }
    senders.push(account);
  }
  return senders;
}

/**
 * `count` room keys of rooms and devices that never write to the bench, as a key file's
 * JSON (Element's export format): the store of a long-used account. Exported megolm
 * session keys are unsigned, so they are made up here: version 1, index 0, a random
 * ratchet and a real Ed25519 public key (which is also the session id).
 */
export function fillerRoomKeys(count: number): string {
  const unpadded = (bytes: Buffer) => bytes.toString('base64').replace(/=+$/, '');
  const keys = [];
  for (let i = 0; i < count; i++) {
    const publicKey = generateKeyPairSync('ed25519').publicKey.export({ format: 'der', type: 'spki' }).subarray(-32);
    const index = Buffer.alloc(4);
    const sessionKey = Buffer.concat([Buffer.from([1]), index, randomBytes(128), publicKey]);
    keys.push({
      algorithm: 'm.megolm.v1.aes-sha2',
      room_id: `!old${i % 200}:example.test`,
      sender_key: unpadded(randomBytes(32)),
      session_id: unpadded(publicKey),
      session_key: unpadded(sessionKey),
      sender_claimed_keys: { ed25519: unpadded(publicKey) },
      forwarding_curve25519_key_chain: [],
    });
  }
  return JSON.stringify(keys);
}

/** A /sync body: optional to-device events, the given timelines, and the machine's counts. */
export function syncBody(timeline: Record<string, Json[]>, toDevice: Json[] = [], batch = 's1'): string {
  const join: Json = {};
  for (const [roomId, events] of Object.entries(timeline)) {
    join[roomId] = {
      state: { events: [] },
      timeline: { events, limited: false, prev_batch: `p_${batch}` },
      ephemeral: { events: [] },
      account_data: { events: [] },
      unread_notifications: { notification_count: 0, highlight_count: 0 },
      summary: {},
    };
  }
  return JSON.stringify({
    next_batch: batch,
    to_device: { events: toDevice },
    device_lists: { changed: [], left: [] },
    device_one_time_keys_count: { signed_curve25519: 50 },
    device_unused_fallback_key_types: ['signed_curve25519'],
    account_data: { events: [] },
    presence: { events: [] },
    rooms: { join },
  });
}

/**
 * An unencrypted /sync body of about `bytes`: plain text messages in a few rooms, the
 * shape a busy initial sync has. Nothing in it is for the crypto machine but the counts.
 */
export function plainSyncBody(bytes: number): string {
  const messages = plaintexts(Math.max(1, Math.ceil(bytes / 330)), 17);
  const timeline: Record<string, Json[]> = {};
  let size = 0;
  let n = 0;
  for (const message of messages) {
    const room = `!plain${n % 7}:example.test`;
    const event = {
      event_id: `$plain${n}`,
      room_id: room,
      sender: SENDERS[n % 4],
      type: message.type,
      content: message.content,
      origin_server_ts: 1_700_000_000_000 + n,
      unsigned: { age: 100 + n },
    };
    size += JSON.stringify(event).length + 1;
    (timeline[room] ??= []).push(event);
    n++;
    if (size >= bytes - 600) break;
  }
  return syncBody(timeline, [], 'plain');
}
