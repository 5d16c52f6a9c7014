/**
 * Full storage: when the browser refuses IndexedDB writes for lack of space, the stores that
 * only speed things up (the decrypted-event cache, the search index) stop growing instead of
 * failing what the user is doing, and the popup says so. Writes are tried again now and then,
 * so space the user frees is used without a restart.
 */
import type { StorageStatus } from '../../shared/ui.ts';
import type { Logger } from './log.ts';

/**
 * Whether `error` is the browser refusing a write for lack of space: a DOMException
 * `QuotaExceededError`, or Dexie's wrappers of one (its own `QuotaExceededError`, an
 * `AbortError` or `DatabaseClosedError` with the quota error `inner`, a `BulkError`'s
 * failures), or a library error whose message names it.
 */
export function isQuotaError(error: unknown, depth = 0): boolean {
  if (typeof error !== 'object' || error === null || depth > 4) return false;
  const { name, message, inner, cause, failures } = error as {
    name?: unknown;
    message?: unknown;
    inner?: unknown;
    cause?: unknown;
    failures?: unknown;
  };
  if (name === 'QuotaExceededError' || (typeof message === 'string' && /QuotaExceeded|quota exceeded/i.test(message)))
    return true;
  const nested = [inner, cause, ...(Array.isArray(failures) ? failures : Object.values(failures ?? {}))];
  return nested.some((e) => isQuotaError(e, depth + 1));
}

/** How long writes are skipped after a refusal before one is tried again. */
export const QUOTA_RETRY_MS = 60_000;

/**
 * Remembers, for the whole worker, that the browser refuses writes for lack of space.
 * Stores that can do without their writes ask `skipWrites()` first and report every
 * failed write with `refused(error)`; a write that goes through clears the state.
 */
export class StorageQuota {
  private fullSince: number | undefined;
  private lastTry = 0;

  constructor(
    private readonly log: Logger,
    private readonly retryMs = QUOTA_RETRY_MS,
    private readonly now: () => number = Date.now,
  ) {}

  /** True while storage is full and it is not yet time to try a write again. */
  skipWrites(): boolean {
    if (this.fullSince === undefined) return false;
    if (this.now() - this.lastTry < this.retryMs) return true;
    this.lastTry = this.now();
    return false;
  }

  /**
   * Reports a failed write of `what` (e.g. 'search index'); true when it was the quota, so
   * the caller drops what it meant to keep. Logs the first refusal only: no content, ever.
   */
  refused(error: unknown, what: string): boolean {
    if (!isQuotaError(error)) return false;
    this.lastTry = this.now();
    if (this.fullSince === undefined) {
      this.fullSince = this.now();
      this.log.warn('browser storage is full: new decryptions are no longer kept', { store: what });
    }
    return true;
  }

  /** A write went through: there is space again. */
  written(): void {
    if (this.fullSince === undefined) return;
    this.fullSince = undefined;
    this.log.info('browser storage accepts writes again');
  }

  status(): StorageStatus {
    return this.fullSince === undefined ? { full: false } : { full: true, since: this.fullSince };
  }
}
