/**
 * The decrypted-event cache: history the client loads again (a reload, scrolling back over
 * the same page) is not decrypted a second time (≈ 300 µs per event).
 *
 * Entries are sealed with AES-256-GCM under a key derived from the account's store
 * key (in the keyring), so the plaintext is encrypted at rest like the crypto store itself, and the
 * backend only ever sees ciphertext. An entry is keyed by room, event id and the tail of
 * the megolm ciphertext (its signature), so an envelope that differs from the one that was
 * decrypted misses the cache and goes to the machine. The shield state is the one of the
 * first decryption; `cached: true` under the encryption info says so. Bounded: the oldest
 * entries go when the backend holds more than `limit` (checked every `limit / 10` writes, so
 * it holds at most 1.1 × `limit`). When the browser refuses writes for lack of space, the
 * cache stops growing (StorageQuota) and decryption goes on without it.
 */
import { DECRYPTED_CACHE_KEY_INFO } from '../../shared/names.ts';
import { openWith, sealWith } from '../keyring/keyring-seal.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';
import { StorageQuota } from '../core/storage-quota.ts';
import { mapInChunks, unref } from '../core/later.ts';
import { FNV1A_START, fnv1a } from '../core/fnv.ts';

/** Where sealed entries live: IndexedDB (Dexie) in the browser, memory in Node tests. */
export interface SealedStore {
  getMany(ids: string[]): Promise<(SealedEntry | undefined)[]>;
  putMany(entries: SealedEntry[]): Promise<void>;
  count(): Promise<number>;
  /** Removes the `n` entries with the smallest `at`. */
  dropOldest(n: number): Promise<void>;
  /** The ids of every entry (read once in a while, see DecryptedEventCache.learnStoredIds). */
  ids(): Promise<string[]>;
}

/** One cached decryption as stored: its id (bound into the seal), and the sealed decryption with its IV. */
export interface SealedEntry {
  id: string;
  iv: Uint8Array;
  data: Uint8Array;
  /** When it was stored (ms); the oldest go first. */
  at: number;
}

/** What is kept of a decrypted event: enough to rebuild it from its envelope. */
export interface CachedDecryption {
  type: string;
  content: Record<string, unknown>;
  info: Record<string, unknown>;
}

export const DEFAULT_CACHE_LIMIT = 20_000;
/**
 * Decryptions also kept in the worker's memory (which holds the keys anyway), most
 * recently used last: a history page the client loads again is answered without a
 * store read or an AES-GCM open per event.
 */
export const RECENT_LIMIT = 5_000;
/** Decryptions waiting for their write beyond which the cache writes without waiting for quiet. */
const WRITE_WITHOUT_WAITING = 2_000;
/** Entries sealed between two looks at whether the account is answering. */
const SEAL_CHUNK = 100;
/** How long after the cache is made it reads which ids its store holds (off a cold start's path). */
const LEARN_IDS_AFTER_MS = 2_000;

/** A 32-bit FNV-1a hash of an id: the in-memory index of stored ids holds these, not the ids. */
function idHash(id: string): number {
  let hash = FNV1A_START;
  for (let i = 0; i < id.length; i++) hash = fnv1a(hash, id.charCodeAt(i));
  return hash >>> 0;
}

/** One account's cache of decrypted events, sealed at rest, with a layer of recent entries in memory. */
export class DecryptedEventCache {
  private pendingGets = new Map<string, ((value: CachedDecryption | undefined) => void)[]>();
  private pendingPuts: { id: string; value: CachedDecryption }[] = [];
  private flushTimer: ReturnType<typeof setTimeout> | undefined;
  private quiet: (() => Promise<unknown>) | undefined;
  private writes = 0;
  private readonly recent = new Map<string, CachedDecryption>();
  /**
   * Hashes of the ids the store holds, once learned (a superset: trimmed entries stay until
   * the next reading): a lookup whose hash is not here is a miss without a store read, which
   * is every event of a sync never seen before. Until learned, every lookup reads the store.
   */
  private stored: Set<number> | undefined;
  private learning: Promise<void> | undefined;
  private learnTimer: ReturnType<typeof setTimeout> | undefined;
  private closed = false;
  /** Hashes written while the ids were being read (the reading may not have seen them). */
  private writtenWhileLearning: number[] | undefined;

  private constructor(
    private readonly key: CryptoKey,
    private readonly store: SealedStore,
    private readonly limit: number,
    private readonly log: Logger,
    private readonly quota: StorageQuota,
  ) {}

