/**
 * The machine's requests on a homeserver that fails now and then, against the in-process
 * fake homeserver: a rate limit is waited out as the server asks, a server error or a
 * request that hangs is tried again after a backoff, a request the server refuses is not,
 * and only an answered request is reported to the machine. When the server keeps failing,
 * its Matrix error surfaces, and a page's send fails with it rather than going out in clear.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { DeviceId, KeysUploadRequest, OlmMachine, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { loadCrypto } from '../../src/crypto/account.ts';
import { type FetchLike, HomeserverUnreachableError, MatrixApiError, MatrixHttp } from '../../src/crypto/core/http.ts';
import { OutgoingRequestProcessor } from '../../src/crypto/core/outgoing-request-processor.ts';
import { DEFAULT_RETRY, type RetryPolicy, sleep } from '../../src/crypto/core/retry.ts';
import { closeOpenedAccounts, openAccount } from '../fixtures/crypto-accounts.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';
/** Retries without the real waits. */
const QUICK: Partial<RetryPolicy> = { firstDelayMs: 1 };

const machines: OlmMachine[] = [];
afterEach(() => {
  for (const machine of machines.splice(0)) machine.close();
  closeOpenedAccounts();
});

const matrixError = (status: number, body: object, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json', ...headers } });

/**
 * A fresh machine of Alice's with its first keys upload, a processor for it on the fake
 * homeserver, and a record of what was reported to the machine and how long each retry waited.
 */
async function givenAKeysUpload(
  options: { retry?: Partial<RetryPolicy>; fetchFn?: (hs: FakeHomeserver) => FetchLike; timeoutMs?: number } = {},
) {
  await loadCrypto();
  const hs = new FakeHomeserver();
  const machine = await OlmMachine.initialize(new UserId(ALICE), new DeviceId('ALICEDEV'));
  machines.push(machine);
  const marked: string[] = [];
  const reporting = new Proxy(machine, {
    get(target, property) {
      if (property === 'markRequestAsSent') {
        return (id: string, type: number, body: string) => {
          marked.push(id);
          return target.markRequestAsSent(id, type, body);
        };
      }
      const value = Reflect.get(target, property);
      return typeof value === 'function' ? value.bind(target) : value;
    },
  });
  const waits: number[] = [];
  const token = hs.login(ALICE, 'ALICEDEV');
  const http = new MatrixHttp(hs.baseUrl, token, options.fetchFn?.(hs) ?? hs.fetchFn, options.timeoutMs);
  const processor = new OutgoingRequestProcessor(reporting, http, undefined, options.retry, async (ms) => {
    waits.push(ms);
    await sleep(Math.min(ms, 200));
  });
  const upload = (await machine.outgoingRequests()).find((r) => r instanceof KeysUploadRequest);
  assert.ok(upload, 'a new machine has keys to upload');
  // Not counted: the upload without keys that first asks the server how many one-time keys it holds.
  const uploads = () => hs.requests.filter((r) => r.path === '/keys/upload' && r.body !== '{}').length;
  return { hs, processor, upload, marked, waits, uploads };
}

describe('Outgoing requests on an unreliable homeserver', () => {
  it('a keys upload that fails with 500 twice, then succeeds, is sent three times and reported once', async () => {
    const { hs, processor, upload, marked, waits, uploads } = await givenAKeysUpload({ retry: QUICK });
    let failures = 2;
    hs.intercept = (_method, path, body) =>
      path === '/keys/upload' && body !== '{}' && failures-- > 0
        ? matrixError(500, { errcode: 'M_UNKNOWN', error: 'try later' })
        : undefined;

    await processor.send(upload);

    assert.equal(uploads(), 3);
    assert.deepEqual(marked, [upload.id]);
    assert.deepEqual(waits, [1, 2], 'the backoff doubles');
  });

  it('a 429 with retry_after_ms is tried again after about that long', async () => {
    const { hs, processor, upload, marked, waits, uploads } = await givenAKeysUpload();
    let limited = true;
    hs.intercept = (_method, path, body) => {
      if (path !== '/keys/upload' || body === '{}' || !limited) return undefined;
      limited = false;
      return matrixError(429, { errcode: 'M_LIMIT_EXCEEDED', error: 'Too many requests', retry_after_ms: 120 });
    };

    const started = Date.now();
    await processor.send(upload);

    assert.deepEqual(waits, [120]);
    assert.ok(Date.now() - started >= 110, `waited ${Date.now() - started} ms`);
    assert.equal(uploads(), 2);
    assert.deepEqual(marked, [upload.id]);
  });

  it('a Retry-After header counts before the body, and a wait beyond the total time is not taken', async () => {
    const { hs, processor, upload, marked, waits, uploads } = await givenAKeysUpload({ retry: { totalMs: 5_000 } });
    hs.intercept = (_method, path, body) =>
      path === '/keys/upload' && body !== '{}'
        ? matrixError(
            429,
            { errcode: 'M_LIMIT_EXCEEDED', error: 'Slow down', retry_after_ms: 10 },
            { 'Retry-After': '30' },
          )
        : undefined;

    await assert.rejects(processor.send(upload), (error) => {
      assert.ok(error instanceof MatrixApiError);
      assert.equal(error.status, 429);
      assert.equal(error.retryAfterMs, 30_000);
      return true;
    });
    assert.equal(uploads(), 1);
    assert.deepEqual(waits, []);
    assert.deepEqual(marked, []);
  });

  it('a 400 is not tried again: the Matrix error surfaces at once and nothing is reported', async () => {
    const { hs, processor, upload, marked, waits, uploads } = await givenAKeysUpload({ retry: QUICK });
    hs.intercept = (_method, path, body) =>
      path === '/keys/upload' && body !== '{}' ? matrixError(400, { errcode: 'M_BAD_JSON', error: 'No' }) : undefined;

    await assert.rejects(processor.send(upload), { name: 'MatrixApiError', status: 400, errcode: 'M_BAD_JSON' });
    assert.equal(uploads(), 1);
    assert.deepEqual(waits, []);
    assert.deepEqual(marked, []);
  });

  it('a request that hangs times out and is tried again', async () => {
    let hanging = true;
    const fetchFn =
      (hs: FakeHomeserver): FetchLike =>
      (input, init) => {
        if (!hanging || !input.endsWith('/keys/upload')) return hs.fetchFn(input, init);
        hanging = false;
        return new Promise((_, reject) => init?.signal?.addEventListener('abort', () => reject(init.signal!.reason)));
      };
    const { processor, upload, marked, waits } = await givenAKeysUpload({ retry: QUICK, timeoutMs: 50, fetchFn });

    const started = Date.now();
    await processor.send(upload);

    assert.ok(Date.now() - started >= 45, `gave up after ${Date.now() - started} ms`);
    assert.deepEqual(waits, [1]);
    assert.deepEqual(marked, [upload.id]);
  });

  it('a homeserver that keeps failing: after the last attempt its Matrix error surfaces', async () => {
    const { hs, processor, upload, marked, waits, uploads } = await givenAKeysUpload({ retry: QUICK });
    hs.intercept = (_method, path, body) =>
      path === '/keys/upload' && body !== '{}'
        ? matrixError(503, { errcode: 'M_UNKNOWN', error: 'Down for maintenance' })
        : undefined;

    await assert.rejects(processor.send(upload), {
      name: 'MatrixApiError',
      status: 503,
      serverMessage: 'Down for maintenance',
    });
    assert.equal(uploads(), DEFAULT_RETRY.attempts);
    assert.deepEqual(waits, [1, 2, 4]);
    assert.deepEqual(marked, []);
  });

  it('a homeserver that cannot be reached: tried again, then the connection error surfaces', async () => {
    const fetchFn = (): FetchLike => async () => {
      throw new TypeError('fetch failed');
    };
    const { processor, upload, marked, waits } = await givenAKeysUpload({ retry: QUICK, fetchFn });

    await assert.rejects(processor.send(upload), HomeserverUnreachableError);
    assert.equal(waits.length, DEFAULT_RETRY.attempts - 1);
    assert.deepEqual(marked, []);
  });

  it('a send into an encrypted room fails with the Matrix error when keys cannot be claimed', async () => {
    const hs = new FakeHomeserver();
    const alice = await openAccount(hs, ALICE, 'ALICEDEV', { claim: true, retry: QUICK });
    await openAccount(hs, BOB, 'BOBDEV', { claim: true });
    hs.setEncrypted(ROOM);
    hs.setMembership(ROOM, ALICE, 'join');
    hs.setMembership(ROOM, BOB, 'join');
    hs.intercept = (_method, path) =>
      path === '/keys/claim' ? matrixError(502, { errcode: 'M_UNKNOWN', error: 'Bad gateway' }) : undefined;

    await assert.rejects(alice.prepareSend(ROOM, 'm.room.message', '{"msgtype":"m.text","body":"hi"}'), {
      name: 'MatrixApiError',
      status: 502,
    });
    assert.equal(hs.requests.filter((r) => r.path === '/keys/claim').length, DEFAULT_RETRY.attempts);
    assert.equal(hs.requests.filter((r) => r.path.includes('/send/')).length, 0);
  });
});
