/**
 * Which indexed events match a search and in which order: the request's filter, the words
 * and phrases of its term, a rank by how often the words occur, and keyset paging so a
 * message indexed between two pages does not shift the later ones.
 */
import { type IndexedEvent, type SearchFilter, type SearchRequest, searchableText, wordsOf } from './request.ts';

/** Spec "Filtering": `*` in a type matches any run of characters. */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const regex = new RegExp(
    `^${pattern
      .split('*')
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
      .join('.*')}$`,
  );
  return regex.test(type);
}

/** Whether `event` passes the request's RoomEventFilter. */
export function matchesFilter(event: IndexedEvent, filter: SearchFilter): boolean {
  if (filter.rooms && !filter.rooms.includes(event.room_id)) return false;
  if (filter.not_rooms.includes(event.room_id)) return false;
  if (filter.senders && !filter.senders.includes(event.sender)) return false;
  if (filter.not_senders.includes(event.sender)) return false;
  if (filter.types && !filter.types.some((t) => typeMatches(t, event.type))) return false;
  if (filter.not_types.some((t) => typeMatches(t, event.type))) return false;
  if (filter.contains_url !== undefined) {
    const hasUrl = typeof event.content.url === 'string';
    if (hasUrl !== filter.contains_url) return false;
  }
  return true;
}

const containsRun = (haystack: string[], needle: string[]): boolean => {
  outer: for (let i = 0; i + needle.length <= haystack.length; i++) {
    for (let j = 0; j < needle.length; j++) if (haystack[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
};

/**
 * The rank of a candidate under the query, or undefined when it does not match: every word
 * and phrase present, no excluded word. The rank grows with how often the words occur and
 * shrinks with the text's length (a short message that is all about the word comes first).
 */
export function rankOf(event: IndexedEvent, request: Pick<SearchRequest, 'query' | 'keys'>): number | undefined {
  const text = searchableText(event, request.keys);
  if (text === undefined) return undefined;
  const words = wordsOf(text);
  const { query } = request;
  if (query.words.length === 0) return undefined;
  const present = new Set(words);
  if (!query.words.every((w) => present.has(w))) return undefined;
  if (query.excluded.some((w) => present.has(w))) return undefined;
  if (!query.phrases.every((phrase) => containsRun(words, phrase))) return undefined;
  const wanted = new Set(query.words);
  const hits = words.filter((w) => wanted.has(w)).length;
  return Math.round((hits / Math.sqrt(words.length)) * 1e6) / 1e6;
}

/** A matching event and its rank. */
export interface RankedEvent {
  rank: number;
  event: IndexedEvent;
}

/** Position after the last result a page returned, in the request's order. */
export interface LocalCursor {
  rank: number;
  ts: number;
  id: string;
}

/** Descending order: by rank first when ordering by rank, then newest first, then event id. */
export function compareResults(orderBy: 'rank' | 'recent', a: LocalCursor, b: LocalCursor): number {
  if (orderBy === 'rank' && a.rank !== b.rank) return b.rank - a.rank;
  if (a.ts !== b.ts) return b.ts - a.ts;
  return a.id < b.id ? 1 : a.id > b.id ? -1 : 0;
}

const cursorOf = (r: RankedEvent): LocalCursor => ({
  rank: r.rank,
  ts: r.event.origin_server_ts,
  id: r.event.event_id,
});

/** One page of local results, and where the next one starts. */
export interface LocalPage {
  results: RankedEvent[];
  /** All matches, on every page. */
  count: number;
  /** Where the next page starts; undefined on the last page. */
  next?: LocalCursor;
}

/** Where a search starts: every result sorts after it. */
export const START: LocalCursor = { rank: Number.MAX_VALUE, ts: Number.MAX_SAFE_INTEGER, id: '\uffff' };

/**
 * Ranks and filters the candidates and cuts the page that follows `after`: at most
 * `limit` results, and only those that sort before `until` when given (the last result
 * of the homeserver's page, when the homeserver has more pages: what sorts after it
 * belongs on a later page, next to the homeserver's later results). Keyset paging: a
 * message indexed between two pages does not shift the later pages.
 */
export function localPage(
  candidates: Iterable<IndexedEvent>,
  request: Pick<SearchRequest, 'query' | 'keys' | 'filter' | 'orderBy'>,
  after: LocalCursor = START,
  until?: LocalCursor,
): LocalPage {
  const matches: RankedEvent[] = [];
  const seen = new Set<string>();
  for (const event of candidates) {
    if (seen.has(event.event_id) || !matchesFilter(event, request.filter)) continue;
    const rank = rankOf(event, request);
    if (rank === undefined) continue;
    seen.add(event.event_id);
    matches.push({ rank, event });
  }
  const order = (a: LocalCursor, b: LocalCursor) => compareResults(request.orderBy, a, b);
  matches.sort((a, b) => order(cursorOf(a), cursorOf(b)));
  const rest = matches.filter((m) => order(after, cursorOf(m)) < 0);
  const due = until ? rest.filter((m) => order(cursorOf(m), until) <= 0) : rest;
  const results = due.slice(0, request.filter.limit);
  const next = results.length > 0 ? cursorOf(results[results.length - 1]) : after;
  return { results, count: matches.length, next: rest.length > results.length ? next : undefined };
}
