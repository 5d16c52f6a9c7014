/**
 * The popup's progress lines: how far a key task and history indexing got.
 */
import { plural, t } from '../platform/i18n.ts';
import type { SearchIndexStatus } from '../shared/messages.ts';

/** "3 of 10 keys imported", as the progress line says it. */
export function progressLine(task: string, done: number, total: number): string {
  if (total <= 0) return t('progressLines_working');
  switch (task) {
    case 'recovery':
      return t('progressLines_keysRestored', done, total);
    case 'import':
      return t('progressLines_keysImported', done, total);
    case 'export':
      return t('progressLines_keysExported', done, total);
    default:
      return t('progressLines_keysDone', done, total);
  }
}

/** One line that says how far indexing got. */
export function historyLine(status: SearchIndexStatus): string {
  const { history } = status;
  switch (history.state) {
    case 'idle':
      return t('progressLines_historyIdle');
    case 'running':
      return history.roomsTotal === 0
        ? t('progressLines_findingRooms')
        : t(
            'progressLines_historyRunning',
            Math.min(history.roomsDone + 1, history.roomsTotal),
            history.roomsTotal,
            history.eventsSeen,
          );
    case 'done':
      return plural(
        history.roomsTotal,
        'progressLines_historyDoneOne',
        'progressLines_historyDoneOther',
        history.eventsSeen,
      );
    case 'failed':
      return history.error ?? t('progressLines_historyFailed');
  }
}