  /**
   * A cache whose entries are sealed under a key derived (HKDF-SHA-256) from `secret`;
   * `quota` is the worker's record of full storage (shared with the search index).
   */
  static async create(
    secret: string,
    store: SealedStore,
    limit = DEFAULT_CACHE_LIMIT,
    log: Logger = defaultLog,
    quota = new StorageQuota(log),
  ): Promise<DecryptedEventCache> {
    const subtle = globalThis.crypto.subtle;
    const base = await subtle.importKey('raw', new TextEncoder().encode(secret), 'HKDF', false, ['deriveKey']);
    const key = await subtle.deriveKey(
      {
        name: 'HKDF',
        hash: 'SHA-256',
        salt: new Uint8Array(32),
        info: new TextEncoder().encode(DECRYPTED_CACHE_KEY_INFO),
      },
      base,
      { name: 'AES-GCM', length: 256 },
      false,
      ['encrypt', 'decrypt'],
    );
    const cache = new DecryptedEventCache(key, store, limit, log, quota);
    void cache.learnStoredIds();
    return cache;
  }

  /** The cache id of an encrypted envelope, or undefined when it cannot be cached. */
  static idOf(
    roomId: string,
    envelope: { event_id?: unknown; sender?: unknown; content?: Record<string, unknown> },
  ): string | undefined {
    const ciphertext = envelope.content?.ciphertext;
    if (typeof envelope.event_id !== 'string' || typeof ciphertext !== 'string' || ciphertext.length < 64) {
      return undefined;
    }
    return `${roomId}|${envelope.event_id}|${String(envelope.sender)}|${ciphertext.length}|${ciphertext.slice(-86)}`;
  }

  /**
   * Reads which ids the store holds, `afterMs` from now (default: a while, so that a cold
   * start's first sync does not wait for it), and again after each trim. A call replaces a
   * reading scheduled before it (whose promise then stays pending); one under way is shared.
   */
  learnStoredIds(afterMs = LEARN_IDS_AFTER_MS): Promise<void> {
    if (this.learning) return this.learning;
    if (this.learnTimer !== undefined) clearTimeout(this.learnTimer);
    return new Promise<void>((resolve) => {
      this.learnTimer = setTimeout(() => {
        this.learnTimer = undefined;
        resolve(this.readStoredIds());
      }, afterMs);
      // A later reading must not keep a Node process alive (tests); one asked for now may.
      if (afterMs > 0) unref(this.learnTimer);
    });
  }

  private readStoredIds(): Promise<void> {
    if (this.closed) return Promise.resolve();
    this.writtenWhileLearning = [];
    this.learning = this.store
      .ids()
      .then(
        (ids) => {
          if (this.closed) return;
          this.stored = new Set([...ids.map(idHash), ...(this.writtenWhileLearning ?? [])]);
        },
        (error) => {
          this.stored = undefined;
          this.log.warn('decrypted-event cache: could not list its entries', { error: errorText(error) });
        },
      )
      .finally(() => {
        this.learning = undefined;
        this.writtenWhileLearning = undefined;
      });
    return this.learning;
  }

