/**
 * The pure part of answering `POST /search` (Matrix spec, client-server API, "Server Side
 * Search") for encrypted rooms: what a request asks for, which words a decrypted event is
 * found by, which indexed events match, in which order, and how Kirjava's results and the
 * homeserver's are merged into one answer with one `next_batch`.
 *
 * No storage, no browser APIs: the background's search index supplies candidate events,
 * this module decides. Node unit tests drive it directly.
 */

type Json = Record<string, unknown>;

const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The searchable keys of the spec, and the event type each one lives in. */
export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
export type SearchKey = (typeof SEARCH_KEYS)[number];

const KEY_OF_TYPE: Record<string, SearchKey> = {
  'm.room.message': 'content.body',
  'm.room.name': 'content.name',
  'm.room.topic': 'content.topic',
};

/** A room event as indexed: the decrypted event the client would have seen. */
export interface IndexedEvent {
  event_id: string;
  room_id: string;
  sender: string;
  type: string;
  origin_server_ts: number;
  content: Json;
  [key: string]: unknown;
}

/** Spec "RoomEventFilter", the parts that apply to search. */
export interface SearchFilter {
  limit: number;
  rooms?: string[];
  not_rooms: string[];
  senders?: string[];
  not_senders: string[];
  types?: string[];
  not_types: string[];
  contains_url?: boolean;
}

export interface SearchQuery {
  /** Words every match must contain (after normalization). */
  words: string[];
  /** Quoted phrases every match must contain, as normalized word sequences. */
  phrases: string[][];
  /** Words no match may contain (`-word`). */
  excluded: string[];
}

export interface SearchRequest {
  searchTerm: string;
  query: SearchQuery;
  keys: SearchKey[];
  filter: SearchFilter;
  orderBy: 'rank' | 'recent';
  /** Absent when the request asks for no context. */
  eventContext?: { beforeLimit: number; afterLimit: number; includeProfile: boolean };
  groupBy: ('room_id' | 'sender')[];
  includeState: boolean;
}

/** A request Kirjava cannot answer; the client gets it as a Matrix error. */
export class SearchRequestError extends Error {
  constructor(
    readonly errcode: string,
    message: string,
  ) {
    super(message);
  }
}

/** Synapse's default page size for search results. */
export const DEFAULT_LIMIT = 10;
const MAX_LIMIT = 100;
const DEFAULT_CONTEXT = 5;

/**
 * Words of a text for indexing and querying: Unicode letters and digits, NFKC, lower case,
 * combining marks removed ("Café" and "cafe" are one word). No stemming: the same as
 * Synapse's SQLite full-text search, which matches whole words.
 */
export function wordsOf(text: string): string[] {
  const folded = text.normalize('NFKD').replace(/\p{M}+/gu, '').normalize('NFKC').toLowerCase();
  return folded.match(/[\p{L}\p{N}_]+/gu) ?? [];
}

/** The searchable text of an event under `keys`, or undefined when it has none. */
export function searchableText(event: { type?: unknown; content?: unknown }, keys: readonly SearchKey[] = SEARCH_KEYS): string | undefined {
  const key = typeof event.type === 'string' ? KEY_OF_TYPE[event.type] : undefined;
  if (!key || !keys.includes(key) || !isObject(event.content)) return undefined;
  const value = event.content[key.slice('content.'.length)];
  return typeof value === 'string' ? value : undefined;
}

/**
 * The index terms of an event: `key|word` for every distinct word of its searchable text.
 * Empty for events that are not searched (other types, no text).
 */
export function indexTermsOf(event: { type?: unknown; content?: unknown }): string[] {
  const text = searchableText(event);
  if (text === undefined) return [];
  const key = KEY_OF_TYPE[event.type as string];
  return [...new Set(wordsOf(text))].map((word) => `${key}|${word}`);
}

/** Parses a search term: words, "quoted phrases" and -excluded words, all of them ANDed. */
export function parseSearchTerm(term: string): SearchQuery {
  const words: string[] = [];
  const phrases: string[][] = [];
  const excluded: string[] = [];
  const pattern = /(-?)"([^"]*)"?|(\S+)/g;
  for (const match of term.matchAll(pattern)) {
    if (match[2] !== undefined) {
      const phrase = wordsOf(match[2]);
      if (match[1]) excluded.push(...phrase);
      else if (phrase.length > 1) phrases.push(phrase);
      words.push(...(match[1] ? [] : phrase));
    } else {
      const token = match[3];
      const negated = token.startsWith('-') && token.length > 1;
      const found = wordsOf(negated ? token.slice(1) : token);
      (negated ? excluded : words).push(...found);
    }
  }
  return { words: [...new Set(words)], phrases, excluded: [...new Set(excluded)] };
}

const strings = (value: unknown, field: string): string[] | undefined => {
  if (value === undefined || value === null) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) {
    throw new SearchRequestError('M_BAD_JSON', `filter.${field} must be a list of strings`);
  }
  return value;
};

const count = (value: unknown, fallback: number, field: string, max = Number.MAX_SAFE_INTEGER): number => {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new SearchRequestError('M_BAD_JSON', `${field} must be a non-negative integer`);
  }
  return Math.min(value, max);
};

