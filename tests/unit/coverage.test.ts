/**
 * Coverage: a site whose /sync the browser saw complete but the worker never served through
 * the hook is reported as not covered. Only a sync answered with the account's confirmed token
 * counts as served: a page cannot cover a Web Worker's syncs by reporting made-up ones.
 */
// First: installs the fake extension APIs before any module reaches webextension-polyfill.
import { clearFakeStorage, completedListeners, fakeBrowser } from '../fixtures/fake-browser.ts';
import assert from 'node:assert/strict';
import { afterEach, beforeEach, describe, it, mock } from 'node:test';
import type { Runtime } from '../../src/platform/ext.ts';
import { ClientCoverage } from '../../src/background/coverage.ts';
import type { PageRequest } from '../../src/shared/messages.ts';

const SITE = 'https://client.example.test';
const HS = 'https://hs.example.test';
const sync = { kind: 'sync', baseUrl: HS, token: 't', body: '{}' } as unknown as PageRequest;
const sender = { id: fakeBrowser.runtime.id, origin: SITE, tab: {} } as unknown as Runtime.MessageSender;
const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The browser reports a completed /sync of SITE; returns when its check is waiting out the window. */
async function syncCompleted(): Promise<void> {
  completedListeners.at(-1)!({
    method: 'GET',
    statusCode: 200,
    url: `${HS}/_matrix/client/v3/sync?timeout=30000`,
    initiator: SITE,
  });
  for (let i = 0; i < 5; i++) await settle();
}

/** Lets the report window pass and every check finish. */
async function windowPasses(): Promise<void> {
  mock.timers.tick(10_000);
  for (let i = 0; i < 5; i++) await settle();
}

const uncovered = async () => (await new ClientCoverage().recentlyUncovered()).map((client) => client.origin);

describe('ClientCoverage', () => {
  beforeEach(async () => {
    clearFakeStorage();
    await fakeBrowser.storage.local.set({ settings: { homeservers: [HS], allowedSites: [SITE] } });
    mock.timers.enable({ apis: ['setTimeout', 'Date'], now: Date.UTC(2026, 0, 1) });
  });
  afterEach(() => mock.timers.reset());

  it('counts a sync the worker served with a confirmed token', async () => {
    const coverage = new ClientCoverage();
    coverage.hookReported(sync, sender, Promise.resolve(true));
    await syncCompleted();
    await windowPasses();
    assert.deepEqual(await uncovered(), []);
  });

  it('does not count a reported sync the worker refused (made-up token, unbound site)', async () => {
    const coverage = new ClientCoverage();
    coverage.hookReported(sync, sender, Promise.resolve(false));
    await syncCompleted();
    await windowPasses();
    assert.deepEqual(await uncovered(), [SITE]);
  });

  it('waits for a sync still being served before it decides', async () => {
    const coverage = new ClientCoverage();
    let answer!: (ok: boolean) => void;
    coverage.hookReported(sync, sender, new Promise<boolean>((resolve) => (answer = resolve)));
    await syncCompleted();
    await windowPasses();
    answer(true);
    for (let i = 0; i < 5; i++) await settle();
    assert.deepEqual(await uncovered(), []);
  });

  it('reports a sync the hook never handed over', async () => {
    new ClientCoverage();
    await syncCompleted();
    await windowPasses();
    assert.deepEqual(await uncovered(), [SITE]);
  });
});
