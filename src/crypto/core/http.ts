/**
 * The homeserver as the crypto layer sees it: authenticated JSON calls on the
 * client-server API with the account's own access token. The fetch function is
 * injected, so unit tests can run against an in-process fake server.
 */

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

/** A homeserver answer that was not 2xx, with the Matrix error body when there is one. */
export class MatrixApiError extends Error {
  constructor(
    readonly status: number,
    readonly errcode: string,
    readonly serverMessage: string,
    readonly path: string,
  ) {
    super(`${path}: ${status} ${errcode}: ${serverMessage}`);
    this.name = 'MatrixApiError';
  }
}

export class MatrixHttp {
  constructor(
    readonly baseUrl: string,
    private readonly accessToken: string,
    private readonly fetchFn: FetchLike = (input, init) => fetch(input, init),
  ) {}

  /** Calls `/_matrix/client/v3{path}` and returns the response body as text. */
  async requestText(method: string, path: string, body?: string): Promise<string> {
    const response = await this.fetchFn(`${this.baseUrl}/_matrix/client/v3${path}`, {
      method,
      headers: {
        Authorization: `Bearer ${this.accessToken}`,
        ...(body === undefined ? {} : { 'Content-Type': 'application/json' }),
      },
      body,
    });
    const text = await response.text();
    if (!response.ok) {
      let errcode = 'M_UNKNOWN';
      let error = text.slice(0, 200);
      try {
        const parsed = JSON.parse(text);
        if (typeof parsed?.errcode === 'string') errcode = parsed.errcode;
        if (typeof parsed?.error === 'string') error = parsed.error;
      } catch {
        // not JSON: keep the raw text as the message
      }
      throw new MatrixApiError(response.status, errcode, error, path);
    }
    return text;
  }

  async request<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const text = await this.requestText(
      method,
      path,
      body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    );
    return JSON.parse(text) as T;
  }
}

/** Encodes one path segment (room ids, event types, transaction ids). */
export const seg = (value: string): string => encodeURIComponent(value);
