/**
 * Stored values are checked field by field when read (src/platform/stored-shapes.ts): a good
 * value comes back as stored, a malformed one reads as the default (or loses its bad entries)
 * and is reported, never thrown.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Reader, localReaders, sessionReaders } from '../../src/platform/stored-shapes.ts';

/** What `reader` makes of `stored`, and the problems it reported. */
function read<T>(reader: Reader<T>, stored: unknown): { value: T; problems: string[] } {
  const problems: string[] = [];
  const value = reader(stored, (what) => problems.push(what));
  return { value, problems };
}

const record = {
  baseUrl: 'https://hs.example',
  userId: '@a:hs.example',
  deviceId: 'DEV',
  storeName: 'kirjava-0123456789abcdef',
  rawStoreKey: true,
  claimed: true,
  ed25519: 'abc',
  sites: ['https://app.example'],
  loggedOutAt: 1_700_000_000_000,
};

/** Per key: a good stored value, and malformed ones with what each reads as. */
const cases: {
  [K in keyof typeof localReaders | keyof typeof sessionReaders]?: { good: unknown; bad: [unknown, unknown][] };
} = {
  settings: {
    good: { homeservers: ['https://hs.example'], allowedSites: ['https://app.example'] },
    bad: [['https://hs.example', { homeservers: [], allowedSites: [] }]],
  },
  sharing: {
    good: { a: { policy: 'ask', rooms: { '!r:x': 'cross-signed' }, askTimeoutSeconds: 30 }, b: {} },
    bad: [
      [{ a: { policy: 'everyone' }, b: { policy: 'all' } }, { b: { policy: 'all' } }],
      [{ a: { rooms: { '!r:x': 'nobody' } } }, {}],
      [{ a: { askTimeoutSeconds: '30' } }, {}],
      [['all'], {}],
    ],
  },
  accounts: {
    good: { a: record, b: { ...record, claimed: false, rawStoreKey: undefined } },
    bad: [
      [{ a: record, b: { ...record, storeName: 7 } }, { a: record }],
      [{ a: { ...record, sites: 'https://app.example' } }, {}],
      [{ a: null }, {}],
      ['a', {}],
    ],
  },
  'guard.plainRooms': {
    good: { a: { baseUrl: 'https://hs.example', rooms: ['!r:x'] } },
    bad: [
      [{ a: { baseUrl: 'https://hs.example', rooms: '!r:x' } }, {}],
      [{ a: { rooms: [] } }, {}],
    ],
  },
  'site.denied': {
    good: ['https://a.example'],
    bad: [
      [['https://a.example', 3], ['https://a.example']],
      [{}, []],
    ],
  },
  'server.dismissed': { good: ['https://a.example https://hs.example'], bad: [['x', []]] },
  searchIndexKeys: { good: { a: { enc: 'e', mac: 'm' } }, bad: [[{ a: 'key' }, {}]] },
  'rooms.labels': {
    good: { a: { '!r:x': { name: 'Room', alias: '#r:x' }, '!s:x': {} } },
    bad: [
      [{ a: { '!r:x': { name: 3 } } }, {}],
      [{ a: [] }, {}],
    ],
  },
  tokens: { good: { syt_token: 'a' }, bad: [[{ syt_token: 1 }, {}]] },
  'account.siteRequests': {
    good: [{ accountId: 'a', origin: 'https://app.example', userId: '@a:x', sites: [] }],
    bad: [[[{ accountId: 'a', origin: 'https://app.example', userId: '@a:x' }], []]],
  },
  'site.pending': {
    good: [
      { origin: 'https://app.example', homeserver: 'https://hs.example', userId: null },
      { origin: 'https://app.example', homeserver: 'https://hs.example', userId: '@a:x' },
    ],
    bad: [[[{ origin: 'https://app.example', homeserver: 'https://hs.example' }], []]],
  },
  'server.offers': {
    good: [{ origin: 'https://app.example', homeserver: 'https://hs.example', siteAllowed: false }],
    bad: [[[{ origin: 'https://app.example', homeserver: 'https://hs.example', siteAllowed: 'no' }], []]],
  },
  'guard.tabs': { good: { 12: 'https://app.example' }, bad: [[{ 12: true }, {}]] },
  'coverage.uncovered': { good: { 'https://app.example': 1 }, bad: [[{ 'https://app.example': '1' }, {}]] },
  'keyring.vaultKey': { good: 'a2V5', bad: [[{ key: 'a2V5' }, undefined]] },
};

const readers: Record<string, Reader<unknown>> = { ...localReaders, ...sessionReaders };

describe('Stored values', () => {
  it('every key of both areas has a case here', () => {
    assert.deepEqual(Object.keys(cases).sort(), Object.keys(readers).sort());
  });

  for (const [key, { good, bad }] of Object.entries(cases)) {
    it(`${key}: a good value passes as stored; a malformed one is rejected and reported`, () => {
      const reader = readers[key]!;
      assert.deepEqual(read(reader, good), { value: good, problems: [] });
      for (const [stored, readsAs] of bad) {
        const { value, problems } = read(reader, stored);
        assert.deepEqual(value, readsAs, `${JSON.stringify(stored)} read as ${JSON.stringify(value)}`);
        assert.equal(problems.length, 1, `${JSON.stringify(stored)} was not reported`);
      }
    });
  }

  it('nothing stored reads as the default, with no problem', () => {
    for (const [key, reader] of Object.entries(readers)) {
      assert.deepEqual(read(reader, undefined).problems, [], key);
    }
    assert.deepEqual(read(localReaders.accounts, undefined).value, {});
    assert.deepEqual(read(sessionReaders['site.pending'], undefined).value, []);
  });

  it('an account record keeps the fields older versions left in it, for their migration', () => {
    const legacy = { a: { ...record, storePassphrase: 'ab'.repeat(32) } };
    assert.deepEqual(read(localReaders.accounts, legacy), { value: legacy, problems: [] });
  });
});
