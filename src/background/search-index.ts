/**
 * One account's full-text index of decrypted messages, in the extension's IndexedDB
 * (dexie). The plaintext is encrypted at rest:
 *
 * - each event is stored as AES-GCM(256) ciphertext of its JSON, with a fresh IV (sealWith);
 * - the words it is found by are stored as HMAC-SHA-256 of `key|word` (truncated to
 *   128 bits), so lookups work without the words themselves being on disk;
 * - what the homeserver already knows stays in clear (event id, room id, sender, type,
 *   timestamp), so filters and ordering need no decryption.
 *
 * Both keys are made per account and kept in the keyring (src/background/keyring.ts),
 * like the crypto store's key: without the vault key (or, when locked, the passphrase)
 * the index files show which events share a (hashed) word, not the words.
 */
import Dexie, { type Table } from 'dexie';
import { secretNames } from '../crypto/keyring/keyring.ts';
import { openWith, sealWith } from '../crypto/keyring/keyring-seal.ts';
import { keyring } from './keyring.ts';
import { type IndexedEvent, type SearchRequest, indexTermsOf, lookupTermsOf } from '../search/request.ts';
import { matchesFilter } from '../search/ranking.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

interface EventRecord {
  id: string;
  room: string;
  sender: string;
  type: string;
  ts: number;
  terms: string[];
  iv: Uint8Array<ArrayBuffer>;
  data: ArrayBuffer;
}

/** How far history backfill got in one room. */
export interface RoomProgress {
  room: string;
  /** The `/messages` token to continue backwards from; absent before the first page. */
  from?: string;
  done: boolean;
}

const toBase64 = (bytes: ArrayBuffer | Uint8Array) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

class SearchDatabase extends Dexie {
  events!: Table<EventRecord, string>;
  rooms!: Table<RoomProgress, string>;

  constructor(name: string) {
    super(name);
    this.version(1).stores({ events: 'id, room, ts, *terms', rooms: 'room' });
  }
}

/**
 * One account's search index: adds decrypted events sealed at rest, forgets redacted ones,
 * finds the candidates of a search by their hashed words, and remembers how far history
 * backfill got per room.
 */
export class SearchIndex {
  private writes: Promise<unknown> = Promise.resolve();
  /** Events redacted this worker lifetime, so a decryption that finishes later is not indexed. */
  private readonly redacted = new Set<string>();

  private constructor(
    private readonly db: SearchDatabase,
    private readonly encKey: CryptoKey,
    private readonly macKey: CryptoKey,
  ) {}

