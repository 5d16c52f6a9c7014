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
 *
 * Bounded: at most `limit` events (SEARCH_INDEX_LIMIT) per account, the oldest by event time
 * going first (in IndexedDB a segment of ≈ 1,000 events at a time, so that the bytes on disk
 * stay bounded too: src/background/search/search-database.ts). The bound is checked every
 * `limit / 10` writes (and at the first write after opening): the store holds at most
 * 1.1 × `limit`. When the browser refuses writes for lack of space, the index stops growing
 * (StorageQuota) and decryption goes on without it.
 */
import { openWith, sealWith } from '../../crypto/keyring/keyring-seal.ts';
import { type IndexedEvent, type SearchRequest, indexTermsOf, lookupTermsOf } from '../../search/request.ts';
import { matchesFilter } from '../../search/ranking.ts';
import type { StorageQuota } from '../../crypto/core/storage-quota.ts';
import { mapInChunks } from '../../crypto/core/later.ts';
import { log } from '../log.ts';
import { errorText } from '../../crypto/core/log.ts';

/** One indexed event as stored: the clear fields, its hashed words, and the sealed event. */
export interface IndexRecord {
  id: string;
  room: string;
  sender: string;
  type: string;
  ts: number;
  terms: string[];
  iv: Uint8Array<ArrayBuffer>;
  data: ArrayBuffer;
}

/** An indexed event as read back: its words stay with the store's lookup, not with the record. */
export type StoredIndexRecord = Omit<IndexRecord, 'terms'>;

/** How far history backfill got in one room. */
export interface RoomProgress {
  room: string;
  /** The `/messages` token to continue backwards from; absent before the first page. */
  from?: string;
  done: boolean;
}

/** Where an index's records live: IndexedDB (Dexie) in the worker, memory in Node tests. */
export interface SearchStore {
  /** Adds or replaces these records, in one transaction. */
  putMany(records: IndexRecord[]): Promise<void>;
  get(id: string): Promise<StoredIndexRecord | undefined>;
  delete(id: string): Promise<void>;
  getMany(ids: string[]): Promise<(StoredIndexRecord | undefined)[]>;
  /** The ids of the events that hold any of these hashed words. */
  idsWithAnyTerm(terms: string[]): Promise<string[]>;
  count(): Promise<number>;
  /** Evicts the oldest events (by `ts`, in the store's units of eviction) until at most `limit` remain. */
  keepAtMost(limit: number): Promise<void>;
  roomProgress(roomId: string): Promise<RoomProgress | undefined>;
  saveRoomProgress(progress: RoomProgress): Promise<void>;
  close(): void;
}

/** Events kept per account in the search index (the oldest go beyond it). */
export const SEARCH_INDEX_LIMIT = 50_000;
/** Events sealed and written per transaction. */
const WRITE_BATCH = 500;
/** Events sealed between two looks at whether the account is answering (see writeWhenQuiet). */
const SEAL_CHUNK = 50;
/**
 * Events waiting to be written, at most: writes wait while the account decrypts (see
 * writeWhenQuiet), so an initial sync's events all wait (20,000 in the bench's); beyond this
 * the oldest waiting ones are dropped (search misses them) rather than the worker's memory grow.
 */
const PENDING_LIMIT = 20_000;
/**
 * Hashed words remembered (the most recently used): words repeat, and one HMAC per word of
 * every event was the index's largest cost in the worker (≈ 2.5 s of an initial sync of
 * 20,000 events, BENCHMARKS.md). The worker holds these events in clear anyway.
 */
const HASHED_WORDS = 20_000;

interface PendingAdd {
  stored: IndexedEvent;
  terms: string[];
}

const toBase64 = (bytes: ArrayBuffer | Uint8Array) => btoa(String.fromCharCode(...new Uint8Array(bytes)));

/**
 * One account's search index: adds decrypted events sealed at rest, forgets redacted ones,
 * finds the candidates of a search by their hashed words, and remembers how far history
 * backfill got per room.
 */
