/**
 * Answers the page's `POST /search` (Matrix spec "Server Side Search"): the homeserver
 * cannot search encrypted rooms, so their matches come from the account's local index
 * of decrypted messages, with context fetched through `/context` and decrypted; the
 * homeserver's own answer covers every unencrypted event. Both are merged into one
 * response with one `next_batch` (src/search/).
 *
 * Also fills the index: every event an account decrypts is added as it is decrypted.
 */
import { browser } from '../platform/ext.ts';
import type { CryptoAccount } from '../crypto/account.ts';
import { MatrixHttp, seg } from '../crypto/core/http.ts';
import { type IndexedEvent, type SearchRequest, SearchRequestError, parseSearchRequest } from '../search/request.ts';
import { localPage } from '../search/ranking.ts';
import {
  type SearchResult,
  type ServerRoomEvents,
  decodeBatch,
  mergeRoomEvents,
  serverBoundary,
} from '../search/merge.ts';
import type { PageReply, SearchIndexStatus } from '../shared/messages.ts';
import { AccountUnusableError } from './account-errors.ts';
import type { AccountRegistry } from './accounts.ts';
import { decryptServerResults } from '../search/server-results.ts';
import { SearchHistoryIndexer } from './search/search-history.ts';
import type { SearchIndex } from './search/search-index.ts';
import { destroySearchIndex, openSearchIndex } from './search/search-store.ts';
import { storageQuota } from './storage-health.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** The search service of a registry: one per worker, attached before any account opens. */
export function searchServiceFor(registry: AccountRegistry): SearchService {
  let service = services.get(registry);
  if (!service) services.set(registry, (service = new SearchService(registry)));
  return service;
}

const services = new WeakMap<AccountRegistry, SearchService>();

/** Starts the search service before any account opens: every decrypted event goes into the account's index. */
export function registerSearchService(registry: AccountRegistry): void {
  searchServiceFor(registry);
}

/**
 * Keeps each account's search index fed with what the account decrypts, answers the page's
 * `POST /search` from it and the homeserver, and runs history indexing for the popup.
 */
export class SearchService {
  private readonly indexes = new Map<string, Promise<SearchIndex>>();
  private readonly ids = new WeakMap<CryptoAccount, string>();
  private readonly history = new SearchHistoryIndexer(() => browser.runtime.getPlatformInfo());

  constructor(private readonly registry: AccountRegistry) {
    registry.onAccountOpened((id, account) => this.attach(id, account));
    registry.onAccountWiped(async (id) => {
      const index = this.indexes.get(id);
      this.indexes.delete(id);
      (await index?.catch(() => undefined))?.close();
      await destroySearchIndex(id);
    });
    onUiRequest('searchIndexStatus', ({ accountId }) => this.status(String(accountId)));
    onUiRequest('searchIndexHistory', async ({ accountId }) => {
      const id = String(accountId);
      const account = await registry.forAccount(id);
      this.history.start(id, account, await this.indexOf(id));
      return this.status(id);
    });
  }

  async status(accountId: string): Promise<SearchIndexStatus> {
    if (!(await this.registry.views()).some((view) => view.id === accountId))
      throw new Error('Kirjava does not know this account');
    const index = await this.indexOf(accountId);
    return { indexedEvents: await index.count(), history: this.history.status(accountId) };
  }

  /** The index of the account with this id, opened once per worker lifetime. */
  indexOf(accountId: string): Promise<SearchIndex> {
    let index = this.indexes.get(accountId);
    if (!index) {
      index = openSearchIndex(accountId, storageQuota);
      this.indexes.set(accountId, index);
      index.catch(() => this.indexes.delete(accountId));
    }
    return index;
  }

  indexOfAccount(account: CryptoAccount): Promise<SearchIndex> {
    const id = this.ids.get(account);
    if (!id) throw new Error('This account is not open');
    return this.indexOf(id);
  }

  private attach(id: string, account: CryptoAccount): void {
    this.ids.set(account, id);
    const index = this.indexOf(id);
    index.then((opened) => opened.writeWhenQuiet(() => account.idle())).catch(() => undefined);
    account.onDecrypted((roomId, event) => {
      index
        .then((opened) => opened.add(roomId, event))
        .catch((error) => log.warn('search index', { error: errorText(error) }));
    });
    account.onRedacted((roomId, redactedId) => {
      index
        .then((opened) => opened.remove(roomId, redactedId))
        .catch((error) => log.warn('search index', { error: errorText(error) }));
    });
  }

