/**
 * The popup's progress lines: how far a key task and history indexing got.
 */
import type { SearchIndexStatus } from '../shared/messages.ts';

/** "3 of 10 keys imported", as the progress line says it. */
export function progressLine(task: string, done: number, total: number): string {
  const verb = { recovery: 'restored from backup', import: 'imported', export: 'exported' }[task] ?? 'done';
  return total > 0 ? `${done} of ${total} keys ${verb}` : 'Working…';
}

/** One line that says how far indexing got. */
export function historyLine(status: SearchIndexStatus): string {
  const { history } = status;
  switch (history.state) {
    case 'idle':
      return 'History not indexed in this session yet.';
    case 'running':
      return history.roomsTotal === 0
        ? 'Finding your encrypted rooms…'
        : `Indexing history: room ${Math.min(history.roomsDone + 1, history.roomsTotal)} of ${history.roomsTotal}, ` +
            `${history.eventsSeen} events read…`;
    case 'done':
      return (
        `History indexed: ${history.roomsTotal} encrypted ${history.roomsTotal === 1 ? 'room' : 'rooms'}, ` +
        `${history.eventsSeen} events read.`
      );
    case 'failed':
      return history.error ?? 'Indexing history failed.';
  }
}
