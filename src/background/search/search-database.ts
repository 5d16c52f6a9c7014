/**
 * The search index's IndexedDB layout (Dexie), built so that its bytes on disk stay bounded
 * while the oldest events keep being evicted.
 *
 * Events are written in segments of about `segmentSize` (the write batches that arrive
 * together: a sync, a page of history). A segment's hashed words are not a multi-entry index
 * of the events but rows of their own keyed `[segment, word, batch]`, each holding the ids of
 * the batch's events with that word. Evicting a segment is then one range delete of adjacent
 * keys, where a multi-entry index scattered one deletion per word of every event over the
 * whole key space; Chromium's IndexedDB did not give that space back (BENCHMARKS.md, "Storage
 * on disk"). The segment whose newest event is the oldest goes first; a lookup reads each
 * live segment's rows of the word (≈ 50 segments at the default bound).
 *
 * An event's words never change (the same event id decrypts to the same content), so a word
 * row that still names an event re-added to a newer segment is harmless, and one that names
 * a redacted (deleted) event finds no record.
 */
import Dexie, { type IndexableTypeArrayReadonly, type Table, type Transaction } from 'dexie';
import type { IndexRecord, RoomProgress, SearchStore, StoredIndexRecord } from './search-index.ts';

/** Events per segment: the unit of eviction, and one lookup per word per segment. */
export const SEGMENT_SIZE = 1_000;

/** A segment as the `segments` table holds it. */
interface Segment {
  seg: number;
  /** Events written into it (an event written again, or redacted, is still counted: an upper bound). */
  count: number;
  /** The newest event time in it: the segment with the smallest goes first. */
  maxTs: number;
  /** Write batches in it so far: the next batch's word rows are keyed by this. */
  batches: number;
}

type PostingKey = [number, string, number];
type EventRow = StoredIndexRecord & { seg: number };

class SearchDatabase extends Dexie {
  events!: Table<EventRow, string>;
  postings!: Table<string[], PostingKey>;
  segments!: Table<Segment, number>;
  rooms!: Table<RoomProgress, string>;

  constructor(name: string, segmentSize: number) {
    super(name);
    // Version 1 had the words as a multi-entry index of the events.
    this.version(1).stores({ events: 'id, room, ts, *terms', rooms: 'room' });
    this.version(2)
      .stores({ events: 'id, ts, seg', postings: '', segments: 'seg', rooms: 'room' })
      .upgrade((tx) => moveWordsIntoSegments(tx, segmentSize));
  }
}

/** Writes `records` as one batch of segment `segment` (in the caller's transaction); returns the segment after it. */
async function writeBatch(
  tables: Pick<SearchDatabase, 'events' | 'postings' | 'segments'>,
  segment: Segment,
  records: IndexRecord[],
): Promise<Segment> {
  const ids = new Map<string, string[]>();
  for (const record of records) {
    for (const term of new Set(record.terms)) {
      const list = ids.get(term);
      if (list) list.push(record.id);
      else ids.set(term, [record.id]);
    }
  }
  await tables.events.bulkPut(records.map(({ terms: _, ...stored }) => ({ ...stored, seg: segment.seg })));
  await tables.postings.bulkPut(
    [...ids.values()],
    // Dexie's types know no compound outbound keys; IndexedDB takes arrays as keys.
    [...ids.keys()].map((term): PostingKey => [
      segment.seg,
      term,
      segment.batches,
    ]) as unknown as IndexableTypeArrayReadonly,
  );
  const next = {
    seg: segment.seg,
    count: segment.count + records.length,
    maxTs: records.reduce((max, r) => Math.max(max, r.ts), segment.maxTs),
    batches: segment.batches + 1,
  };
  await tables.segments.put(next);
  return next;
}

const emptySegment = (seg: number): Segment => ({ seg, count: 0, maxTs: -Infinity, batches: 0 });

/** Version 1 → 2: the events in time order, `segmentSize` per segment, their words moved into word rows. */
async function moveWordsIntoSegments(tx: Transaction, segmentSize: number): Promise<void> {
  const tables = {
    events: tx.table('events'),
    postings: tx.table('postings'),
    segments: tx.table('segments'),
  } as Pick<SearchDatabase, 'events' | 'postings' | 'segments'>;
  const ids = (await tables.events.orderBy('ts').primaryKeys()) as string[];
  for (let start = 0, seg = 0; start < ids.length; start += segmentSize, seg++) {
    const old = (await tables.events.bulkGet(ids.slice(start, start + segmentSize))) as unknown as (
      IndexRecord | undefined
    )[];
    await writeBatch(
      tables,
      emptySegment(seg),
      old.filter((r): r is IndexRecord => r !== undefined).map((r) => ({ ...r, terms: r.terms ?? [] })),
    );
  }
}

/** The search index's SearchStore in IndexedDB, in segments (see the module's comment). */
export class SegmentedSearchStore implements SearchStore {
  private constructor(
    private readonly db: SearchDatabase,
    private readonly segmentSize: number,
  ) {}

  /** Opens (creating or upgrading) the database `name`. */
  static async open(name: string, segmentSize = SEGMENT_SIZE): Promise<SegmentedSearchStore> {
    const db = new SearchDatabase(name, segmentSize);
    await db.open();
    return new SegmentedSearchStore(db, segmentSize);
  }

  /** Adds the records as one batch of the newest segment, starting a new one when it is full. */
  async putMany(records: IndexRecord[]): Promise<void> {
    const { events, postings, segments } = this.db;
    await this.db.transaction('rw', events, postings, segments, async () => {
      const last = await segments.orderBy('seg').last();
      const open = last && last.count < this.segmentSize ? last : emptySegment((last?.seg ?? -1) + 1);
      await writeBatch(this.db, open, records);
    });
  }

  get(id: string): Promise<StoredIndexRecord | undefined> {
    return this.db.events.get(id);
  }

  delete(id: string): Promise<void> {
    return this.db.events.delete(id);
  }

  getMany(ids: string[]): Promise<(StoredIndexRecord | undefined)[]> {
    return this.db.events.bulkGet(ids);
  }

  async idsWithAnyTerm(terms: string[]): Promise<string[]> {
    const { postings, segments } = this.db;
    return this.db.transaction('r', postings, segments, async () => {
      const live = await segments.toCollection().primaryKeys();
      const rows = await Promise.all(
        live.flatMap((seg) =>
          terms.map((term) => postings.where(':id').between([seg, term], [seg, term, []]).toArray()),
        ),
      );
      return [...new Set(rows.flat(2))];
    });
  }

  count(): Promise<number> {
    return this.db.events.count();
  }

  /** Drops whole segments, the one whose newest event is oldest first, until at most `limit` events are counted. */
  async keepAtMost(limit: number): Promise<void> {
    const { events, postings, segments } = this.db;
    await this.db.transaction('rw', events, postings, segments, async () => {
      const all = await segments.toArray();
      let counted = all.reduce((sum, s) => sum + s.count, 0);
      all.sort((a, b) => a.maxTs - b.maxTs || a.seg - b.seg);
      for (const segment of all) {
        if (counted <= limit) break;
        await events.bulkDelete(await events.where('seg').equals(segment.seg).primaryKeys());
        await postings.where(':id').between([segment.seg], [segment.seg, []]).delete();
        await segments.delete(segment.seg);
        counted -= segment.count;
      }
    });
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
