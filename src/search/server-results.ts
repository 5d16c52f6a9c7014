/**
 * The homeserver's own search results pass through the account's decryption like any other
 * history: an `m.room.encrypted` event among them (or in their context) is decrypted, and a
 * Kirjava decryption report the homeserver put under `unsigned` is removed — only Kirjava
 * may say that an event was decrypted.
 */
import type { SearchResult } from './merge.ts';
import { type Json, isObject } from './request.ts';

/** The part of an account that decrypts history: a `/messages`-shaped body in, the same body decrypted out. */
export interface HistoryDecryptor {
  processHistory(roomId: string, body: string): Promise<string>;
}

/**
 * The homeserver's results with their encrypted events (and those of their context) decrypted,
 * and any decryption report the homeserver put there removed.
 */
export async function decryptServerResults(account: HistoryDecryptor, results: unknown[]): Promise<SearchResult[]> {
  const out: SearchResult[] = [];
  for (const r of results) {
    if (!isObject(r) || !isObject(r.result) || typeof r.result.room_id !== 'string') continue;
    const roomId = r.result.room_id;
    const context = isObject(r.context) ? r.context : undefined;
    const list = (value: unknown) => (Array.isArray(value) ? value : []);
    const body = JSON.stringify({
      chunk: [r.result],
      events_before: list(context?.events_before),
      events_after: list(context?.events_after),
    });
    const processed = JSON.parse(await account.processHistory(roomId, body)) as Json;
    const result = (list(processed.chunk)[0] ?? r.result) as Json;
    const entry: SearchResult = { ...(r as unknown as SearchResult), result };
    if (context) {
      entry.context = {
        ...context,
        events_before: list(processed.events_before),
        events_after: list(processed.events_after),
      };
    }
    out.push(entry);
  }
  return out;
}
