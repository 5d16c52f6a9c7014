/**
 * MAIN-world hook, run at document_start before the page's own code: wraps `fetch` and
 * `XMLHttpRequest` so that the page's traffic to a configured homeserver passes through
 * Kirjava's worker (sync and history decrypted, sends into encrypted rooms encrypted).
 * On an allowed site, a room send to any other host is refused: it could not be
 * encrypted. Every other request goes straight to the browser's own implementation.
 *
 * No secret ever comes back through here: the worker returns decrypted events of the
 * page's own account and ciphertext for its sends, nothing else.
 *
 * The parts (HookPort, PageFetch, the XHR wrapper, responses) are modules the unit tests
 * load; the build bundles them into this one standalone script.
 */
import { kirjavaXhrClass } from './hook-xhr.ts';
import { HookPort } from './hook-port.ts';
import { MediaHook } from './media-hook.ts';
import { PageFetch } from './page-fetch.ts';

(() => {
  const nativeFetch = window.fetch.bind(window);
  const NativeXHR = window.XMLHttpRequest;
  const pageUrl = () => location.href;

  const port = new HookPort(window);
  const media = new MediaHook({
    nativeFetch,
    NativeXHR,
    askKey: async (baseUrl, token, mxc) => {
      const reply = await port.ask({ kind: 'media-key', baseUrl, token, mxc });
      return reply.ok && 'media' in reply ? reply.media : null;
    },
  });
  const pageFetch = new PageFetch({ nativeFetch, port, media, pageUrl });

  Object.defineProperty(window, 'fetch', {
    value: pageFetch.fetch,
    writable: true,
    configurable: true,
    enumerable: true,
  });
  Object.defineProperty(window, 'XMLHttpRequest', {
    value: kirjavaXhrClass(NativeXHR, port, pageFetch, pageUrl),
    writable: true,
    configurable: true,
    enumerable: false,
  });
})();
