/**
 * Which site started a request, from the browser's own record of it: Chromium's `initiator`,
 * Firefox's `originUrl`. A request that names no web site (an extension's, a sandboxed
 * frame's, a file's) names no origin, so nothing is offered, asked or counted for it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requestOrigin } from '../../src/platform/origins.ts';

describe('the origin that started a request', () => {
  it("is Chromium's initiator when it names a web origin", () => {
    assert.equal(requestOrigin({ initiator: 'https://app.example.org' }), 'https://app.example.org');
    assert.equal(requestOrigin({ initiator: 'http://127.0.0.1:8080' }), 'http://127.0.0.1:8080');
  });

  it("is the origin of Firefox's originUrl, without path, query or fragment", () => {
    assert.equal(requestOrigin({ originUrl: 'https://app.example.org/#/room/!r:x?q=1' }), 'https://app.example.org');
    assert.equal(requestOrigin({ originUrl: 'http://127.0.0.1:8080/index.html' }), 'http://127.0.0.1:8080');
    // A page's Web Worker started from a blob: URL belongs to the page's origin.
    assert.equal(requestOrigin({ originUrl: 'blob:https://app.example.org/1234-5678' }), 'https://app.example.org');
  });

  it('is none for an opaque origin: a sandboxed frame, data: or about:blank', () => {
    assert.equal(requestOrigin({ initiator: 'null' }), undefined);
    assert.equal(requestOrigin({ originUrl: 'data:text/html,<p>x' }), undefined);
    assert.equal(requestOrigin({ originUrl: 'about:blank' }), undefined);
    // Firefox leaves originUrl out for a sandboxed frame's request (seen in Firefox 153).
    assert.equal(requestOrigin({}), undefined);
  });

  it("is none for an extension's or a file's request", () => {
    assert.equal(requestOrigin({ initiator: 'chrome-extension://abcdefghijklmnop' }), undefined);
    assert.equal(
      requestOrigin({ originUrl: 'moz-extension://0f3a1c2e-1111-4222-8333-944455556666/popup.html' }),
      undefined,
    );
    assert.equal(requestOrigin({ originUrl: 'file:///home/user/client.html' }), undefined);
    assert.equal(requestOrigin({ originUrl: 'not a url' }), undefined);
  });

  it("trusts Chromium's initiator over an originUrl when both are there", () => {
    assert.equal(requestOrigin({ initiator: 'null', originUrl: 'https://app.example.org/' }), undefined);
    assert.equal(
      requestOrigin({ initiator: 'https://a.example', originUrl: 'https://b.example/' }),
      'https://a.example',
    );
  });
});
