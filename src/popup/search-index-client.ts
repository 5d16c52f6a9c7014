/**
 * The popup's side of the search index requests: status, and "Index history for search".
 */
import browser from 'webextension-polyfill';
import type { SearchIndexStatus, UiKind, UiRequest } from '../shared/messages';

async function ask(kind: Extract<UiKind, 'searchIndexStatus' | 'searchIndexHistory'>, accountId: string): Promise<SearchIndexStatus> {
  const request: UiRequest<typeof kind> = { channel: 'kirjava:ui', kind, accountId };
  const reply = (await browser.runtime.sendMessage(request)) as SearchIndexStatus | { error: string } | undefined;
  if (!reply) throw new Error('The Kirjava background worker did not answer');
  if ('error' in reply) throw new Error(reply.error);
  return reply;
}

export const requestSearchIndexStatus = (accountId: string) => ask('searchIndexStatus', accountId);
export const startHistoryIndexing = (accountId: string) => ask('searchIndexHistory', accountId);

/** One line that says how far indexing got. */
export function historyLine(status: SearchIndexStatus): string {
  const { history } = status;
  switch (history.state) {
    case 'idle':
      return 'History not indexed in this session yet.';
    case 'running':
      return history.roomsTotal === 0
        ? 'Finding your encrypted rooms…'
        : `Indexing history: room ${Math.min(history.roomsDone + 1, history.roomsTotal)} of ${history.roomsTotal}, ${history.eventsSeen} events read…`;
    case 'done':
      return `History indexed: ${history.roomsTotal} encrypted ${history.roomsTotal === 1 ? 'room' : 'rooms'}, ${history.eventsSeen} events read.`;
    case 'failed':
      return history.error ?? 'Indexing history failed.';
  }
}
