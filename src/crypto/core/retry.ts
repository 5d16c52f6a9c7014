/**
 * When a failed homeserver request is worth another attempt, and how long to wait first,
 * in the manner of matrix-js-sdk's request loop: rate limits (429) are retried after the
 * wait the server asks for, server errors (5xx), failed connections and timeouts after a
 * doubling backoff; any other 4xx is the request's own fault and never retried. A few
 * attempts within a bounded time, then the last error stands.
 */
import { HomeserverUnreachableError, MatrixApiError } from './http.ts';

/** How often and for how long a failed homeserver request is tried again. */
export interface RetryPolicy {
  /** Attempts in all, the first included. */
  attempts: number;
  /** The wait before the first retry; doubled before each one after it. */
  firstDelayMs: number;
  /** Timeout of one attempt. */
  attemptTimeoutMs: number;
  /** No attempt runs past this long after the first one began. */
  totalMs: number;
}

/** Waits of 1, 2 and 4 s between four attempts of at most 30 s each, all within a minute. */
export const DEFAULT_RETRY: RetryPolicy = {
  attempts: 4,
  firstDelayMs: 1_000,
  attemptTimeoutMs: 30_000,
  totalMs: 60_000,
};

/** How a retry waits: a real timer, or a quicker one in tests. */
export type Sleep = (ms: number) => Promise<void>;

export const sleep: Sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The wait before another attempt after `error` ended attempt number `attempt` (from 1); undefined: give up. */
export function retryDelay(error: unknown, attempt: number, policy: RetryPolicy): number | undefined {
  if (attempt >= policy.attempts) return undefined;
  const backoff = policy.firstDelayMs * 2 ** (attempt - 1);
  if (error instanceof HomeserverUnreachableError) return backoff;
  if (error instanceof MatrixApiError) {
    if (error.status === 429) return error.retryAfterMs ?? backoff;
    if (error.status >= 500) return backoff;
  }
  // Any other answer, or an error that is not the homeserver's (a bug here), would fail again.
  return undefined;
}

/**
 * Runs `attempt` until it succeeds or the policy gives up, and then throws the last error.
 * Each attempt is told its timeout: the policy's, cut to what is left of the total time.
 */
export async function withRetries<T>(
  attempt: (timeoutMs: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
  wait: Sleep = sleep,
): Promise<T> {
  const deadline = Date.now() + policy.totalMs;
  for (let made = 1; ; made++) {
    try {
      return await attempt(Math.max(1, Math.min(policy.attemptTimeoutMs, deadline - Date.now())));
    } catch (error) {
      const delay = retryDelay(error, made, policy);
      if (delay === undefined || Date.now() + delay >= deadline) throw error;
      await wait(delay);
    }
  }
}
