/**
 * The popup's side of the `kirjava:ui` conversation with the background worker.
 */
import browser from 'webextension-polyfill';
import type { AccountsReply, AccountView, UiKind, UiReply, UiRequest, UiRequests } from '../shared/messages';

/** A worker that has not answered by then is stuck or gone; say so instead of waiting. */
const ANSWER_TIMEOUT_MS = 5000;

const NO_ANSWER = 'The Kirjava background worker did not answer';
const WHAT_TO_DO = 'If this lasts, reload Kirjava in chrome://extensions.';

/** The accounts the worker serves; throws an Error the popup can show as is. */
export async function requestAccounts(): Promise<AccountView[]> {
  const request: UiRequest = { channel: 'kirjava:ui', kind: 'accounts' };
  let reply: unknown;
  try {
    reply = await withTimeout(browser.runtime.sendMessage(request), ANSWER_TIMEOUT_MS);
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`${NO_ANSWER} (${detail}). ${WHAT_TO_DO}`);
  }
  if (!isAccountsReply(reply)) {
    // The polyfill resolves to undefined when no listener answered at all.
    throw new Error(`${NO_ANSWER}. ${WHAT_TO_DO}`);
  }
  return reply.accounts;
}

/** Any UI request to the worker; throws an Error the popup can show as is. */
export async function askWorker<K extends UiKind>(
  kind: K,
  fields: UiRequests[K]['request'],
): Promise<UiRequests[K]['reply']> {
  const request = { channel: 'kirjava:ui', kind, ...fields } as UiRequest<K>;
  let reply: unknown;
  try {
    reply = await withTimeout(browser.runtime.sendMessage(request), ANSWER_TIMEOUT_MS);
  } catch (error) {
    throw new Error(`${NO_ANSWER} (${error instanceof Error ? error.message : String(error)}). ${WHAT_TO_DO}`);
  }
  if (reply === undefined || reply === null) throw new Error(`${NO_ANSWER}. ${WHAT_TO_DO}`);
  if (typeof reply === 'object' && 'error' in reply) throw new Error(String((reply as { error: unknown }).error));
  return reply as UiRequests[K]['reply'];
}

function isAccountsReply(reply: unknown): reply is AccountsReply {
  return typeof reply === 'object' && reply !== null && Array.isArray((reply as AccountsReply).accounts);
}

function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Any other UI request: the worker's reply, or an Error with what the user can do (the
 * worker's own message when it refused, e.g. "Waiting for login: open your Matrix client…").
 */
export async function ask<K extends UiKind>(
  kind: K,
  fields: UiRequests[K]['request'],
): Promise<UiRequests[K]['reply']> {
  const request = { channel: 'kirjava:ui', kind, ...fields } as UiRequest<K>;
  let reply: UiReply<K> | undefined;
  try {
    reply = (await withTimeout(browser.runtime.sendMessage(request), ANSWER_TIMEOUT_MS)) as UiReply<K> | undefined;
  } catch (error) {
    const detail = error instanceof Error ? error.message : String(error);
    throw new Error(`${NO_ANSWER} (${detail}). ${WHAT_TO_DO}`);
  }
  if (reply === undefined || reply === null) throw new Error(`${NO_ANSWER}. ${WHAT_TO_DO}`);
  if (typeof reply === 'object' && 'error' in reply && typeof reply.error === 'string') throw new Error(reply.error);
  return reply as UiRequests[K]['reply'];
}

/**
 * Calls `refresh` now and every `ms` while a popup panel is shown; returns the stop
 * function, so a Svelte `$effect` can return it as its teardown.
 */
export function pollWorker(refresh: () => Promise<void> | void, ms: number): () => void {
  void refresh();
  const timer = setInterval(refresh, ms);
  return () => clearInterval(timer);
}
