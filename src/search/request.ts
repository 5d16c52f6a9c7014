/**
 * What a `POST /search` (Matrix spec, client-server API, "Server Side Search") asks of
 * encrypted rooms: the request's `room_events` category read and checked, its search term
 * split into words, phrases and excluded words, and the words a decrypted event is found by
 * (the same normalization on both sides, so a query finds what the index holds).
 *
 * No storage, no browser APIs: the background's search index supplies candidate events,
 * src/search/ranking.ts decides which match and src/search/merge.ts builds the answer.
 */

/** A JSON object, as parsed from a request body or an event. */
export type Json = Record<string, unknown>;

export const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The searchable keys of the spec, and the event type each one lives in. */
export const SEARCH_KEYS = ['content.body', 'content.name', 'content.topic'] as const;
/** One of the keys a search may look in. */
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

/** The search term split up and normalized like the index's words. */
export interface SearchQuery {
  /** Words every match must contain (after normalization). */
  words: string[];
  /** Quoted phrases every match must contain, as normalized word sequences. */
  phrases: string[][];
  /** Words no match may contain (`-word`). */
  excluded: string[];
}

/** A `room_events` search request, read and checked, with defaults filled in. */
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
  const folded = text
    .normalize('NFKD')
    .replace(/\p{M}+/gu, '')
    .normalize('NFKC')
    .toLowerCase();
  return folded.match(/[\p{L}\p{N}_]+/gu) ?? [];
}

/** The searchable text of an event under `keys`, or undefined when it has none. */
export function searchableText(
  event: { type?: unknown; content?: unknown },
  keys: readonly SearchKey[] = SEARCH_KEYS,
): string | undefined {
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