/** Reads the `room_events` category of a `POST /search` body; throws SearchRequestError. */
export function parseSearchRequest(body: unknown): SearchRequest {
  const categories = isObject(body) ? body.search_categories : undefined;
  const roomEvents = isObject(categories) ? categories.room_events : undefined;
  if (!isObject(roomEvents)) {
    throw new SearchRequestError('M_BAD_JSON', 'search_categories.room_events is required');
  }
  if (typeof roomEvents.search_term !== 'string') {
    throw new SearchRequestError('M_MISSING_PARAM', 'search_term must be a string');
  }
  const keys = roomEvents.keys === undefined ? [...SEARCH_KEYS] : roomEvents.keys;
  if (!Array.isArray(keys) || !keys.every((k): k is SearchKey => (SEARCH_KEYS as readonly unknown[]).includes(k))) {
    throw new SearchRequestError('M_BAD_JSON', `keys may only contain ${SEARCH_KEYS.join(', ')}`);
  }
  const rawFilter = roomEvents.filter ?? {};
  if (!isObject(rawFilter)) throw new SearchRequestError('M_BAD_JSON', 'filter must be an object');
  if (rawFilter.contains_url !== undefined && typeof rawFilter.contains_url !== 'boolean') {
    throw new SearchRequestError('M_BAD_JSON', 'filter.contains_url must be a boolean');
  }
  const filter: SearchFilter = {
    limit: Math.max(1, count(rawFilter.limit, DEFAULT_LIMIT, 'filter.limit', MAX_LIMIT)),
    rooms: strings(rawFilter.rooms, 'rooms'),
    not_rooms: strings(rawFilter.not_rooms, 'not_rooms') ?? [],
    senders: strings(rawFilter.senders, 'senders'),
    not_senders: strings(rawFilter.not_senders, 'not_senders') ?? [],
    types: strings(rawFilter.types, 'types'),
    not_types: strings(rawFilter.not_types, 'not_types') ?? [],
    contains_url: rawFilter.contains_url as boolean | undefined,
  };
  const orderBy = roomEvents.order_by ?? 'rank';
  if (orderBy !== 'rank' && orderBy !== 'recent') {
    throw new SearchRequestError('M_BAD_JSON', 'order_by must be "rank" or "recent"');
  }
  let eventContext: SearchRequest['eventContext'];
  if (isObject(roomEvents.event_context)) {
    const c = roomEvents.event_context;
    eventContext = {
      beforeLimit: count(c.before_limit, DEFAULT_CONTEXT, 'event_context.before_limit', 100),
      afterLimit: count(c.after_limit, DEFAULT_CONTEXT, 'event_context.after_limit', 100),
      includeProfile: c.include_profile === true,
    };
  }
  const groupings = isObject(roomEvents.groupings) ? roomEvents.groupings.group_by : undefined;
  const groupBy = (Array.isArray(groupings) ? groupings : [])
    .map((g) => (isObject(g) ? g.key : undefined))
    .filter((k): k is 'room_id' | 'sender' => k === 'room_id' || k === 'sender');
  return {
    searchTerm: roomEvents.search_term,
    query: parseSearchTerm(roomEvents.search_term),
    keys: keys as SearchKey[],
    filter,
    orderBy,
    eventContext,
    groupBy: [...new Set(groupBy)],
    includeState: roomEvents.include_state === true,
  };
}

/**
 * The index terms a query must find (one lookup per word): candidates are the events that
 * hold every one of them under at least one of the keys.
 */
export function lookupTermsOf(request: Pick<SearchRequest, 'query' | 'keys'>): string[][] {
  return request.query.words.map((word) => request.keys.map((key) => `${key}|${word}`));
}

/** Spec "Filtering": `*` in a type matches any run of characters. */
function typeMatches(pattern: string, type: string): boolean {
  if (!pattern.includes('*')) return pattern === type;
  const regex = new RegExp(`^${pattern.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
  return regex.test(type);
}

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

const cursorOf = (r: RankedEvent): LocalCursor => ({ rank: r.rank, ts: r.event.origin_server_ts, id: r.event.event_id });

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

/**
 * The last result of the homeserver's page in the request's order, when the homeserver
 * has further pages; undefined when local results need not wait for it.
 */
export function serverBoundary(orderBy: 'rank' | 'recent', server: ServerRoomEvents | undefined): LocalCursor | undefined {
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
  btoa(String.fromCharCode(...new TextEncoder().encode(text))).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
const fromBase64url = (text: string) =>
  new TextDecoder().decode(Uint8Array.from(atob(text.replace(/-/g, '+').replace(/_/g, '/')), (c) => c.charCodeAt(0)));

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
  const results = [...localResults, ...serverResults].sort((a, b) => compareResults(request.orderBy, resultKey(a), resultKey(b)));
  const highlights = [...new Set([...request.query.words, ...(server?.highlights ?? [])])];
  const answer: Json = {
    results,
    count: (local?.count ?? 0) + (typeof server?.count === 'number' ? server.count : 0),
    highlights,
  };
  const batch: MergedBatch = { server: server?.next_batch, local: local?.next };
  if (typeof server?.count === 'number') batch.serverCount = server.count;
  if (batch.server !== undefined || batch.local !== undefined) answer.next_batch = encodeBatch(batch);
  if (request.groupBy.length > 0) answer.groups = groupsOf(request.groupBy, results, answer.next_batch as string | undefined);
  if (server?.state) answer.state = server.state;
  return answer;
}

function groupsOf(
  groupBy: ('room_id' | 'sender')[],
  results: SearchResult[],
  nextBatch: string | undefined,
): Json {
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
