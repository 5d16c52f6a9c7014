/**
 * The send guard's rules as data: which URLs each rule's pattern matches, checked with the
 * regexes themselves (the constructs used are the same in RE2 and JavaScript), and the
 * block rules' `urlFilter` with the declarativeNetRequest matching it documents.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGuardRules, GUARDED_RESOURCE_TYPES, roomIdPattern } from '../../src/background/send-guard-rules.ts';
import type { BrowserKind } from '../../src/platform/ext.ts';

const base = 'https://matrix.example.org';
const plainRoom = '!plain:example.org';

function rules(plainRooms: string[] = [plainRoom], regexBudget = 100, browser: BrowserKind = 'chromium') {
  return buildGuardRules({
    allowedSites: ['https://app.example.org', 'http://127.0.0.1:8080'],
    plainRooms,
    tabIds: [7],
    extensionHost: 'abcdefghijklmnop',
    browser,
    regexBudget,
  });
}

const allowed = (url: string, built = rules()) =>
  built.rules.some(
    (rule) =>
      rule.action.type === 'allow' &&
      new RegExp(rule.condition.regexFilter!, rule.condition.isUrlFilterCaseSensitive ? '' : 'i').test(url),
  );

/**
 * declarativeNetRequest's `urlFilter` without anchors: the pieces between `*` occur in
 * this order anywhere in the URL, case-insensitively (the default).
 */
const urlFilterMatches = (filter: string, url: string) =>
  new RegExp(
    filter
      .split('*')
      .map((part) => part.replace(/[\\^$.+?()[\]{}|/]/g, '\\$&'))
      .join('.*'),
    'i',
  ).test(url);

const blocked = (url: string, built = rules()) =>
  built.rules.some((rule) => rule.action.type === 'block' && urlFilterMatches(rule.condition.urlFilter!, url));

/** One send to the same room on the same homeserver, spelled with other host names. */
const hostSpellings = [
  'https://matrix.example.org',
  'http://127.0.0.1:8008',
  'http://localhost:8008',
  'http://[::ffff:7f00:1]:8008',
  'http://[::1]:8008',
  'https://chat.example.net',
  'https://example.org/matrix',
];

