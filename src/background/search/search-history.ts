/**
 * "Index history for search": walks the history of each joined encrypted room backwards
 * with `/rooms/{roomId}/messages` and lets the account decrypt it, which feeds the search
 * index (SearchService listens to every decryption). Politely: one page at a time, a pause
 * between pages, one run per account. An interrupted run continues where it stopped; a
 * finished room is walked again from its newest event on the next run, so gaps left by
 * limited syncs get filled.
 */
import type { CryptoAccount } from '../../crypto/account.ts';
import type { SearchIndexStatus } from '../../shared/messages.ts';
import type { SearchIndex } from './search-index.ts';

type History = SearchIndexStatus['history'];

/** Events per `/messages` page, and the pause between two pages. */
const PAGE_LIMIT = 100;
export const PAGE_PAUSE_MS = 500;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs "Index history for search", one run per account at a time, and keeps each run's
 * progress for the popup.
 */
export class SearchHistoryIndexer {
  private readonly runs = new Map<string, History>();

  /**
   * `keepAlive` is called once per page: an extension API call resets the service worker's
   * idle timer, so a long run is not cut off when the popup closes.
   */
  constructor(
    private readonly keepAlive: () => Promise<unknown> = async () => undefined,
    private readonly pauseMs = PAGE_PAUSE_MS,
  ) {}

  status(accountId: string): History {
    return { ...(this.runs.get(accountId) ?? { state: 'idle', roomsDone: 0, roomsTotal: 0, eventsSeen: 0 }) };
  }

  /** Starts a run for the account unless one is under way. */
  start(accountId: string, account: CryptoAccount, index: SearchIndex): History {
    if (this.runs.get(accountId)?.state === 'running') return this.status(accountId);
    const run: History = { state: 'running', roomsDone: 0, roomsTotal: 0, eventsSeen: 0 };
    this.runs.set(accountId, run);
    this.walk(run, account, index).then(
      () => (run.state = 'done'),
      (error) => {
        run.state = 'failed';
        run.error =
          `Indexing history stopped: ${error instanceof Error ? error.message : String(error)}. ` + 'Try again later.';
      },
    );
    return this.status(accountId);
  }

  private async walk(run: History, account: CryptoAccount, index: SearchIndex): Promise<void> {
    const rooms = await account.joinedEncryptedRooms();
    run.roomsTotal = rooms.length;
    for (const roomId of rooms) {
      const saved = await index.roomProgress(roomId);
      let from = saved && !saved.done ? saved.from : undefined;
      for (;;) {
        const query = `messages?dir=b&limit=${PAGE_LIMIT}${from ? `&from=${encodeURIComponent(from)}` : ''}`;
        const page = await account.fetchHistory(roomId, query);
        const chunk = Array.isArray(page.chunk) ? page.chunk : [];
        run.eventsSeen += chunk.length;
        const end = typeof page.end === 'string' ? page.end : undefined;
        if (chunk.length === 0 || !end || end === from) break;
        from = end;
        await index.saveRoomProgress({ room: roomId, from, done: false });
        await this.keepAlive().catch(() => undefined);
        await sleep(this.pauseMs);
      }
      await index.saveRoomProgress({ room: roomId, done: true });
      await index.flushed();
      run.roomsDone += 1;
    }
  }
}
