// Ways a page reaches the homeserver around Kirjava's MAIN-world hook (see
// tests/fixtures/bypass.ts). Plain browser JavaScript, loaded into the test page on demand:
// window.kirjavaBypass(bypass, { url, method, headers, body }) -> { status, text }, status 0
// when the browser refused the request.
// window.kirjavaPost(poster, { url, body }) starts a POST that no script can read the
// answer of (a form post, a beacon); the fixture watches the network for its outcome.
window.kirjavaBypass = async (bypass, request) => {
  const { url, method, headers, body } = request;
  const asOutcome = async (response) => ({ status: response.status, text: await response.text() });
  const failed = (error) => ({ status: 0, text: String(error) });
  const viaFetch = (fetchFn) => fetchFn(url, { method, headers, body }).then(asOutcome, failed);
  const viaXhr = (Xhr) =>
    new Promise((resolve) => {
      const xhr = new Xhr();
      xhr.open(method, url);
      for (const [name, value] of Object.entries(headers)) xhr.setRequestHeader(name, value);
      xhr.onload = () => resolve({ status: xhr.status, text: xhr.responseText });
      xhr.onerror = () => resolve({ status: 0, text: 'XHR network error' });
      xhr.send(body ?? null);
    });
  const freshIframe = () => {
    const iframe = document.createElement('iframe');
    document.body.append(iframe);
    return iframe.contentWindow;
  };
  const settled = () => new Promise((resolve) => setTimeout(resolve, 100));

  switch (bypass) {
    case 'page Web Worker fetch': {
      const worker = new Worker('/bypass-worker.js');
      return new Promise((resolve) => {
        worker.onmessage = (event) => {
          worker.terminate();
          resolve(event.data);
        };
        worker.postMessage(request);
      });
    }
    case "page's own Service Worker fetch": {
      const registration = await navigator.serviceWorker.register('/bypass-sw.js', { scope: '/bypass-scope/' });
      const worker = registration.installing ?? registration.waiting ?? registration.active;
      if (worker.state !== 'activated') {
        await new Promise((resolve) =>
          worker.addEventListener('statechange', () => worker.state === 'activated' && resolve()),
        );
      }
      const channel = new MessageChannel();
      const answer = new Promise((resolve) => (channel.port1.onmessage = (event) => resolve(event.data)));
      worker.postMessage(request, [channel.port2]);
      return answer;
    }
    case 'about:blank iframe fetch': {
      const frame = freshIframe();
      await settled();
      return viaFetch(frame.fetch.bind(frame));
    }
    case 'about:blank iframe XHR': {
      const frame = freshIframe();
      await settled();
      return viaXhr(frame.XMLHttpRequest);
    }
    case 'native fetch captured from a fresh iframe': {
      // Grabbed in the same task as the iframe's creation, before any content script ran there.
      const nativeFetch = freshIframe().fetch;
      return viaFetch((input, init) => nativeFetch.call(window, input, init));
    }
    case 'native XHR captured from a fresh iframe':
      return viaXhr(freshIframe().XMLHttpRequest);
    case 'sandboxed srcdoc iframe fetch (opaque origin)': {
      const iframe = document.createElement('iframe');
      iframe.sandbox.add('allow-scripts');
      const nonce = Math.random().toString(36).slice(2);
      const answer = new Promise((resolve) => {
        const onMessage = (event) => {
          if (event.data?.nonce !== nonce) return;
          window.removeEventListener('message', onMessage);
          resolve(event.data.outcome);
        };
        window.addEventListener('message', onMessage);
      });
      iframe.srcdoc = `<script>
        fetch(${JSON.stringify(url)}, ${JSON.stringify({ method, headers, body })}).then(
          async (r) => parent.postMessage(
            { nonce: ${JSON.stringify(nonce)}, outcome: { status: r.status, text: await r.text() } }, '*'),
          (e) => parent.postMessage({ nonce: ${JSON.stringify(nonce)}, outcome: { status: 0, text: String(e) } }, '*'));
      </script>`;
      document.body.append(iframe);
      return answer;
    }
    case 'page fetch (hooked)':
      return viaFetch(window.fetch);
    case 'page XHR (hooked)':
      return viaXhr(window.XMLHttpRequest);
  }
  throw new Error(`Unknown bypass ${bypass}`);
};

window.kirjavaPost = (poster, { url, body }) => {
  if (poster === 'navigator.sendBeacon') {
    if (!navigator.sendBeacon(url, body)) throw new Error('sendBeacon refused to queue the beacon');
    return;
  }
  // A text/plain form sends `name=value` as is: a JSON object split at a string's quotes
  // stays JSON (`{...,"pad":"` = `"}`), and the homeserver reads the body whatever its type.
  const form = document.createElement('form');
  form.method = 'post';
  form.enctype = 'text/plain';
  form.action = url;
  const field = document.createElement('input');
  field.type = 'hidden';
  field.name = `${body.slice(0, -1)},"pad":"`;
  field.value = '"}';
  form.append(field);
  if (poster === 'form post into a hidden iframe') {
    const iframe = document.createElement('iframe');
    iframe.name = `kirjava-post-${Math.random().toString(36).slice(2)}`;
    iframe.hidden = true;
    document.body.append(iframe);
    form.target = iframe.name;
  } else if (poster !== 'form post navigating the tab') {
    throw new Error(`Unknown poster ${poster}`);
  }
  document.body.append(form);
  // After this call has returned: a navigating tab would take the caller's answer with it.
  setTimeout(() => form.submit(), 0);
};
