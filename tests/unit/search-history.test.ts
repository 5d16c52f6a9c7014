/**
 * "Index history for search" walks each encrypted room back to its beginning, page by page,
 * remembering where it got to, so a run cut short continues there.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { CryptoAccount } from '../../src/crypto/account.ts';
import { SearchHistoryIndexer } from '../../src/background/search/search-history.ts';
import type { RoomProgress, SearchIndex } from '../../src/background/search/search-index.ts';

/** A room history of `length` events served newest first, `pageSize` per page, tokens `t<position>`. */
function fakeAccount(rooms: Record<string, number>, options: { failAt?: string } = {}) {
  const asked: string[] = [];
  const account = {
    joinedEncryptedRooms: async () => Object.keys(rooms),
    async fetchHistory(roomId: string, path: string) {
      asked.push(`${roomId} ${path}`);
      const url = new URL(path, 'https://x/');
      const from = Number(url.searchParams.get('from')?.slice(1) ?? rooms[roomId]);
      if (options.failAt && path.includes(options.failAt)) throw new Error('M_LIMIT_EXCEEDED');
      const limit = Number(url.searchParams.get('limit'));
      const chunk = Array.from({ length: Math.min(limit, from) }, (_, i) => ({ event_id: `$${roomId}${from - i}` }));
      return chunk.length > 0 ? { chunk, end: `t${from - chunk.length}` } : { chunk }; // no `end`: the beginning
    },
  };
  return { account: account as unknown as CryptoAccount, asked };
}

function fakeIndex(saved: Record<string, RoomProgress> = {}) {
  const index = {
    roomProgress: async (room: string) => saved[room],
    saveRoomProgress: async (progress: RoomProgress) => void (saved[progress.room] = progress),
    flushed: async () => undefined,
  };
  return { index: index as unknown as SearchIndex, saved };
}

const finished = async (indexer: SearchHistoryIndexer, id: string) => {
  for (let i = 0; i < 200 && indexer.status(id).state === 'running'; i++) await new Promise((r) => setTimeout(r, 1));
  return indexer.status(id);
};

describe('History indexing', () => {
  it('walks every encrypted room to its beginning, one page at a time, staying awake', async () => {
    let wakeCalls = 0;
    const indexer = new SearchHistoryIndexer(async () => wakeCalls++, 0);
    const { account, asked } = fakeAccount({ '!a': 250, '!b': 30 });
    const { index, saved } = fakeIndex();
    assert.equal(indexer.start('acct', account, index).state, 'running');
    const status = await finished(indexer, 'acct');
    assert.deepEqual(status, { state: 'done', roomsDone: 2, roomsTotal: 2, eventsSeen: 280 });
    assert.deepEqual(asked, [
      '!a messages?dir=b&limit=100',
      '!a messages?dir=b&limit=100&from=t150',
      '!a messages?dir=b&limit=100&from=t50',
      '!a messages?dir=b&limit=100&from=t0',
      '!b messages?dir=b&limit=100',
      '!b messages?dir=b&limit=100&from=t0',
    ]);
    assert.deepEqual(saved['!a'], { room: '!a', done: true });
    assert.ok(wakeCalls >= 3);
  });

  it('a run that failed says so, and the next run continues from the last page it got', async () => {
    const indexer = new SearchHistoryIndexer(undefined, 0);
    const { index, saved } = fakeIndex();
    const failing = fakeAccount({ '!a': 250 }, { failAt: 'from=t50' });
    indexer.start('acct', failing.account, index);
    const failed = await finished(indexer, 'acct');
    assert.equal(failed.state, 'failed');
    assert.match(failed.error ?? '', /M_LIMIT_EXCEEDED.*Try again later/);
    assert.deepEqual(saved['!a'], { room: '!a', from: 't50', done: false });

    const again = fakeAccount({ '!a': 250 });
    indexer.start('acct', again.account, index);
    assert.equal((await finished(indexer, 'acct')).state, 'done');
    assert.equal(again.asked[0], '!a messages?dir=b&limit=100&from=t50');
  });

  it('starting while a run is under way does not start a second one', async () => {
    const indexer = new SearchHistoryIndexer(undefined, 5);
    const { account, asked } = fakeAccount({ '!a': 300 });
    const { index } = fakeIndex();
    indexer.start('acct', account, index);
    indexer.start('acct', account, index);
    await finished(indexer, 'acct');
    assert.equal(asked.filter((a) => !a.includes('from=')).length, 1);
  });
});
