/**
 * The homeserver as the crypto layer sees it: authenticated JSON calls on the
 * client-server API with the account's own access token, each bounded by a timeout. The
 * fetch function is injected, so unit tests can run against an in-process fake server.
 */

/** The fetch MatrixHttp calls: the browser's own, or an in-process fake server in tests. */
export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** How long one request may take unless its caller allows less: a stuck request must not hang the account. */
export const REQUEST_TIMEOUT_MS = 60_000;

/** A homeserver answer that was not 2xx, with the Matrix error body when there is one. */
export class MatrixApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    readonly serverMessage: string,
    readonly path: string,
    /** How long the homeserver asked to wait before trying again (429), when it said. */
    readonly retryAfterMs?: number,
    /** The whole JSON body of the error answer (a 401's user-interactive auth flows and session). */
    readonly body?: Record<string, unknown>,
  ) {
    super(`${path}: ${status} ${errcode}: ${serverMessage}`);
    this.name = 'MatrixApiError';
  }
}

/** The homeserver gave no answer: the connection failed, or the request timed out. */
export class HomeserverUnreachableError extends Error {
  constructor(
    readonly path: string,
    reason: string,
  ) {
    super(`${path}: the homeserver did not answer (${reason})`);
    this.name = 'HomeserverUnreachableError';
  }
}

/** Calls on the client-server API with one access token; every call times out. */
export class MatrixHttp {
  constructor(
    readonly baseUrl: string,
    private readonly accessToken: string,
    private readonly fetchFn: FetchLike = (input, init) => fetch(input, init),
    private readonly timeoutMs = REQUEST_TIMEOUT_MS,
  ) {}

  /**
   * Calls `/_matrix/client/v3{path}` and returns the response body as text. Gives up with
   * HomeserverUnreachableError after the timeout (`timeoutMs` when the caller allows less).
   */
  async requestText(method: string, path: string, body?: string, timeoutMs = this.timeoutMs): Promise<string> {
    const limit = Math.min(timeoutMs, this.timeoutMs);
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timedOut = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new HomeserverUnreachableError(path, `no answer within ${limit} ms`));
        controller.abort();
      }, limit);
    });
    try {
      // Raced as well as aborted: a fetch that ignores its signal still ends here.
      return await Promise.race([this.exchange(method, path, body, controller.signal), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await this.requestText(
      method,
      path,
      body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    );
    return JSON.parse(text) as T;
  }

  private async exchange(method: string, path: string, body: string | undefined, signal: AbortSignal): Promise<string> {
    let response: Response;
    let text: string;
    try {
      response = await this.fetchFn(`${this.baseUrl}/_matrix/client/v3${path}`, {
        method,
        headers: {
          Authorization: `Bearer ${this.accessToken}`,
          ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
        },
        body,
        signal,
      });
      text = await response.text();
    } catch (error) {
      throw new HomeserverUnreachableError(path, error instanceof Error ? error.message : String(error));
    }
    if (!response.ok) throw errorOf(response, text, path);
    return text;
  }
}

/** The Matrix error of a non-2xx answer (spec "Standard error response"). */
function errorOf(response: Response, text: string, path: string): MatrixApiError {
  let errcode = 'M_UNKNOWN';
  let error = text.slice(0, 200);
  let retryAfterMs: number | undefined;
  let body: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) body = parsed;
    if (typeof parsed?.errcode === 'string') errcode = parsed.errcode;
    if (typeof parsed?.error === 'string') error = parsed.error;
    // `retry_after_ms` is deprecated since spec v1.10 in favour of Retry-After; servers still send it.
    if (Number.isInteger(parsed?.retry_after_ms) && parsed.retry_after_ms >= 0) retryAfterMs = parsed.retry_after_ms;
  } catch {
    // not JSON: keep the raw text as the message
  }
  const header = response.status === 429 ? retryAfterHeaderMs(response.headers.get('Retry-After')) : undefined;
  return new MatrixApiError(response.status, errcode, error, path, header ?? retryAfterMs, body);
}

/** A Retry-After header in milliseconds: delay-seconds or an HTTP date (RFC 9110, 10.2.3). */
function retryAfterHeaderMs(value: string | null): number | undefined {
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Encodes one path segment (room ids, event types, transaction ids). */
export const seg = (value: string): string => encodeURIComponent(value);
