/**
 * Kirjava's log: levels, structured fields (a request id follows a send from the page through
 * key sharing and encryption), and a scrubber every line goes through, so that no access
 * token, key or ciphertext reaches a log line even when an error message quotes one. What is
 * logged is chosen to carry no plaintext: event ids, room ids, counts and error messages,
 * never event content. The worker keeps the recent lines in memory (RingLog) for the
 * diagnostics the popup may show; nothing is written to disk.
 */

/** How much a log line matters, least first. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

/** Values a log line may carry besides its message: ids, counts, flags. */
export type LogFields = Readonly<Record<string, string | number | boolean | undefined>>;

/** One log line as kept in memory, its message and fields already scrubbed. */
export interface LogEntry {
  /** ms since the epoch */
  time: number;
  level: LogLevel;
  message: string;
  fields: LogFields;
}

/** What every piece that logs is given: one method per level, and loggers that add fields. */
export interface Logger {
  debug(message: string, fields?: LogFields): void;
  info(message: string, fields?: LogFields): void;
  warn(message: string, fields?: LogFields): void;
  error(message: string, fields?: LogFields): void;
  /** A logger whose lines also carry `fields` (e.g. `{ request: 'r12' }`). */
  with(fields: LogFields): Logger;
}

const LEVELS: readonly LogLevel[] = ['debug', 'info', 'warn', 'error'];

/**
 * Secrets that may turn up inside error messages and URLs: Synapse and MAS access tokens,
 * `access_token=` query parameters, bearer headers, and long unpadded base64 runs (keys,
 * ciphertext, signatures). Ids (`!room`, `$event`, `@user`) and ordinary words are kept.
 */
const SECRETS: readonly RegExp[] = [
  /\b(?:syt|syr|mat|mct|mar)_[A-Za-z0-9_-]+/g,
  /(access_token=)[^&\s"']+/gi,
  /(Bearer\s+)[^\s"']+/gi,
  /(?<![$!@#:/\w])[A-Za-z0-9+/_-]{32,}={0,2}/g,
];

/** `text` with every token- or key-like run replaced by `[redacted]`. */
export function scrub(text: string): string {
  let result = text;
  for (const pattern of SECRETS) {
    result = result.replace(pattern, (match, prefix: unknown) =>
      typeof prefix === 'string' && match.startsWith(prefix) ? `${prefix}[redacted]` : '[redacted]',
    );
  }
  return result;
}

/** An error as a log field: its class and message, scrubbed; never its stack's arguments. */
export function errorText(error: unknown): string {
  if (error instanceof Error) return scrub(`${error.name}: ${error.message}`);
  return scrub(String(error));
}

function scrubFields(fields: LogFields): LogFields {
  const clean: Record<string, string | number | boolean | undefined> = {};
  for (const [name, value] of Object.entries(fields)) clean[name] = typeof value === 'string' ? scrub(value) : value;
  return clean;
}

/** Where the lines of a StructuredLogger go. */
export type LogSink = (entry: LogEntry) => void;

class StructuredLogger implements Logger {
  constructor(
    private readonly sink: LogSink,
    private readonly context: LogFields = {},
  ) {}

  debug(message: string, fields?: LogFields): void {
    this.write('debug', message, fields);
  }

  info(message: string, fields?: LogFields): void {
    this.write('info', message, fields);
  }

  warn(message: string, fields?: LogFields): void {
    this.write('warn', message, fields);
  }

  error(message: string, fields?: LogFields): void {
    this.write('error', message, fields);
  }

  with(fields: LogFields): Logger {
    return new StructuredLogger(this.sink, { ...this.context, ...fields });
  }

  private write(level: LogLevel, message: string, fields: LogFields = {}): void {
    this.sink({
      time: Date.now(),
      level,
      message: scrub(message),
      fields: scrubFields({ ...this.context, ...fields }),
    });
  }
}

/** A logger writing through `sink`. */
export const loggerTo = (sink: LogSink): Logger => new StructuredLogger(sink);

/** Lines at or above `minimum` to the console, as `Kirjava: message {fields}`. */
export function consoleSink(minimum: LogLevel = 'info'): LogSink {
  const floor = LEVELS.indexOf(minimum);
  return (entry) => {
    if (LEVELS.indexOf(entry.level) < floor) return;
    const line = `Kirjava: ${entry.message}`;
    const fields = Object.keys(entry.fields).length > 0 ? [entry.fields] : [];
    if (entry.level === 'error') console.error(line, ...fields);
    else if (entry.level === 'warn') console.warn(line, ...fields);
    else console.info(line, ...fields);
  };
}

/** What a piece logs to when nobody gave it a logger: warnings and errors to the console. */
export const defaultLog: Logger = loggerTo(consoleSink());

/** Drops every line (unit tests that do not look at the log). */
export const silentLog: Logger = loggerTo(() => {});

/** The last `capacity` lines, in memory, for diagnostics; every line also goes to `next`. */
export class RingLog {
  private readonly entries: LogEntry[] = [];
  readonly logger: Logger;

  constructor(
    private readonly capacity = 500,
    next: LogSink = consoleSink(),
  ) {
    this.logger = loggerTo((entry) => {
      this.entries.push(entry);
      if (this.entries.length > this.capacity) this.entries.splice(0, this.entries.length - this.capacity);
      next(entry);
    });
  }

  /** The kept lines, oldest first, at or above `minimum`. */
  recent(minimum: LogLevel = 'debug'): LogEntry[] {
    const floor = LEVELS.indexOf(minimum);
    return this.entries.filter((entry) => LEVELS.indexOf(entry.level) >= floor);
  }
}