  /** The answer to the page's `POST /search` body (and `next_batch` query parameter). */
  async search(
    baseUrl: string,
    token: string,
    origin: string,
    body: string,
    nextBatch: string | undefined,
  ): Promise<PageReply> {
    let request: SearchRequest;
    let batch: ReturnType<typeof decodeBatch>;
    try {
      request = parseSearchRequest(JSON.parse(body));
      batch = decodeBatch(nextBatch);
    } catch (error) {
      if (error instanceof SearchRequestError)
        return { ok: false, status: 400, errcode: error.errcode, error: error.message };
      return { ok: false, status: 400, errcode: 'M_NOT_JSON', error: 'Content not JSON.' };
    }
    let account: CryptoAccount;
    try {
      account = await this.registry.forToken(baseUrl, token, origin);
    } catch (error) {
      if (!(error instanceof AccountUnusableError)) throw error;
      // No encryption for this session, hence nothing indexed: the homeserver answers alone.
      const path = `/search${nextBatch === undefined ? '' : `?next_batch=${encodeURIComponent(nextBatch)}`}`;
      return { ok: true, body: await new MatrixHttp(baseUrl, token).requestText('POST', path, body) };
    }
    const index = await this.indexOfAccount(account);

    // The server side: unencrypted rooms. Its own token continues it; none means it is done.
    const http = new MatrixHttp(baseUrl, token);
    const askServer = batch.first || batch.server !== undefined;
    const serverAnswer = askServer
      ? http.request<Json>(
          'POST',
          `/search${batch.server === undefined ? '' : `?next_batch=${encodeURIComponent(batch.server)}`}`,
          body,
        )
      : Promise.resolve(undefined);
    // Like Synapse, only rooms the user is in now: a room left keeps its index but is not searched.
    const candidates = Promise.all([
      index.candidates(request),
      http.request<{ joined_rooms?: unknown }>('GET', '/joined_rooms'),
    ]).then(([events, joined]) => {
      const rooms = new Set(Array.isArray(joined.joined_rooms) ? joined.joined_rooms : []);
      return events.filter((event) => rooms.has(event.room_id));
    });
    candidates.catch(() => undefined); // awaited below; not unhandled if the server fails first

    const answer = await serverAnswer;
    const categories = isObject(answer?.search_categories) ? answer.search_categories : undefined;
    const server: ServerRoomEvents | undefined = isObject(categories?.room_events)
      ? { ...(categories.room_events as ServerRoomEvents) }
      : askServer
        ? undefined
        : { count: batch.serverCount };
    if (server?.results)
      server.results = await decryptServerResults(account, Array.isArray(server.results) ? server.results : []);

    // Counted on every page, so `count` stays the same across pages.
    const localGoesOn = batch.first || batch.local !== undefined;
    const page = localPage(await candidates, request, batch.local, serverBoundary(request.orderBy, server));
    const localResults = localGoesOn ? page.results : [];
    const results: SearchResult[] = await Promise.all(
      localResults.map(async ({ rank, event }) => ({
        rank,
        result: event as unknown as Json,
        ...(request.eventContext ? { context: await this.contextOf(account, event, request.eventContext) } : {}),
      })),
    );
    const merged = mergeRoomEvents(
      request,
      { results, count: page.count, next: localGoesOn ? page.next : undefined },
      server,
    );
    return { ok: true, body: JSON.stringify({ search_categories: { room_events: merged } }) };
  }

  /**
   * Spec "EventContext" for a local result: the events around it from `/context`, which
   * Kirjava decrypts (and indexes on the way), with the senders' profiles if asked.
   */
  private async contextOf(
    account: CryptoAccount,
    event: IndexedEvent,
    wanted: NonNullable<SearchRequest['eventContext']>,
  ): Promise<Json> {
    const empty: Json = { events_before: [], events_after: [] };
    if (wanted.beforeLimit === 0 && wanted.afterLimit === 0 && !wanted.includeProfile) return empty;
    // Synapse splits `limit` evenly before and after the event.
    const limit = 2 * Math.max(wanted.beforeLimit, wanted.afterLimit, 1);
    const filter = encodeURIComponent(JSON.stringify({ lazy_load_members: true }));
    let body: Json;
    try {
      body = await account.fetchHistory(
        event.room_id,
        `context/${seg(event.event_id)}?limit=${limit}&filter=${filter}`,
      );
    } catch (error) {
      log.warn('no context for a search result', { error: errorText(error) });
      return empty;
    }
    const withRoom = (e: unknown) => (isObject(e) ? { ...e, room_id: event.room_id } : e);
    const before = (Array.isArray(body.events_before) ? body.events_before : [])
      .slice(0, wanted.beforeLimit)
      .map(withRoom);
    const after = (Array.isArray(body.events_after) ? body.events_after : []).slice(0, wanted.afterLimit).map(withRoom);
    const context: Json = { events_before: before, events_after: after };
    if (typeof body.start === 'string') context.start = body.start;
    if (typeof body.end === 'string') context.end = body.end;
    if (wanted.includeProfile) {
      const senders = new Set([event, ...before, ...after].map((e) => (isObject(e) ? e.sender : undefined)));
      const profiles: Json = {};
      for (const state of Array.isArray(body.state) ? body.state : []) {
        if (!isObject(state) || state.type !== 'm.room.member' || typeof state.state_key !== 'string') continue;
        if (!senders.has(state.state_key) || !isObject(state.content)) continue;
        profiles[state.state_key] = { displayname: state.content.displayname, avatar_url: state.content.avatar_url };
      }
      context.profile_info = profiles;
    }
    return context;
  }
}