  /** Looks up one entry; lookups made in the same tick go to the store together. */
  get(id: string): Promise<CachedDecryption | undefined> {
    if (this.closed) return Promise.resolve(undefined);
    const recent = this.recent.get(id);
    if (recent) {
      this.remember(id, recent);
      return Promise.resolve(recent);
    }
    if (this.stored && !this.stored.has(idHash(id))) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const waiting = this.pendingGets.get(id);
      if (waiting) waiting.push(resolve);
      else this.pendingGets.set(id, [resolve]);
      if (this.pendingGets.size === 1 && waiting === undefined) setTimeout(() => void this.flushGets(), 0);
    });
  }

  /** Remembers a decryption; writes are batched. */
  put(id: string, value: CachedDecryption): void {
    if (this.closed) return;
    this.remember(id, value);
    this.pendingPuts.push({ id, value });
    // A long answer (an initial sync) writes as it goes beyond this many, not all at its end.
    if (this.pendingPuts.length >= WRITE_WITHOUT_WAITING) void this.flushPuts(false);
    else this.flushTimer ??= setTimeout(() => void this.flushPuts(), 50);
  }

  /**
   * The account closed (logout, forget): nothing more is read or written, what waited to be
   * written is dropped, so that no write recreates a database the logout deletes.
   */
  close(): void {
    this.closed = true;
    if (this.flushTimer !== undefined) clearTimeout(this.flushTimer);
    if (this.learnTimer !== undefined) clearTimeout(this.learnTimer);
    this.flushTimer = undefined;
    this.learnTimer = undefined;
    this.pendingPuts = [];
    this.recent.clear();
    this.stored = undefined;
  }

  /** Writes what is pending now (tests, and before the worker may stop), quiet or not. */
  async flush(): Promise<void> {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    await this.flushPuts(false);
  }

  /**
   * From now on a batch of writes first waits for `quiet` (the account answers no body the
   * client waits for): the sealing and the IndexedDB write stay off that answer's path, and
   * the decryptions stay readable from memory (`recent`) meanwhile.
   */
  writeWhenQuiet(quiet: () => Promise<unknown>): void {
    this.quiet = quiet;
  }

  private async flushGets(): Promise<void> {
    const batch = this.pendingGets;
    this.pendingGets = new Map();
    const ids = [...batch.keys()];
    let found: (SealedEntry | undefined)[] = [];
    try {
      found = await this.store.getMany(ids);
    } catch (error) {
      this.log.warn('decrypted-event cache unreadable; decrypting instead', { error: errorText(error) });
    }
    await Promise.all(
      ids.map(async (id, i) => {
        const value = found[i] ? await this.open(found[i]!).catch(() => undefined) : undefined;
        if (value) this.remember(id, value);
        for (const resolve of batch.get(id)!) resolve(value);
      }),
    );
  }

  private async flushPuts(waitForQuiet = true): Promise<void> {
    this.flushTimer = undefined;
    if (waitForQuiet) await this.quiet?.().catch(() => undefined);
    if (this.closed) return;
    const batch = this.pendingPuts.splice(0);
    // Storage is full: these stay in memory only (`recent`), until a later try finds space.
    if (batch.length === 0 || this.quota.skipWrites()) return;
    try {
      const now = Date.now();
      // Sealed a few at a time, each time yielding to an answer that came in meanwhile.
      const between = async () => (waitForQuiet ? this.quiet?.() : undefined);
      const sealed = await mapInChunks(batch, SEAL_CHUNK, between, ({ id, value }) => this.seal(id, value, now));
      if (this.closed) return;
      await this.store.putMany(sealed);
      for (const entry of sealed) {
        this.stored?.add(idHash(entry.id));
        this.writtenWhileLearning?.push(idHash(entry.id));
      }
      this.quota.written();
      this.writes += batch.length;
      // Counting costs a transaction: check the bound every so often, not on every write.
      if (this.writes >= Math.max(1, Math.floor(this.limit / 10))) {
        this.writes = 0;
        const excess = (await this.store.count()) - this.limit;
        if (excess > 0) {
          await this.store.dropOldest(excess);
          void this.learnStoredIds(); // the trimmed ids leave the index of stored ids
        }
      }
    } catch (error) {
      if (this.quota.refused(error, 'decrypted-event cache')) return;
      this.log.warn('could not write the decrypted-event cache', { error: errorText(error) });
    }
  }

  private remember(id: string, value: CachedDecryption): void {
    this.recent.delete(id);
    this.recent.set(id, value);
    if (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.keys().next().value as string);
  }

  private async seal(id: string, value: CachedDecryption, at: number): Promise<SealedEntry> {
    // The id is bound as associated data: an entry moved to another id does not open.
    const { iv, data } = await sealWith(
      this.key,
      new TextEncoder().encode(JSON.stringify(value)),
      new TextEncoder().encode(id),
    );
    return { id, iv, data, at };
  }

  private async open(entry: SealedEntry): Promise<CachedDecryption> {
    const plaintext = await openWith(this.key, entry, new TextEncoder().encode(entry.id));
    return JSON.parse(new TextDecoder().decode(plaintext)) as CachedDecryption;
  }
}

/** The in-memory store (Node tests; a browser without IndexedDB). */
export class MemorySealedStore implements SealedStore {
  readonly entries = new Map<string, SealedEntry>();

  async getMany(ids: string[]) {
    return ids.map((id) => this.entries.get(id));
  }

  async putMany(entries: SealedEntry[]) {
    for (const entry of entries) this.entries.set(entry.id, entry);
  }

  async count() {
    return this.entries.size;
  }

  async dropOldest(n: number) {
    const oldest = [...this.entries.values()].sort((a, b) => a.at - b.at).slice(0, n);
    for (const entry of oldest) this.entries.delete(entry.id);
  }

  async ids() {
    return [...this.entries.keys()];
  }
}