export class SearchIndex {
  private writes: Promise<unknown> = Promise.resolve();
  /** Decrypted events waiting for the write job (see add). */
  private readonly pending: PendingAdd[] = [];
  private flushing: Promise<void> | undefined;
  /** Events redacted this worker lifetime, so a decryption that finishes later is not indexed. */
  private readonly redacted = new Set<string>();
  private readonly hashed = new Map<string, Promise<string>>();
  private quiet: (() => Promise<unknown>) | undefined;
  private closed = false;
  /** Searches waiting for the writes: those then do not wait for quiet. */
  private searching = 0;
  private readonly hurry = new Set<() => void>();
  /** Writes since the bound was last checked; starts due, so an index opened over its bound is trimmed. */
  private sinceCheck: number;

  private constructor(
    private readonly store: SearchStore,
    private readonly encKey: CryptoKey,
    private readonly macKey: CryptoKey,
    private readonly quota: StorageQuota,
    private readonly limit: number,
  ) {
    this.sinceCheck = this.checkEvery;
  }

  /**
   * The index over `store`, its events sealed and its words hashed under `keys` (64 bytes:
   * AES-GCM key, then HMAC key; from the keyring), keeping at most `limit` events.
   */
  static async create(
    keys: Uint8Array,
    store: SearchStore,
    quota: StorageQuota,
    limit = SEARCH_INDEX_LIMIT,
  ): Promise<SearchIndex> {
    const encKey = await crypto.subtle.importKey('raw', keys.slice(0, 32), 'AES-GCM', false, ['encrypt', 'decrypt']);
    const macKey = await crypto.subtle.importKey('raw', keys.slice(32), { name: 'HMAC', hash: 'SHA-256' }, false, [
      'sign',
    ]);
    return new SearchIndex(store, encKey, macKey, quota, limit);
  }

  private get checkEvery(): number {
    return Math.max(1, Math.floor(this.limit / 10));
  }

  private hashTerm(term: string): Promise<string> {
    const known = this.hashed.get(term);
    if (known) {
      this.hashed.delete(term);
      this.hashed.set(term, known);
      return known;
    }
    const hash = crypto.subtle
      .sign('HMAC', this.macKey, new TextEncoder().encode(term))
      .then((mac) => toBase64(mac.slice(0, 16)));
    hash.catch(() => this.hashed.delete(term));
    this.hashed.set(term, hash);
    if (this.hashed.size > HASHED_WORDS) this.hashed.delete(this.hashed.keys().next().value as string);
    return hash;
  }

  /**
   * Adds (or replaces) a decrypted event of `roomId`; events with nothing to search are
   * skipped. Writes are serialized, so a burst of decryptions cannot interleave.
   */
  add(roomId: string, event: Record<string, unknown>): Promise<void> {
    const terms = indexTermsOf(event);
    if (
      this.closed ||
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
    this.pending.push({ stored, terms });
    if (this.pending.length > PENDING_LIMIT) {
      const dropped = this.pending.splice(0, this.pending.length - PENDING_LIMIT).length;
      log.warn('search index behind: oldest waiting events not indexed', { dropped });
    }
    // One write job drains everything queued by the time it runs, in batches.
    this.flushing ??= this.writes.then(() => this.writePending());
    const write = this.flushing;
    this.writes = write.catch((error) => log.warn('could not index events', { error: errorText(error) }));
    return write;
  }

  /**
   * From now on each write batch first waits for `quiet` (the account is not decrypting a
   * sync or a page of history): the index's hashing, sealing and IndexedDB writes then stay
   * off the path of the answer the client waits for.
   */
  writeWhenQuiet(quiet: () => Promise<unknown>): void {
    this.quiet = quiet;
  }

  /** Waits for `quiet` (see writeWhenQuiet), unless a search waits for the writes. */
  private async whenQuiet(): Promise<void> {
    if (!this.quiet || this.searching > 0) return;
    let hurried!: () => void;
    const searched = new Promise<void>((resolve) => this.hurry.add((hurried = resolve)));
    await Promise.race([this.quiet().catch(() => undefined), searched]);
    this.hurry.delete(hurried);
  }

  /** Waits for the writes queued so far, without waiting for quiet: a search needs them now. */
  private async flushedNow(): Promise<void> {
    this.searching += 1;
    for (const hurried of this.hurry) hurried();
    try {
      await this.flushed();
    } finally {
      this.searching -= 1;
    }
  }

  /** Seals and writes the waiting events, WRITE_BATCH per transaction. */
  private async writePending(): Promise<void> {
    this.flushing = undefined;
    while (this.pending.length > 0) {
      await this.whenQuiet();
      // No bigger than the bound's check interval, so the store never holds more than 1.1 × limit.
      const batch = this.pending.splice(0, Math.min(WRITE_BATCH, this.checkEvery));
      // Storage is full: the events are not kept (search misses them) until a later try finds space.
      if (this.quota.skipWrites()) continue;
      const kept = batch.filter(({ stored }) => !this.redacted.has(`${stored.room_id}|${stored.event_id}`));
      // Sealed a few at a time, each time yielding to an answer that came in meanwhile.
      const records = await mapInChunks(
        kept,
        SEAL_CHUNK,
        () => this.whenQuiet(),
        ({ stored, terms }) => this.recordOf(stored, terms),
      );
      if (records.length === 0 || this.closed) continue;
      try {
        await this.store.putMany(records);
      } catch (error) {
        // A refusal for lack of space is not the caller's failure: the events just are not kept.
        if (this.quota.refused(error, 'search index')) continue;
        throw error;
      }
      this.quota.written();
      await this.keepBound(records.length);
    }
  }

  private async recordOf(stored: IndexedEvent, terms: string[]): Promise<IndexRecord> {
    const { iv, data } = await sealWith(this.encKey, new TextEncoder().encode(JSON.stringify(stored)));
    return {
      id: stored.event_id,
      room: stored.room_id,
      sender: stored.sender,
      type: stored.type,
      ts: stored.origin_server_ts,
      terms: await Promise.all(terms.map((t) => this.hashTerm(t))),
      iv: iv as Uint8Array<ArrayBuffer>,
      data: data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength) as ArrayBuffer,
    };
  }

