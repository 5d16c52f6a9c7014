/**
 * The page's XMLHttpRequest: for homeserver URLs the request is carried out with the
 * mediated fetch (PageFetch) and its result presented through the XHR interface; every
 * other URL is the native XHR.
 */
import type { PageFetch } from './page-fetch.ts';
import type { UploadProgress } from './media-hook.ts';
import type { HookPort } from './hook-port.ts';

/**
 * The XMLHttpRequest class the hook installs in the page: a subclass of `NativeXHR` that
 * carries homeserver requests out with `pageFetch`.
 */
export function kirjavaXhrClass(
  NativeXHR: typeof XMLHttpRequest,
  port: HookPort,
  pageFetch: PageFetch,
  pageUrl: () => string,
) {
  return class KirjavaXHR extends NativeXHR {
    private method = 'GET';
    private url = '';
    private readonly requestHeaders = new Headers();
    private controller: AbortController | undefined;

    open(method: string, url: string | URL, async = true, user?: string | null, password?: string | null): void {
      this.method = method.toUpperCase();
      this.url = new URL(String(url), pageUrl()).href;
      super.open(method, url, async, user, password);
    }

    setRequestHeader(name: string, value: string): void {
      this.requestHeaders.append(name, value);
      super.setRequestHeader(name, value);
    }

    send(body?: Document | XMLHttpRequestBodyInit | null): void {
      const url = pageFetch.matrixUrlOf(this.url);
      if (!url) return super.send(body);
      const controller = (this.controller = new AbortController());
      port.ready
        .then(() => {
          const baseUrl = port.homeserverOf(this.url);
          const refused = baseUrl ? undefined : pageFetch.refusedSend(this.method, url);
          if (refused) {
            this.dispatchEvent(new ProgressEvent('loadstart'));
            return this.complete(refused);
          }
          if (!baseUrl) return super.send(body);
          const hasBody = body !== undefined && body !== null && this.method !== 'GET' && this.method !== 'HEAD';
          const request = new Request(this.url, {
            method: this.method,
            headers: this.requestHeaders,
            body: hasBody ? (body as BodyInit) : undefined,
            signal: controller.signal,
            credentials: this.withCredentials ? 'include' : 'same-origin',
          });
          this.dispatchEvent(new ProgressEvent('loadstart'));
          const progress: UploadProgress = (loaded, total) =>
            this.upload.dispatchEvent(new ProgressEvent('progress', { lengthComputable: true, loaded, total }));
          return pageFetch.mediated(request, baseUrl, { progress, body: body instanceof Blob ? body : undefined }).then(
            (response) => this.complete(response),
            () => this.fail(controller.signal.aborted ? 'abort' : 'error'),
          );
        })
        .catch(() => this.fail('error'));
    }

    abort(): void {
      if (this.controller) this.controller.abort();
      else super.abort();
    }

    private define(values: Record<string, unknown>): void {
      for (const [name, value] of Object.entries(values)) {
        Object.defineProperty(this, name, { value, configurable: true });
      }
    }

    private async complete(response: Response): Promise<void> {
      const headerLines = [...response.headers].map(([k, v]) => `${k}: ${v}`).join('\r\n');
      const type = this.responseType;
      // Media is binary: bytes for arraybuffer and blob. A sync's json() is the object the
      // hook already parsed: no second parse.
      let text = '';
      let parsed: unknown;
      if (type === 'arraybuffer') parsed = await response.arrayBuffer();
      else if (type === 'blob') parsed = await response.blob();
      else if (type === 'json') parsed = await response.json().catch(() => null);
      else parsed = text = await response.text();
      this.define({
        readyState: 4,
        status: response.status,
        statusText: response.statusText,
        responseURL: response.url || this.url,
        response: parsed,
        responseText: type === '' || type === 'text' ? text : undefined,
        getResponseHeader: (name: string) => response.headers.get(name),
        getAllResponseHeaders: () => (headerLines ? `${headerLines}\r\n` : ''),
      });
      for (const name of ['readystatechange', 'load', 'loadend']) {
        this.dispatchEvent(name === 'readystatechange' ? new Event(name) : new ProgressEvent(name));
      }
    }

    private fail(kind: 'error' | 'abort'): void {
      this.define({ readyState: 4, status: 0, statusText: '', response: null, responseText: '' });
      for (const name of ['readystatechange', kind, 'loadend']) {
        this.dispatchEvent(name === 'readystatechange' ? new Event(name) : new ProgressEvent(name));
      }
    }
  };
}