describe('Send guard rules', () => {
  it('block every send from the allowed sites (by host) and from their tabs, never the extension itself', () => {
    const blocks = rules().rules.filter((rule) => rule.action.type === 'block');
    assert.equal(blocks.length, 2);
    for (const rule of blocks) {
      assert.deepEqual(rule.condition.requestMethods, ['put', 'post']);
      assert.deepEqual(rule.condition.excludedInitiatorDomains, ['abcdefghijklmnop']);
    }
    assert.deepEqual(blocks[0].condition.initiatorDomains, ['app.example.org', '127.0.0.1']);
    assert.deepEqual(blocks[1].condition.tabIds, [7]);
    assert.ok(rules().rules.every((rule) => rule.priority === (rule.action.type === 'block' ? 1 : 2)));
  });

  it('name no host: the same send is blocked whatever the homeserver is called', () => {
    for (const rule of rules().rules) {
      assert.equal(rule.condition.requestDomains, undefined);
      const filter = rule.condition.urlFilter ?? rule.condition.regexFilter ?? '';
      assert.match(filter, /^(\^\[\^\?#\]\*)?\/_matrix\//, 'the filter starts at /_matrix/, after any host');
    }
    for (const host of hostSpellings) {
      const url = `${host}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t`;
      assert.ok(blocked(url), url);
      assert.ok(!allowed(url), url);
    }
  });

  it('cover navigations, form posts, beacons and every other resource type Chromium has', () => {
    const types: readonly string[] = GUARDED_RESOURCE_TYPES.chromium;
    for (const type of ['main_frame', 'sub_frame', 'xmlhttprequest', 'ping', 'other', 'object', 'media']) {
      assert.ok(types.includes(type), type);
    }
    for (const type of ['webtransport', 'webbundle']) assert.ok(types.includes(type), type);
    // Chromium refuses a rule that names `beacon` (Firefox's type for sendBeacon; Chromium's is `ping`).
    assert.ok(!types.includes('beacon'));
    for (const rule of rules().rules) assert.deepEqual(rule.condition.resourceTypes, types);
  });

  it("in Firefox, cover sendBeacon's own `beacon` type and Firefox's other types, none it refuses", () => {
    const types: readonly string[] = GUARDED_RESOURCE_TYPES.firefox;
    for (const type of ['main_frame', 'sub_frame', 'xmlhttprequest', 'ping', 'beacon', 'other', 'object', 'media']) {
      assert.ok(types.includes(type), type);
    }
    for (const type of ['object_subrequest', 'xslt', 'xml_dtd', 'imageset', 'web_manifest', 'json']) {
      assert.ok(types.includes(type), type);
    }
    // Firefox 153 refuses the whole rule for these ("Invalid enumeration value").
    for (const type of ['webtransport', 'webbundle']) assert.ok(!types.includes(type), type);
    const built = rules([plainRoom], 100, 'firefox');
    for (const rule of built.rules) assert.deepEqual(rule.condition.resourceTypes, types);
    // The same rules otherwise: block and allow patterns do not depend on the browser.
    const withoutTypes = (r: typeof built) =>
      r.rules.map(({ condition: { resourceTypes: _, ...c }, ...rest }) => ({ ...rest, c }));
    assert.deepEqual(withoutTypes(built), withoutTypes(rules()));
  });

  it("exempt the extension's own requests by the host of its pages", () => {
    for (const rule of rules().rules) assert.deepEqual(rule.condition.excludedInitiatorDomains, ['abcdefghijklmnop']);
  });

  it('block the odd spellings a homeserver or the proxy in front of it might still route', () => {
    for (const url of [
      `${base}/_matrix/client/v3/rooms/%21enc%3Aexample.org/send/m.room.message/t`,
      `${base}/_MATRIX/CLIENT/V3/ROOMS/!enc:example.org/SEND/m.room.message/t`,
      `${base}/_matrix//client//v3//rooms//!enc:example.org//send//m.room.message`,
      `${base}/_matrix/client/v4/rooms/!enc:example.org/send/m.room.message/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message?access_token=abc`,
    ]) {
      assert.ok(blocked(url), url);
    }
    for (const url of [
      `${base}/_matrix/client/v3/sync`,
      `${base}/_matrix/client/v3/rooms/!r:example.org/state/m.room.name/`,
    ]) {
      assert.ok(!blocked(url), url);
    }
  });

  it('allowed sites but no homeserver configured: the block rules are installed all the same', () => {
    const built = buildGuardRules({
      allowedSites: ['https://app.example.org'],
      plainRooms: [],
      tabIds: [],
      extensionHost: 'x',
      browser: 'chromium',
      regexBudget: 10,
    });
    assert.equal(built.rules.filter((rule) => rule.action.type === 'block').length, 1);
    assert.ok(blocked(`${base}/_matrix/client/v3/rooms/!r:example.org/send/m.room.message/t`, built));
  });

  it('no allowed site, no rules: nothing is touched', () => {
    const built = buildGuardRules({
      allowedSites: [],
      plainRooms: [plainRoom],
      tabIds: [],
      extensionHost: 'x',
      browser: 'chromium',
      regexBudget: 10,
    });
    assert.deepEqual(built.rules, []);
  });

  it('let m.room.encrypted pass under every prefix and host, with or without a transaction id', () => {
    for (const host of hostSpellings) {
      for (const url of [
        `${host}/_matrix/client/v3/rooms/%21enc%3Aexample.org/send/m.room.encrypted/txn1`,
        `${host}/_matrix/client/r0/rooms/!enc:example.org/send/m.room.encrypted`,
        `${host}/_matrix/client/api/v1/rooms/!enc:example.org/send/m.room.encrypted/`,
        `${host}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.encrypted/t?access_token=abc`,
      ]) {
        assert.ok(allowed(url), url);
      }
    }
  });

  it('never let a plaintext type dressed as m.room.encrypted pass', () => {
    for (const url of [
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/M.ROOM.ENCRYPTED/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.encryptedx/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t?x=/send/m.room.encrypted`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t` +
        `?x=/_matrix/client/v3/rooms/!e/send/m.room.encrypted/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t/../m.room.encrypted`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m%2Eroom.encrypted/t`,
      `${base}/_matrix/client/v4/rooms/!enc:example.org/send/m.room.encrypted/t`,
    ]) {
      assert.ok(!allowed(url), url);
    }
  });

  it(
    'let sends into a known unencrypted room pass on every host, ' +
      'in every usual spelling of its id, and only that room',
    () => {
      for (const host of hostSpellings) {
        for (const id of [
          '!plain:example.org',
          '%21plain%3Aexample.org',
          '!plain%3aexample.org',
          '%21plain:example.org',
        ]) {
          assert.ok(allowed(`${host}/_matrix/client/v3/rooms/${id}/send/m.room.message/t`), `${host} ${id}`);
        }
      }
      for (const id of [
        '!PLAIN:example.org',
        '!plain:example.org.evil',
        '!plainx:example.org',
        '!pla%69n:example.org',
      ]) {
        assert.ok(!allowed(`${base}/_matrix/client/v3/rooms/${id}/send/m.room.message/t`), id);
      }
      // Named in the query string, the plain room lends its rule to no other room.
      assert.ok(
        !allowed(
          `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t` +
            `?/_matrix/client/v3/rooms/!plain:example.org/send/`,
        ),
      );
    },
  );

  it('room id patterns escape what regexes would read as syntax', () => {
    const pattern = new RegExp(`^${roomIdPattern('!a.b+c:[::1]:8448')}$`);
    assert.ok(pattern.test('!a.b+c:[::1]:8448'));
    assert.ok(pattern.test('%21a.b+c%3A%5B%3A%3A1%5D%3A8448'));
    assert.ok(!pattern.test('!aXbbc:[::1]:8448'));
  });

  it('past the regex budget the most recently used unencrypted rooms keep their rules', () => {
    const rooms = Array.from({ length: 10 }, (_, i) => `!room${i}:example.org`);
    const built = rules(rooms, 4); // 1 goes to the m.room.encrypted rule
    assert.equal(built.plainRoomsLeftOut, 7);
    assert.deepEqual([...built.plainRoomsAllowed], rooms.slice(7));
    assert.ok(allowed(`${base}/_matrix/client/v3/rooms/!room9:example.org/send/m.room.message/t`, built));
    assert.ok(!allowed(`${base}/_matrix/client/v3/rooms/!room0:example.org/send/m.room.message/t`, built));
  });
});
