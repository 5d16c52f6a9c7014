/**
 * Who may ask the worker what: a runtime message's origin is the browser's word
 * (MessageSender.origin), never the sender's URL, and only the extension's own pages get
 * answers to UI requests (forget an account, reset Kirjava, export keys).
 */
// First: installs the fake extension APIs before any module reaches webextension-polyfill.
import { EXTENSION_ORIGIN, fakeBrowser, messageListeners } from '../fixtures/fake-browser.ts';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Runtime } from '../../src/platform/ext.ts';
import { senderOrigin } from '../../src/platform/ext.ts';
import { isOwnPage, onUiRequest, registerUiRouter } from '../../src/background/ui-router.ts';
import { UI_CHANNEL } from '../../src/shared/messages.ts';

const sender = (fields: Record<string, unknown>) => fields as Runtime.MessageSender;
const ID = fakeBrowser.runtime.id;

describe('senderOrigin', () => {
  it("is the browser's origin of the sender", () => {
    assert.equal(senderOrigin(sender({ origin: 'https://a.example.test' })), 'https://a.example.test');
    assert.equal(senderOrigin(sender({ origin: EXTENSION_ORIGIN })), EXTENSION_ORIGIN);
  });

  it('drops an opaque origin and never falls back to the URL', () => {
    assert.equal(senderOrigin(sender({ origin: 'null', url: 'https://a.example.test/' })), undefined);
    assert.equal(senderOrigin(sender({ url: 'https://a.example.test/' })), undefined);
    assert.equal(senderOrigin(sender({})), undefined);
    assert.equal(senderOrigin(sender({ origin: 42 })), undefined);
  });
});

describe('UI requests', () => {
  const popupUrl = `${EXTENSION_ORIGIN}/src/popup/index.html`;

  it("come from the extension's own pages only: its id and the browser-reported extension origin", () => {
    assert.equal(isOwnPage(sender({ id: ID, origin: EXTENSION_ORIGIN, url: popupUrl })), true);
    assert.equal(isOwnPage(sender({ id: ID, origin: EXTENSION_ORIGIN })), true);
    // A content script: the extension's id, its page's origin; whatever its URL says.
    assert.equal(isOwnPage(sender({ id: ID, origin: 'https://a.example.test', url: popupUrl })), false);
    assert.equal(isOwnPage(sender({ id: ID, origin: 'null', url: popupUrl })), false);
    assert.equal(isOwnPage(sender({ id: ID, url: popupUrl })), false, 'a sender without an origin is refused');
    assert.equal(isOwnPage(sender({ id: 'another-extension', origin: EXTENSION_ORIGIN })), false);
  });

  it('are answered for the own pages and left alone for everyone else', async () => {
    registerUiRouter();
    onUiRequest('lock-status', async () => ({ state: 'unlocked' }) as never);
    const listener = messageListeners.at(-1)!;
    const request = { channel: UI_CHANNEL, kind: 'lock-status' };
    assert.deepEqual(await listener(request, sender({ id: ID, origin: EXTENSION_ORIGIN })), { state: 'unlocked' });
    assert.equal(listener(request, sender({ id: ID, origin: 'https://a.example.test', url: popupUrl })), undefined);
    assert.equal(listener(request, sender({ id: ID, url: popupUrl })), undefined);
  });
});
