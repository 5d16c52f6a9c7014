/**
 * The search logic on its own: what a request asks for, which events match, in which order,
 * page by page, and how Kirjava's results and the homeserver's are merged.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  type IndexedEvent,
  SearchRequestError,
  indexTermsOf,
  lookupTermsOf,
  parseSearchRequest,
  parseSearchTerm,
  wordsOf,
} from '../../src/search/request.ts';
import { localPage, matchesFilter, rankOf } from '../../src/search/ranking.ts';
import { decodeBatch, encodeBatch, mergeRoomEvents, serverBoundary } from '../../src/search/merge.ts';

const ROOM = '!secret:example.org';
const OTHER = '!other:example.org';

function message(id: string, body: string, ts: number, extra: Partial<IndexedEvent> = {}): IndexedEvent {
  return {
    event_id: id,
    room_id: ROOM,
    sender: '@bob:example.org',
    type: 'm.room.message',
    origin_server_ts: ts,
    content: { msgtype: 'm.text', body },
    ...extra,
  };
}

const request = (term: string, roomEvents: Record<string, unknown> = {}) =>
  parseSearchRequest({ search_categories: { room_events: { search_term: term, ...roomEvents } } });

describe('Words', () => {
  it('folds case, accents and punctuation the same way for messages and queries', () => {
    assert.deepEqual(wordsOf('Café, CAFE! naïve—Straße 42'), ['cafe', 'cafe', 'naive', 'straße', '42']);
    assert.deepEqual(wordsOf('Ｍａｒｍａｌａｄｅ'), ['marmalade']); // full-width letters (NFKC)
    assert.deepEqual(wordsOf('日本語 テキスト'), ['日本語', 'テキスト']);
  });

  it('indexes body, name and topic under their key, each word once', () => {
    assert.deepEqual(indexTermsOf(message('$1', 'Jam jam JAM toast', 1)), ['content.body|jam', 'content.body|toast']);
    assert.deepEqual(indexTermsOf({ type: 'm.room.name', content: { name: 'Kitchen' } }), ['content.name|kitchen']);
    assert.deepEqual(indexTermsOf({ type: 'm.room.topic', content: { topic: 'Recipes' } }), ['content.topic|recipes']);
    assert.deepEqual(indexTermsOf({ type: 'm.reaction', content: { body: 'nope' } }), []);
    assert.deepEqual(indexTermsOf({ type: 'm.room.message', content: { body: 42 } }), []);
  });

  it('parses words, quoted phrases and excluded words', () => {
    assert.deepEqual(parseSearchTerm('Green "apple pie" -banana'), {
      words: ['green', 'apple', 'pie'],
      phrases: [['apple', 'pie']],
      excluded: ['banana'],
    });
    assert.deepEqual(parseSearchTerm('  '), { words: [], phrases: [], excluded: [] });
  });
});

describe('Requests', () => {
  it('reads the spec defaults: all keys, rank order, limit 10, no context', () => {
    const parsed = request('jam');
    assert.deepEqual(parsed.keys, ['content.body', 'content.name', 'content.topic']);
    assert.equal(parsed.orderBy, 'rank');
    assert.equal(parsed.filter.limit, 10);
    assert.equal(parsed.eventContext, undefined);
    assert.deepEqual(request('jam', { event_context: {} }).eventContext, {
      beforeLimit: 5,
      afterLimit: 5,
      includeProfile: false,
    });
  });

  it('refuses what the spec does not allow, with a Matrix error code', () => {
    const refused = (body: unknown, errcode: string) =>
      assert.throws(
        () => parseSearchRequest(body),
        (e: unknown) => e instanceof SearchRequestError && e.errcode === errcode,
      );
    refused({}, 'M_BAD_JSON');
    refused({ search_categories: { room_events: {} } }, 'M_MISSING_PARAM');
    refused({ search_categories: { room_events: { search_term: 'x', keys: ['content.sender'] } } }, 'M_BAD_JSON');
    refused({ search_categories: { room_events: { search_term: 'x', order_by: 'oldest' } } }, 'M_BAD_JSON');
    refused(
      { search_categories: { room_events: { search_term: 'x', filter: { rooms: 'not a list' } } } },
      'M_BAD_JSON',
    );
    refused({ search_categories: { room_events: { search_term: 'x', filter: { limit: -1 } } } }, 'M_BAD_JSON');
  });

  it('looks each word up under every requested key', () => {
    assert.deepEqual(lookupTermsOf(request('jam toast', { keys: ['content.body', 'content.topic'] })), [
      ['content.body|jam', 'content.topic|jam'],
      ['content.body|toast', 'content.topic|toast'],
    ]);
  });
});

describe('Matching', () => {
  it('needs every word, the phrase in order, and none of the excluded words', () => {
    const event = message('$1', 'I like apple pie with cream', 1);
    assert.ok(rankOf(event, request('apple cream')) !== undefined);
    assert.equal(rankOf(event, request('apple banana')), undefined);
    assert.ok(rankOf(event, request('"apple pie"')) !== undefined);
    assert.equal(rankOf(event, request('"pie apple"')), undefined);
    assert.equal(rankOf(event, request('apple -cream')), undefined);
    assert.equal(rankOf(event, request('appl')), undefined, 'whole words, like Synapse on SQLite');
    assert.equal(rankOf(event, request('apple', { keys: ['content.topic'] })), undefined);
  });

  it('ranks a short message about the word above a long one that mentions it', () => {
    const short = rankOf(message('$1', 'Marmalade!', 1), request('marmalade'))!;
    const long = rankOf(
      message('$2', 'On the way home I bought bread, milk, and some marmalade for later', 1),
      request('marmalade'),
    )!;
    assert.ok(short > long);
  });

  it('honours the filter: rooms, senders, types with wildcards, contains_url', () => {
    const filter = (f: Record<string, unknown>) => request('x', { filter: f }).filter;
    const image = message('$1', 'cat.png', 1, { content: { msgtype: 'm.image', body: 'cat.png', url: 'mxc://a/b' } });
    assert.ok(matchesFilter(image, filter({ rooms: [ROOM] })));
    assert.ok(!matchesFilter(image, filter({ rooms: [OTHER] })));
    assert.ok(!matchesFilter(image, filter({ not_rooms: [ROOM] })));
    assert.ok(!matchesFilter(image, filter({ senders: ['@alice:example.org'] })));
    assert.ok(!matchesFilter(image, filter({ not_senders: ['@bob:example.org'] })));
    assert.ok(matchesFilter(image, filter({ types: ['m.room.*'] })));
    assert.ok(!matchesFilter(image, filter({ not_types: ['m.*'] })));
    assert.ok(matchesFilter(image, filter({ contains_url: true })));
    assert.ok(!matchesFilter(image, filter({ contains_url: false })));
  });
});

describe('Pages', () => {
  const events = Array.from({ length: 25 }, (_, i) =>
    message(`$${String(i).padStart(2, '0')}`, `jar ${i} of jam`, 1000 + i),
  );

  it('pages by recency without gaps or repeats, and counts every match on every page', () => {
    const req = request('jam', { order_by: 'recent', filter: { limit: 10 } });
    const first = localPage(events, req);
    const second = localPage(events, req, first.next);
    const third = localPage(events, req, second.next);
    assert.deepEqual([first.count, second.count, third.count], [25, 25, 25]);
    assert.deepEqual([first.results.length, second.results.length, third.results.length], [10, 10, 5]);
    assert.equal(third.next, undefined);
    const ids = [...first.results, ...second.results, ...third.results].map((r) => r.event.event_id);
    assert.deepEqual(ids, events.map((e) => e.event_id).reverse());
  });

  it('a message indexed between two pages does not shift the later ones', () => {
    const req = request('jam', { order_by: 'recent', filter: { limit: 10 } });
    const first = localPage(events, req);
    const newer = message('$new', 'fresh jam', 9999);
    const second = localPage([...events, newer], req, first.next);
    assert.deepEqual(
      second.results.map((r) => r.event.event_id),
      events
        .slice(5, 15)
        .map((e) => e.event_id)
        .reverse(),
    );
  });

  it('property: for any events, order and page size, the pages are the sorted matches, each once', () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.record({
            words: fc.array(fc.constantFrom('jam', 'tea', 'toast'), { maxLength: 6 }),
            ts: fc.integer({ min: 0, max: 20 }),
          }),
          { maxLength: 40 },
        ),
        fc.integer({ min: 1, max: 7 }),
        fc.constantFrom('rank', 'recent'),
        (specs, limit, orderBy) => {
          const all = specs.map((s, i) => message(`$e${i}`, s.words.join(' '), s.ts));
          const req = request('jam', { order_by: orderBy, filter: { limit } });
          const expected = localPage(all, { ...req, filter: { ...req.filter, limit: 1000 } }).results.map(
            (r) => r.event.event_id,
          );
          const seen: string[] = [];
          let page = localPage(all, req);
          for (let n = 0; n < 100; n++) {
            assert.ok(page.results.length <= limit);
            seen.push(...page.results.map((r) => r.event.event_id));
            if (!page.next) break;
            page = localPage(all, req, page.next);
          }
          assert.deepEqual(seen, expected);
          assert.equal(expected.length, all.filter((e) => wordsOf(String(e.content.body)).includes('jam')).length);
        },
      ),
    );
  });

  it('next_batch carries both sides and survives the round trip; a server token continues the server only', () => {
    const token = encodeBatch({ server: 's123_abc', local: { rank: 0.5, ts: 7, id: '$x' }, serverCount: 4 });
    assert.deepEqual(decodeBatch(token), {
      server: 's123_abc',
      local: { rank: 0.5, ts: 7, id: '$x' },
      serverCount: 4,
      first: false,
    });
    assert.deepEqual(decodeBatch('s99'), { server: 's99', first: false });
    assert.deepEqual(decodeBatch(undefined), { first: true });
    assert.throws(() => decodeBatch('kirjava1.!!!'), SearchRequestError);
  });
});

describe('Merging with the homeserver', () => {
  const req = request('jam', { order_by: 'recent', groupings: { group_by: [{ key: 'room_id' }] } });
  const local = (id: string, ts: number) => ({ rank: 1, result: { ...message(id, 'jam', ts) } });
  const server = (id: string, ts: number) => ({ rank: 0.1, result: { ...message(id, 'jam', ts), room_id: OTHER } });

  it('sums counts, interleaves by order, unions highlights and continues both sides', () => {
    const merged = mergeRoomEvents(
      req,
      { results: [local('$l2', 20), local('$l1', 5)], count: 12, next: { rank: 1, ts: 5, id: '$l1' } },
      { results: [server('$s1', 10)], count: 3, highlights: ['jams'], next_batch: 'server-next' },
    ) as any;
    assert.equal(merged.count, 15);
    assert.deepEqual(
      merged.results.map((r: any) => r.result.event_id),
      ['$l2', '$s1', '$l1'],
    );
    assert.deepEqual(merged.highlights, ['jam', 'jams']);
    assert.deepEqual(decodeBatch(merged.next_batch), {
      server: 'server-next',
      local: { rank: 1, ts: 5, id: '$l1' },
      serverCount: 3,
      first: false,
    });
    assert.deepEqual(merged.groups.room_id[ROOM].results, ['$l2', '$l1']);
    assert.deepEqual(merged.groups.room_id[OTHER].results, ['$s1']);
  });

  it('has no next_batch when neither side has more, and the decrypted event wins over the server’s copy', () => {
    const merged = mergeRoomEvents(
      req,
      { results: [local('$same', 3)], count: 1 },
      { results: [server('$same', 3)], count: 1 },
    ) as any;
    assert.equal(merged.next_batch, undefined);
    assert.deepEqual(
      merged.results.map((r: any) => r.result.room_id),
      [ROOM],
    );
  });

  it('by recency, pages are in order across both sides: local results wait for the server page they belong to', () => {
    const localEvents = [90, 70, 50, 30].map((ts) => message(`$l${ts}`, 'jam', ts));
    const serverPages = [
      { results: [100, 80, 60].map((ts) => server(`$s${ts}`, ts)), count: 5, next_batch: 'page2' },
      { results: [40, 20].map((ts) => server(`$s${ts}`, ts)), count: 5 },
    ];
    const req = request('jam', { order_by: 'recent', filter: { limit: 3 } });
    const pages: string[][] = [];
    let after: ReturnType<typeof decodeBatch>['local'];
    for (const serverPage of serverPages) {
      const page = localPage(localEvents, req, after, serverBoundary('recent', serverPage));
      const merged = mergeRoomEvents(
        req,
        { results: page.results.map((r) => ({ rank: r.rank, result: r.event })), count: page.count, next: page.next },
        serverPage,
      ) as any;
      assert.equal(merged.count, 9);
      pages.push(merged.results.map((r: any) => r.result.event_id));
      after = decodeBatch(merged.next_batch).local;
    }
    assert.deepEqual(pages, [
      ['$s100', '$l90', '$s80', '$l70', '$s60'],
      ['$l50', '$s40', '$l30', '$s20'],
    ]);
    assert.equal(after, undefined, 'nothing left after the last page');
  });

  it('a local page with nothing due yet still continues from where it was', () => {
    const req = request('jam', { order_by: 'recent', filter: { limit: 3 } });
    const page = localPage([message('$old', 'jam', 1)], req, undefined, { rank: 0, ts: 50, id: '$s50' });
    assert.deepEqual(page.results, []);
    assert.ok(page.next, 'the old local match is still to come');
    assert.deepEqual(
      localPage([message('$old', 'jam', 1)], req, page.next).results.map((r) => r.event.event_id),
      ['$old'],
    );
  });

  it('keeps a side that has finished out of the next pages', () => {
    const merged = mergeRoomEvents(
      req,
      { results: [], count: 2 },
      { results: [server('$s', 1)], count: 9, next_batch: 'more' },
    ) as any;
    assert.deepEqual(decodeBatch(merged.next_batch), {
      server: 'more',
      local: undefined,
      serverCount: 9,
      first: false,
    });
  });
});
