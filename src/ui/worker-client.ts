/**
 * The popup's and options page's one client of the worker: `kirjava:ui` requests, each
 * answered with its reply or an Error whose message the page shows as is (the worker's own
 * words when it refused, e.g. "Waiting for login: open your Matrix client…").
 */
import { NoAnswerError, askRuntime } from '../platform/ext.ts';
import { t } from '../platform/i18n.ts';
import {
  UI_CHANNEL,
  type AccountView,
  type UiKind,
  type UiReply,
  type UiRequest,
  type UiRequests,
} from '../shared/messages.ts';

/** A worker that has not answered by then is stuck or gone; say so instead of waiting. */
const ANSWER_TIMEOUT_MS = 5000;

/** How `ask` waits for the worker's answer. */
export interface AskOptions {
  /**
   * How long to wait for the answer; false for tasks that may take a while (a backup
   * download, a 600 000-round passphrase), whose progress the page polls meanwhile.
   */
  timeout?: number | false;
}

/** Any UI request to the worker: its reply, or an Error the page can show as is. */
export async function ask<K extends UiKind>(
  kind: K,
  fields: UiRequests[K]['request'],
  { timeout = ANSWER_TIMEOUT_MS }: AskOptions = {},
): Promise<UiRequests[K]['reply']> {
  const request = { channel: UI_CHANNEL, kind, ...fields } as UiRequest<K>;
  let reply: UiReply<K>;
  try {
    const answer = askRuntime<UiReply<K>>(request);
    reply = await (timeout === false ? answer : withTimeout(answer, timeout));
  } catch (error) {
    if (error instanceof NoAnswerError) throw new Error(t('workerClient_noAnswer'));
    throw new Error(t('workerClient_noAnswerBecause', error instanceof Error ? error.message : String(error)));
  }
  if (typeof reply === 'object' && 'error' in reply && typeof reply.error === 'string') throw new Error(reply.error);
  return reply as UiRequests[K]['reply'];
}

/** The accounts the worker serves; throws an Error the page can show as is. */
export async function requestAccounts(): Promise<AccountView[]> {
  const reply = await ask('accounts', {});
  if (!Array.isArray(reply?.accounts)) throw new Error(t('workerClient_noAnswer'));
  return reply.accounts;
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(t('workerClient_timedOut', ms / 1000))), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Calls `refresh` now and every `ms` while a panel is shown; returns the stop function,
 * so a Svelte `$effect` can return it as its teardown.
 */
export function pollWorker(refresh: () => Promise<void> | void, ms: number): () => void {
  void refresh();
  const timer = setInterval(refresh, ms);
  return () => clearInterval(timer);
}