  /** Opens the index of the account `accountId` (see AccountView.id), creating its keys. */
  static async open(accountId: string): Promise<SearchIndex> {
    const keys = await keyring.secret(secretNames.search(accountId), 64);
    const encKey = await crypto.subtle.importKey('raw', keys.slice(0, 32), 'AES-GCM', false, ['encrypt', 'decrypt']);
    const macKey = await crypto.subtle.importKey('raw', keys.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    const db = new SearchDatabase(SearchIndex.databaseName(await sha256Hex(accountId)));
    await db.open();
    return new SearchIndex(db, encKey, macKey);
  }

  /** Deletes the index of `accountId` and its keys (the account logged out). */
  static async destroy(accountId: string): Promise<void> {
    await Dexie.delete(SearchIndex.databaseName(await sha256Hex(accountId)));
    await keyring.forget(secretNames.search(accountId));
  }

  /** One database per account, named by a hash of the account id. */
  private static databaseName(accountIdHash: string): string {
    return `kirjava-search-${accountIdHash.slice(0, 16)}`;
  }

  private async hashTerm(term: string): Promise<string> {
    const mac = await crypto.subtle.sign('HMAC', this.macKey, new TextEncoder().encode(term));
    return toBase64(mac.slice(0, 16));
  }

  /**
   * Adds (or replaces) a decrypted event of `roomId`; events with nothing to search are
   * skipped. Writes are serialized, so a burst of decryptions cannot interleave.
   */
  add(roomId: string, event: Record<string, unknown>): Promise<void> {
    const terms = indexTermsOf(event);
    if (
      terms.length === 0 ||
      typeof event.event_id !== 'string' ||
      typeof event.sender !== 'string' ||
      this.redacted.has(`${roomId}|${event.event_id}`)
    ) {
      return Promise.resolve();
    }
    const stored: IndexedEvent = {
      ...(event as unknown as IndexedEvent),
      room_id: roomId,
      origin_server_ts: typeof event.origin_server_ts === 'number' ? event.origin_server_ts : 0,
    };
    const write = this.writes.then(async () => {
      const { iv, data } = await sealWith(this.encKey, new TextEncoder().encode(JSON.stringify(stored)));
      await this.db.events.put({
        id: stored.event_id,
        room: roomId,
        sender: stored.sender,
        type: stored.type,
        ts: stored.origin_server_ts,
        terms: await Promise.all(terms.map((t) => this.hashTerm(t))),
        iv: iv as Uint8Array<ArrayBuffer>,
        data: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
      });
    });
    this.writes = write.catch((error) => log.warn('could not index an event', { error: errorText(error) }));
    return write;
  }

  /**
   * Forgets an event redacted in `roomId` (a redaction only counts in the event's own
   * room), and refuses it should its decryption still be on the way.
   */
  remove(roomId: string, eventId: string): Promise<void> {
    this.redacted.add(`${roomId}|${eventId}`);
    if (this.redacted.size > 10_000) this.redacted.delete(this.redacted.values().next().value as string);
    const write = this.writes.then(async () => {
      if ((await this.db.events.get(eventId))?.room === roomId) await this.db.events.delete(eventId);
    });
    this.writes = write.catch((error) =>
      log.warn('could not remove an event from the index', { error: errorText(error) }),
    );
    return write;
  }

  /** Waits for the writes queued so far. */
  flushed(): Promise<void> {
    return this.writes.then(() => undefined);
  }

  /**
   * The decrypted events that hold every word of the query under one of its keys and
   * pass the request's filter (checked on the clear fields before anything is decrypted).
   */
  async candidates(request: Pick<SearchRequest, 'query' | 'keys' | 'filter'>): Promise<IndexedEvent[]> {
    await this.flushed();
    const lookups = lookupTermsOf(request);
    if (lookups.length === 0) return [];
    let ids: Set<string> | undefined;
    for (const alternatives of lookups) {
      const hashes = await Promise.all(alternatives.map((t) => this.hashTerm(t)));
      const found = new Set(await this.db.events.where('terms').anyOf(hashes).primaryKeys());
      ids = ids ? new Set([...ids].filter((id) => found.has(id))) : found;
      if (ids.size === 0) return [];
    }
    const records = (await this.db.events.bulkGet([...ids!])).filter((r): r is EventRecord => r !== undefined);
    const cheap = { ...request.filter, contains_url: undefined };
    const passing = records.filter((r) =>
      matchesFilter(
        { event_id: r.id, room_id: r.room, sender: r.sender, type: r.type, origin_server_ts: r.ts, content: {} },
        cheap,
      ),
    );
    return Promise.all(passing.map((r) => this.decrypt(r)));
  }

  private async decrypt(record: EventRecord): Promise<IndexedEvent> {
    const plain = await openWith(this.encKey, { iv: record.iv, data: new Uint8Array(record.data) });
    return JSON.parse(new TextDecoder().decode(plain)) as IndexedEvent;
  }

  count(): Promise<number> {
    return this.db.events.count();
  }

  roomProgress(roomId: string): Promise<RoomProgress | undefined> {
    return this.db.rooms.get(roomId);
  }

  async saveRoomProgress(progress: RoomProgress): Promise<void> {
    await this.db.rooms.put(progress);
  }

  close(): void {
    this.db.close();
  }
}
