/**
 * The send guard's rules as data: which URLs each rule's pattern matches, checked with the
 * regexes themselves (the constructs used are the same in RE2 and JavaScript).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildGuardRules, roomIdPattern } from '../../src/background/send-guard-rules.ts';

const base = 'https://matrix.example.org';
const plainRoom = '!plain:example.org';

function rules(plainRooms: string[] = [plainRoom], regexBudget = 100) {
  return buildGuardRules({
    homeservers: [base],
    allowedSites: ['https://app.example.org', 'http://127.0.0.1:8080'],
    plainRooms: new Map([[base, plainRooms]]),
    tabIds: [7],
    extensionId: 'abcdefghijklmnop',
    regexBudget,
  });
}

const allowed = (url: string, built = rules()) =>
  built.rules.some(
    (rule) =>
      rule.action.type === 'allow' &&
      new RegExp(rule.condition.regexFilter!, rule.condition.isUrlFilterCaseSensitive ? '' : 'i').test(url),
  );

describe('Send guard rules', () => {
  it('block every send from the allowed sites (by host) and from their tabs, never the extension itself', () => {
    const blocks = rules().rules.filter((rule) => rule.action.type === 'block');
    assert.equal(blocks.length, 2);
    for (const rule of blocks) {
      assert.equal(rule.condition.urlFilter, `|${base}/_matrix/client/*/rooms/*/send/`);
      assert.deepEqual(rule.condition.requestMethods, ['put', 'post']);
      assert.deepEqual(rule.condition.resourceTypes, ['xmlhttprequest', 'ping', 'other']);
      assert.deepEqual(rule.condition.excludedInitiatorDomains, ['abcdefghijklmnop']);
    }
    assert.deepEqual(blocks[0].condition.initiatorDomains, ['app.example.org', '127.0.0.1']);
    assert.deepEqual(blocks[1].condition.tabIds, [7]);
    assert.ok(rules().rules.every((rule) => rule.priority === (rule.action.type === 'block' ? 1 : 2)));
  });

  it('no allowed site, no rules: nothing is touched', () => {
    const built = buildGuardRules({ homeservers: [base], allowedSites: [], plainRooms: new Map(), tabIds: [], extensionId: 'x', regexBudget: 10 });
    assert.deepEqual(built.rules, []);
  });

  it('let m.room.encrypted pass under every prefix, with or without a transaction id', () => {
    for (const url of [
      `${base}/_matrix/client/v3/rooms/%21enc%3Aexample.org/send/m.room.encrypted/txn1`,
      `${base}/_matrix/client/r0/rooms/!enc:example.org/send/m.room.encrypted`,
      `${base}/_matrix/client/api/v1/rooms/!enc:example.org/send/m.room.encrypted/`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.encrypted/t?access_token=abc`,
    ]) {
      assert.ok(allowed(url), url);
    }
  });

  it('never let a plaintext type dressed as m.room.encrypted pass', () => {
    for (const url of [
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/M.ROOM.ENCRYPTED/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.encryptedx/t`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t?x=/send/m.room.encrypted`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m.room.message/t/../m.room.encrypted`,
      `${base}/_matrix/client/v3/rooms/!enc:example.org/send/m%2Eroom.encrypted/t`,
      `${base}/_matrix/client/v4/rooms/!enc:example.org/send/m.room.encrypted/t`,
    ]) {
      assert.ok(!allowed(url), url);
    }
  });

  it('let sends into a known unencrypted room pass in every usual spelling of its id, and only that room', () => {
    for (const id of ['!plain:example.org', '%21plain%3Aexample.org', '!plain%3aexample.org', '%21plain:example.org']) {
      assert.ok(allowed(`${base}/_matrix/client/v3/rooms/${id}/send/m.room.message/t`), id);
    }
    for (const id of ['!PLAIN:example.org', '!plain:example.org.evil', '!plainx:example.org', '!pla%69n:example.org']) {
      assert.ok(!allowed(`${base}/_matrix/client/v3/rooms/${id}/send/m.room.message/t`), id);
    }
    assert.ok(!allowed(`https://other.example.org/_matrix/client/v3/rooms/!plain:example.org/send/m.room.message/t`));
  });

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
    assert.deepEqual([...built.plainRoomsAllowed.get(base)!], rooms.slice(7));
    assert.ok(allowed(`${base}/_matrix/client/v3/rooms/!room9:example.org/send/m.room.message/t`, built));
    assert.ok(!allowed(`${base}/_matrix/client/v3/rooms/!room0:example.org/send/m.room.message/t`, built));
  });
});
