// The page's own Service Worker: outside every content script. The bypass tests post
// { url, method, headers, body } with a MessagePort and get { status, text } back on it.
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (event) => event.waitUntil(self.clients.claim()));
self.addEventListener('message', (event) => {
  const { url, method, headers, body } = event.data;
  const reply = event.ports[0];
  event.waitUntil(
    fetch(url, { method, headers, body }).then(
      async (response) => reply.postMessage({ status: response.status, text: await response.text() }),
      (error) => reply.postMessage({ status: 0, text: String(error) }),
    ),
  );
});
