/**
 * The worker's log: one RingLog that keeps the recent lines in memory (for a diagnostics view; no
 * secret reaches it, see src/crypto/core/log.ts) and writes info and above to the console.
 * Every background piece logs through `log`; each page request gets a child logger carrying
 * its request id (`requestLog`), which follows a send through key sharing and encryption.
 */
import { RingLog, type LogEntry, type Logger } from '../crypto/core/log.ts';

const ring = new RingLog();

/** The worker's logger. */
export const log: Logger = ring.logger;

let lastRequest = 0;

/** A logger for one page request: its lines carry `request: 'p<n>'`. */
export function requestLog(kind: string): Logger {
  lastRequest += 1;
  return log.with({ request: `p${lastRequest}`, kind });
}

/** The warnings and errors still in the ring, oldest first (the diagnostics page redacts them further). */
export const recentProblems = (): LogEntry[] => ring.recent('warn');
