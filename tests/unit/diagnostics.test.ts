/**
 * The diagnostics report is safe to paste into a public bug report: given a view whose
 * accounts, problems and log lines carry a token, user ids, a room id, an event id, message
 * text and a curve25519 key, none of them is in the report, while what a maintainer needs
 * (versions, states, hosts, rule counts, Matrix error codes) is.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type DiagnosticsView, diagnosticsReport, redact } from '../../src/shared/diagnostics.ts';

const TOKEN = 'syt_YWxpY2U_ZxJkWkVuUvtLmNoPqRsT_0hGdZt';
const OPAQUE_TOKEN = 'Xk3j9QpL0aZ7bW2cR5';
const USER = '@alice:example.org';
const OTHER_USER = '@bob.smith:matrix.example.org:8448';
const ROOM = '!OGEhHVWSdvArJzumhm:example.org';
const ALIAS = '#secret-plans:example.org';
const EVENT = '$Rqnc-F-dvnEYJTyHq_iKxU2bZ1CI92-kuZq3a5lr5Zg';
const MESSAGE = 'meet me at the old pier at nine';
const CURVE_KEY = 'b4B6rT9n8kkZ0e5x3cKq8h7w2ZP1oN0yQmHkLzV3uXs';
const SESSION_HEX = '9f86d081884c7d659a2feaa0c55ad015';
const SECRETS = [TOKEN, OPAQUE_TOKEN, USER, 'alice', 'bob.smith', ROOM, 'OGEhHVWSdvArJzumhm', ALIAS, 'secret-plans'];
const ALL_SECRETS = [...SECRETS, EVENT, MESSAGE, CURVE_KEY, SESSION_HEX];

const problems = [
  `PUT https://matrix.example.org/_matrix/client/v3/rooms/${encodeURIComponent(ROOM)}/send/m.room.message/t1` +
    `?access_token=${TOKEN} failed: {"errcode":"M_FORBIDDEN","error":"${USER} may not send"}`,
  `could not decrypt ${EVENT} in ${ROOM} from ${OTHER_USER}: sender key ${CURVE_KEY} session ${SESSION_HEX}`,
  `send of "${MESSAGE}" to ${ALIAS} refused; Authorization: Bearer ${OPAQUE_TOKEN}`,
  `body '${MESSAGE}' room=${ROOM} user=${USER}`,
];

const view: DiagnosticsView = {
  extensionVersion: '0.1.0',
  browser: 'Firefox 153.0',
  os: 'X11',
  cryptoLibrary: 'matrix-sdk-crypto-wasm v18.9.0 (matrix-sdk-crypto 0.19.1, vodozemac 0.11.0)',
  lock: { hasPassphrase: true, locked: false },
  storageFull: false,
  homeservers: [{ host: 'matrix.example.org', access: true }],
  sites: [{ origin: 'https://app.example.org', access: false }],
  accounts: [
    {
      label: 'account 1',
      homeserverHost: 'matrix.example.org',
      homeserverConfigured: true,
      homeserverAccess: true,
      state: 'error',
      sites: [{ origin: 'https://app.example.org', allowed: true, access: false }],
      problem: `${USER} on ${ROOM}: token ${TOKEN} was refused`,
    },
  ],
  sendGuardRules: { block: 3, allow: 2 },
  uncoveredSites: [],
  recentProblems: problems.map((text, i) => ({ time: Date.UTC(2025, 0, 1, 12, i), level: 'error', text })),
};

describe('The diagnostics report', () => {
  it('leaves out tokens, user ids, rooms, events, message text and keys', () => {
    const report = diagnosticsReport(view);
    for (const secret of ALL_SECRETS) assert.ok(!report.includes(secret), `${secret} in\n${report}`);
    for (const secret of [encodeURIComponent(ROOM), encodeURIComponent(USER)]) assert.ok(!report.includes(secret));
  });

  it('keeps versions, states, hosts, rule counts and Matrix error codes', () => {
    const report = diagnosticsReport(view);
    for (const kept of [
      'Kirjava 0.1.0',
      'Firefox 153.0',
      'matrix-sdk-crypto-wasm v18.9.0',
      'vodozemac 0.11.0',
      'account 1: error, homeserver matrix.example.org',
      'site https://app.example.org: allowed yes, host access NO',
      '3 block, 2 allow',
      '"M_FORBIDDEN"',
      'access_token=[token]',
      'Bearer [token]',
      '/send/m.room.message/',
    ]) {
      assert.ok(report.includes(kept), `${kept} missing from\n${report}`);
    }
  });

  it('redacts each kind of secret on its own', () => {
    for (const secret of [TOKEN, OPAQUE_TOKEN, USER, OTHER_USER, ROOM, ALIAS, EVENT, MESSAGE, CURVE_KEY, SESSION_HEX]) {
      const text = secret === MESSAGE ? `failed to send "${MESSAGE}"` : `failed near ${secret} here`;
      const clean = redact(text);
      assert.ok(!clean.includes(secret), `${secret} survived: ${clean}`);
      assert.ok(clean.startsWith('failed'), clean);
    }
    assert.equal(redact('declarativeNetRequest rules refused'), 'declarativeNetRequest rules refused');
    assert.equal(redact("Kirjava's options"), "Kirjava's options");
  });
});
