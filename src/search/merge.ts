/**
 * One answer out of two: Kirjava's page of local results and the homeserver's page, merged
 * in the request's order with one `next_batch` that continues both sides, the counts summed
 * and the results grouped as the request asks.
 */
import { compareResults, type LocalCursor } from './ranking.ts';
import { type Json, type SearchRequest, SearchRequestError, isObject } from './request.ts';

/**
 * The last result of the homeserver's page in the request's order, when the homeserver
 * has further pages; undefined when local results need not wait for it.
 */
export function serverBoundary(
  orderBy: 'rank' | 'recent',
  server: ServerRoomEvents | undefined,
): LocalCursor | undefined {
  if (!server?.next_batch) return undefined;
  const keys = (server.results ?? []).filter((r) => isObject(r) && isObject(r.result)).map(resultKey);
  if (keys.length === 0) return undefined;
  return keys.sort((a, b) => compareResults(orderBy, a, b))[keys.length - 1];
}

const resultKey = (r: SearchResult): LocalCursor => ({
  rank: typeof r.rank === 'number' ? r.rank : 0,
  ts: typeof r.result.origin_server_ts === 'number' ? r.result.origin_server_ts : 0,
  id: String(r.result.event_id),
});

/**
 * Kirjava's `next_batch`: where each side (Kirjava's index, the homeserver) continues.
 * A side that is absent has no more results.
 */
export interface MergedBatch {
  server?: string;
  local?: LocalCursor;
  /** The homeserver's `count`, so later pages that no longer ask it still sum it in. */
  serverCount?: number;
}

const BATCH_PREFIX = 'kirjava1.';

const base64url = (text: string) =>
  btoa(String.fromCharCode(...new TextEncoder().encode(text)))
    .replace(/\+/g, '-')
    .replace(/\//g, '_')
    .replace(/=+$/, '');
const fromBase64url = (text: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)));

/**
 * The `next_batch` token the client is given for `batch`: prefixed, so a token passed back
 * is known to be Kirjava's.
 */
export function encodeBatch(batch: MergedBatch): string {
  return BATCH_PREFIX + base64url(JSON.stringify(batch));
}

/**
 * The two positions of a `next_batch` the client passed back. A token that is not
 * Kirjava's is the homeserver's own (a page answered before Kirjava was there): only the
 * server continues.
 */
export function decodeBatch(token: string | undefined): MergedBatch & { first: boolean } {
  if (token === undefined) return { first: true };
  if (!token.startsWith(BATCH_PREFIX)) return { server: token, first: false };
  try {
    const parsed = JSON.parse(fromBase64url(token.slice(BATCH_PREFIX.length))) as unknown;
    if (!isObject(parsed)) throw new Error('not an object');
    const server = typeof parsed.server === 'string' ? parsed.server : undefined;
    const l = parsed.local;
    const local =
      isObject(l) && typeof l.rank === 'number' && typeof l.ts === 'number' && typeof l.id === 'string'
        ? { rank: l.rank, ts: l.ts, id: l.id }
        : undefined;
    const serverCount = typeof parsed.serverCount === 'number' ? parsed.serverCount : undefined;
    return { server, local, serverCount, first: false };
  } catch {
    throw new SearchRequestError('M_INVALID_PARAM', 'Invalid next_batch');
  }
}

/** One result of a `room_events` answer (spec "Result"). */
export interface SearchResult {
  rank: number;
  result: Json;
  context?: Json;
}

/** The `room_events` part of the homeserver's answer, as far as merging needs it. */
export interface ServerRoomEvents {
  results?: SearchResult[];
  count?: number;
  highlights?: string[];
  next_batch?: string;
  groups?: Record<string, Record<string, { results?: string[]; order?: number; next_batch?: string }>>;
  state?: Record<string, unknown[]>;
}

/**
 * One page of the answer: the page of each side, merged in the request's order (a page
 * holds up to `limit` results from each side, see localPage); `count` is the sum;
 * `next_batch` continues both sides; groups list the page's results per room or sender.
 */
export function mergeRoomEvents(
  request: Pick<SearchRequest, 'orderBy' | 'groupBy' | 'query'>,
  local: { results: SearchResult[]; count: number; next?: LocalCursor } | undefined,
  server: ServerRoomEvents | undefined,
): Json {
  const localResults = local?.results ?? [];
  const localIds = new Set(localResults.map((r) => r.result.event_id));
  // An event the index has decrypted wins over whatever the homeserver says it is.
  const serverResults = (server?.results ?? []).filter(
    (r) => isObject(r) && isObject(r.result) && !localIds.has(r.result.event_id),
  );
  const results = [...localResults, ...serverResults].sort((a, b) =>
    compareResults(request.orderBy, resultKey(a), resultKey(b)),
  );
  const highlights = [...new Set([...request.query.words, ...(server?.highlights ?? [])])];
  const answer: Json = {
    results,
    count: (local?.count ?? 0) + (typeof server?.count === 'number' ? server.count : 0),
    highlights,
  };
  const batch: MergedBatch = { server: server?.next_batch, local: local?.next };
  if (typeof server?.count === 'number') batch.serverCount = server.count;
  if (batch.server !== undefined || batch.local !== undefined) answer.next_batch = encodeBatch(batch);
  if (request.groupBy.length > 0) {
    answer.groups = groupsOf(request.groupBy, results, answer.next_batch as string | undefined);
  }
  if (server?.state) answer.state = server.state;
  return answer;
}

function groupsOf(groupBy: ('room_id' | 'sender')[], results: SearchResult[], nextBatch: string | undefined): Json {
  const groups: Json = {};
  for (const by of groupBy) {
    const byValue: Record<string, { results: string[]; order: number; next_batch?: string }> = {};
    for (const r of results) {
      const value = r.result[by];
      if (typeof value !== 'string') continue;
      const group = (byValue[value] ??= { results: [], order: Object.keys(byValue).length + 1 });
      group.results.push(String(r.result.event_id));
      if (nextBatch) group.next_batch = nextBatch;
    }
    groups[by] = byValue;
  }
  return groups;
}
