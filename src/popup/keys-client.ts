/**
 * The popup's key management requests to the worker (issue 5). Unlike the account list,
 * these may take a while (a backup download, a 500 000-round passphrase): no timeout;
 * the panel polls `keys-status` for progress meanwhile.
 */
import browser from 'webextension-polyfill';
import type { UiKind, UiRequest, UiRequests } from '../shared/messages';

export async function askKeys<K extends Exclude<UiKind, 'accounts'>>(
  kind: K,
  fields: UiRequests[K]['request'],
): Promise<UiRequests[K]['reply']> {
  const request = { channel: 'kirjava:ui', kind, ...fields } as UiRequest<K>;
  const reply = (await browser.runtime.sendMessage(request)) as UiRequests[K]['reply'] | { error: string } | undefined;
  if (reply === undefined) throw new Error('The Kirjava background worker did not answer: reload Kirjava in chrome://extensions');
  if (typeof reply === 'object' && reply !== null && 'error' in reply && typeof reply.error === 'string') {
    throw new Error(reply.error);
  }
  return reply as UiRequests[K]['reply'];
}

/** "3 of 10 keys imported", as the progress line says it. */
export function progressLine(task: string, done: number, total: number): string {
  const verb = { recovery: 'restored from backup', import: 'imported', export: 'exported' }[task] ?? 'done';
  return total > 0 ? `${done} of ${total} keys ${verb}` : 'Working…';
}
