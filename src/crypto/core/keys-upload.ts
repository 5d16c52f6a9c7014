import { MatrixApiError } from './http.ts';
import type { Logger } from './log.ts';

/**
 * The library keeps this many signed_curve25519 one-time keys on the server (half of the
 * hundred its account holds) and uploads more only while the server holds fewer.
 */
const ENOUGH_ONE_TIME_KEYS = 50;

type Json = Record<string, unknown>;

/**
 * Sends `POST /keys/upload` bodies (Matrix spec "Uploading keys") so that the one-time keys
 * on the server never go over its limit, and answers with the server's own counts, which
 * the machine then believes (`markRequestAsSent`). The machine judges what to upload from
 * the counts it was last told, and a fresh machine on a device the server already holds
 * keys for (a device taken over after reloads) was told nothing: uploaded as asked, its
 * keys would take the server over its limit (Synapse: `400 M_TOO_LARGE`) and the refused
 * request would stay at the head of every outgoing-request run, failing every send. So:
 * before uploading one-time keys the server's count is asked for (an upload without keys);
 * when the server holds enough, or refuses the keys anyway, the rest of the request
 * (device keys, fallback keys) goes without them. The one-time keys left out are never
 * published; the machine counts them as sent, which costs nothing (no one can claim them).
 */
export async function uploadKeys(body: string, send: (body: string) => Promise<string>, log: Logger): Promise<string> {
  const request = JSON.parse(body) as Json;
  const offered = Object.keys((request.one_time_keys as Json | undefined) ?? {}).length;
  if (offered === 0) return send(body);
  const held = oneTimeKeyCount(await send('{}'));
  if (held !== undefined && held >= ENOUGH_ONE_TIME_KEYS) {
    log.warn('the server already holds enough one-time keys: uploading none', { held, offered });
    return withoutOneTimeKeys(request, send);
  }
  try {
    return await send(body);
  } catch (error) {
    if (!refusesOneTimeKeys(error)) throw error;
    log.warn('the server refused the one-time keys: uploading the rest without them', {
      errcode: error.errcode,
      error: error.serverMessage,
    });
    return withoutOneTimeKeys(request, send);
  }
}

/** The server refused the one-time keys themselves: over its limit, or a key id it holds with other content. */
const refusesOneTimeKeys = (error: unknown): error is MatrixApiError =>
  error instanceof MatrixApiError &&
  error.status === 400 &&
  (error.errcode === 'M_TOO_LARGE' || /one[- ]time key/i.test(error.serverMessage));

function withoutOneTimeKeys(request: Json, send: (body: string) => Promise<string>): Promise<string> {
  const { one_time_keys: _left, ...rest } = request;
  return send(JSON.stringify(rest));
}

function oneTimeKeyCount(answer: string): number | undefined {
  try {
    const count = (JSON.parse(answer) as { one_time_key_counts?: Json }).one_time_key_counts?.signed_curve25519;
    return typeof count === 'number' ? count : 0;
  } catch {
    return undefined;
  }
}