  /** Drops the oldest events beyond the bound; checked every `limit / 10` writes, not on each. */
  private async keepBound(written: number): Promise<void> {
    this.sinceCheck += written;
    if (this.sinceCheck < this.checkEvery) return;
    this.sinceCheck = 0;
    await this.store.keepAtMost(this.limit);
  }

  /**
   * Forgets an event redacted in `roomId` (a redaction only counts in the event's own
   * room), and refuses it should its decryption still be on the way.
   */
  remove(roomId: string, eventId: string): Promise<void> {
    this.redacted.add(`${roomId}|${eventId}`);
    if (this.redacted.size > 10_000) this.redacted.delete(this.redacted.values().next().value as string);
    const write = this.writes.then(async () => {
      if (this.closed) return;
      if ((await this.store.get(eventId))?.room === roomId) await this.store.delete(eventId);
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
    await this.flushedNow();
    const lookups = lookupTermsOf(request);
    if (lookups.length === 0) return [];
    let ids: Set<string> | undefined;
    for (const alternatives of lookups) {
      const hashes = await Promise.all(alternatives.map((t) => this.hashTerm(t)));
      const found = new Set(await this.store.idsWithAnyTerm(hashes));
      ids = ids ? new Set([...ids].filter((id) => found.has(id))) : found;
      if (ids.size === 0) return [];
    }
    const records = (await this.store.getMany([...ids!])).filter((r): r is StoredIndexRecord => r !== undefined);
    const cheap = { ...request.filter, contains_url: undefined };
    const passing = records.filter((r) =>
      matchesFilter(
        { event_id: r.id, room_id: r.room, sender: r.sender, type: r.type, origin_server_ts: r.ts, content: {} },
        cheap,
      ),
    );
    return Promise.all(passing.map((r) => this.decrypt(r)));
  }

  private async decrypt(record: StoredIndexRecord): Promise<IndexedEvent> {
    const plain = await openWith(this.encKey, { iv: record.iv, data: new Uint8Array(record.data) });
    return JSON.parse(new TextDecoder().decode(plain)) as IndexedEvent;
  }

  count(): Promise<number> {
    return this.store.count();
  }

  roomProgress(roomId: string): Promise<RoomProgress | undefined> {
    return this.store.roomProgress(roomId);
  }

  async saveRoomProgress(progress: RoomProgress): Promise<void> {
    await this.store.saveRoomProgress(progress);
  }

  /** Nothing more is written: what waits is dropped, so no write recreates a database a logout deletes. */
  close(): void {
    this.closed = true;
    this.pending.length = 0;
    this.hashed.clear();
    this.store.close();
  }
}
