/**
 * The Responses the page hook hands the page instead of the homeserver's own: Matrix
 * errors, bodies replaced by the worker (decrypted), and parsed sync bodies whose `json()`
 * costs nothing.
 */
import { roomSendBase } from './routes.ts';

/** A Matrix error response (`errcode`, `error`) the client can show. */
export function errorResponse(reply: { status: number; errcode: string; error: string }): Response {
  return new Response(JSON.stringify({ errcode: reply.errcode, error: reply.error }), {
    status: reply.status,
    headers: { 'Content-Type': 'application/json' },
  });
}

/**
 * The answer to an allowed page's send to a host that is no configured homeserver
 * (another name of one, such as `localhost` or a CNAME, or another server): Kirjava
 * cannot encrypt it, so it never leaves the page. Undefined for anything else.
 */
export function refusedSend(allowed: boolean, method: string, url: URL): Response | undefined {
  const base = allowed ? roomSendBase(method, url) : undefined;
  if (base === undefined) return undefined;
  return errorResponse({
    status: 403,
    errcode: 'M_FORBIDDEN',
    error:
      `Kirjava does not handle ${url.host}: messages to it are not encrypted, so this one was not sent. ` +
      `Add ${base} as a homeserver in Kirjava's options if it is yours.`,
  });
}

/** A response with a replaced body, keeping status, headers and URL. */
export function withBody(original: Response, body: BodyInit): Response {
  const headers = new Headers(original.headers);
  headers.delete('content-length');
  headers.delete('content-encoding');
  const response = new Response(body, { status: original.status, statusText: original.statusText, headers });
  Object.defineProperty(response, 'url', { value: original.url });
  return response;
}

/**
 * `original`, or (when `value` differs from the body) a response with `value` as its
 * body, whose `json()` hands over `value` itself instead of parsing the body again.
 * Read any other way, the body is `value` as JSON, serialized only if someone reads it
 * (the original text when `value` cannot be serialized: nothing decrypted).
 */
export function parsedResponse(original: Response, value: unknown, originalText?: string): Response {
  let response = original;
  if (originalText !== undefined) {
    void original.body?.cancel();
    const encoder = new TextEncoder();
    const body = new ReadableStream<Uint8Array>({
      pull(controller) {
        let json: string;
        try {
          json = JSON.stringify(value);
        } catch {
          json = originalText;
        }
        controller.enqueue(encoder.encode(json));
        controller.close();
      },
    });
    response = withBody(original, body);
  }
  const nativeJson = response.json;
  Object.defineProperty(response, 'json', {
    configurable: true,
    value(this: Response) {
      if (this !== response || response.bodyUsed) return nativeJson.call(this);
      void response.body?.cancel();
      return Promise.resolve(value);
    },
  });
  return response;
}
