/**
 * The fast decryption path (an in-memory mirror of the room keys plus the persistent
 * machine's shield per session and sender) gives exactly what the persistent machine gives,
 * event for event: unverified, cross-signed, blacklisted, forged and unknown senders,
 * imported keys, replays, missing keys; trust changes reach it; logout empties it.
 */
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { CryptoAccount } from '../../src/crypto/account.ts';
import { RoomEventDecryptor, type RoomEvent } from '../../src/crypto/receive/event-decryptor.ts';
import { RoomId, ShieldStateCode } from '@matrix-org/matrix-sdk-crypto-wasm';
import { senderInfoOf } from '../../src/crypto/receive/fast-decryption.ts';
import { encryptKeyFile } from '../../src/crypto/keys/key-file.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';
import { closeOpenedAccounts, openAccount, sendText } from '../fixtures/crypto-accounts.ts';

afterEach(closeOpenedAccounts);

type Json = Record<string, any>;
const ROOM = '!fast:example.test';
const BOB = '@bob:example.test';

/** A room with Bob (the reader) and the given senders, every device's keys uploaded. */
async function roomWith(senders: string[]) {
  const hs = new FakeHomeserver();
  const tokens = new Map<string, string>();
  const open = async (userId: string, deviceId: string) => {
    const token = hs.login(userId, deviceId);
    tokens.set(userId, token);
    return openAccount(hs, userId, deviceId, { claim: true, accessToken: token });
  };
  const bob = await open(BOB, 'BOBDEV');
  const others: CryptoAccount[] = [];
  for (const [i, userId] of senders.entries()) others.push(await open(userId, `DEV${i}`));
  hs.setEncrypted(ROOM);
  for (const userId of [BOB, ...senders]) hs.setMembership(ROOM, userId, 'join');
  /** Makes `account` cross-sign its own device (MSC1756 bootstrap, as Element does at first login). */
  const crossSign = async (account: CryptoAccount) => {
    const requests = await account.machine.bootstrapCrossSigning(true);
    for (const [path, body] of [
      ['/keys/device_signing/upload', requests.uploadSigningKeysRequest.body],
      ['/keys/signatures/upload', requests.uploadSignaturesRequest.body],
    ] as const) {
      const answer = await hs.fetchFn(`${hs.baseUrl}/_matrix/client/v3${path}`, {
        method: 'POST',
        headers: { Authorization: `Bearer ${tokens.get(account.identity.userId)}` },
        body,
      });
      assert.equal(answer.status, 200);
    }
  };
  /** Bob's sync: to-device keys, device list changes, the machine's key queries answered. */
  /** Bob sends once: the room's members become tracked, their devices queried. */
  const bobKnowsMembers = async () => {
    await sendText(hs, bob, ROOM, 'hello all');
  };
  const bobSyncs = async (timeline: Json[] = []) => {
    const body = await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: timeline } }));
    await bob.flushOutgoingQueued();
    return JSON.parse(body).rooms.join[ROOM]?.timeline.events as Json[];
  };
  return { hs, bob, others, crossSign, bobSyncs, bobKnowsMembers };
}

/**
 * What Bob's account gives for `events` (the fast path: the mirror is fed first) against
 * what a decryptor on Bob's persistent machine alone gives; returns how many events the
 * account decrypted without the persistent machine's decryptRoomEvent.
 */
async function compare(bob: CryptoAccount, events: Json[]): Promise<{ fast: number; outputs: RoomEvent[] }> {
  await bob.fastDecryption.mirror.feed();
  const reference = new RoomEventDecryptor(bob.machine);
  const machine = bob.machine as unknown as { decryptRoomEvent: (...args: unknown[]) => Promise<unknown> };
  const original = machine.decryptRoomEvent.bind(machine);
  let persistent = 0;
  machine.decryptRoomEvent = (...args) => ((persistent += 1), original(...args));
  let outputs: RoomEvent[];
  try {
    outputs = JSON.parse(await bob.processHistory(ROOM, JSON.stringify({ chunk: events }))).chunk;
  } finally {
    delete (machine as { decryptRoomEvent?: unknown }).decryptRoomEvent;
  }
  for (const [i, event] of events.entries()) {
    assert.deepEqual(outputs[i], await reference.decrypt(ROOM, event), `event ${i} (${event.sender})`);
  }
  return { fast: events.length - persistent, outputs };
}

const info = (event: RoomEvent) => event.unsigned?.['io.kirjava.encryption'] as Json;

test('given unverified senders, when Bob reads their messages, the fast path gives what the store gives', async () => {
  const { hs, bob, others, bobSyncs } = await roomWith(['@alice:example.test', '@carol:example.test']);
  const events: Json[] = [];
  for (let i = 0; i < 12; i++) events.push(await sendText(hs, others[i % 2]!, ROOM, `message ${i}`));
  await bobSyncs();
  const { fast, outputs } = await compare(bob, events);
  assert.equal(fast, events.length, 'every event took the fast path');
  assert.deepEqual(
    outputs.map((e) => e.content?.body),
    events.map((_, i) => `message ${i}`),
  );
  assert.equal(info(outputs[0]!).sender_device, 'DEV0');
});

test('given a sender who cross-signs her device after Bob read her, the next shields are the store’s', async () => {
  const { hs, bob, others, crossSign, bobSyncs, bobKnowsMembers } = await roomWith(['@alice:example.test']);
  const alice = others[0]!;
  await bobKnowsMembers();
  await sendText(hs, alice, ROOM, 'unsigned');
  await bobSyncs();
  const read = await sendText(hs, alice, ROOM, 'unsigned two');
  const before = await compare(bob, [read]);
  assert.equal(before.fast, 1);
  await crossSign(alice);
  await bobSyncs(); // device list change: Bob queries Alice's keys and learns her cross-signing
  // The event read before, asked again of the fast path: its cached shield was dropped.
  const json = JSON.stringify(read);
  const again = await bob.fastDecryption.decrypt(ROOM, read.content.session_id, read.sender, json);
  const store = senderInfoOf(await bob.machine.getRoomEventEncryptionInfo(json, new RoomId(ROOM)));
  assert.deepEqual(again?.shield, store.shield);
  assert.notEqual(store.shield.code, ShieldStateCode.UnsignedDevice);
  const after = await compare(bob, [await sendText(hs, alice, ROOM, 'signed')]);
  assert.equal(after.fast, 1);
  assert.notDeepEqual(info(after.outputs[0]!).shield, info(before.outputs[0]!).shield, 'cross-signing changed it');
  await bob.devices.apply('@alice:example.test', 'DEV0', 'verify');
  assert.equal((await compare(bob, [await sendText(hs, alice, ROOM, 'verified')])).fast, 1);
});

test('given Bob blacklists a sender, the cached shield is dropped and matches the store again', async () => {
  const { hs, bob, others, bobSyncs, bobKnowsMembers } = await roomWith(['@alice:example.test']);
  await bobKnowsMembers();
  const first = await sendText(hs, others[0]!, ROOM, 'before');
  await bobSyncs();
  const shieldBefore = info((await compare(bob, [first])).outputs[0]!).shield;
  await bob.devices.apply('@alice:example.test', 'DEV0', 'blacklist');
  const { fast, outputs } = await compare(bob, [await sendText(hs, others[0]!, ROOM, 'after')]);
  assert.equal(fast, 1);
  assert.deepEqual(shieldBefore, info(outputs[0]!).shield, 'a blacklisted sender keeps its shield in non-strict mode');
});

test('given a forged sender, a replay and a missing key, both paths warn alike', async () => {
  const { hs, bob, others, bobSyncs } = await roomWith(['@alice:example.test', '@carol:example.test']);
  const genuine = await sendText(hs, others[0]!, ROOM, 'from alice');
  await bobSyncs();
  // Carol's key never reaches Bob: an unknown session.
  const unknown = await sendText(hs, others[1]!, ROOM, 'lost');
  hs.syncFor(BOB, 'BOBDEV'); // drops Bob's pending to-device events, Carol's key among them
  const forged = { ...genuine, event_id: '$forged', sender: '@carol:example.test' };
  const forgedAsBob = { ...genuine, event_id: '$forged-bob', sender: BOB };
  const replay = { ...genuine, event_id: '$replay' };
  const { outputs } = await compare(bob, [genuine, forged, forgedAsBob, unknown]);
  assert.equal(info(outputs[1]!).forged_sender, true);
  assert.equal(info(outputs[2]!).forged_sender, true);
  assert.equal(info(outputs[3]!).error_code, 'MissingRoomKey');
  // A replay is flagged by each decryptor's own memory: Bob's account has seen `genuine`.
  const again = JSON.parse(await bob.processHistory(ROOM, JSON.stringify({ chunk: [replay] }))).chunk[0];
  assert.equal(info(again).replay_of, genuine.event_id);
});

test('given keys imported from a file, the fast path gives their grey shield, and late keys still heal', async () => {
  const { hs, bob, others, bobSyncs } = await roomWith(['@alice:example.test']);
  const lost = await sendText(hs, others[0]!, ROOM, 'late');
  hs.syncFor(BOB, 'BOBDEV'); // the key never arrives by to-device
  const notice = (await bobSyncs([lost]))[0]!;
  assert.equal(info(notice).error_code, 'MissingRoomKey');
  const exported = await others[0]!.machine.exportRoomKeys(() => true);
  const file = await encryptKeyFile(exported, 'pass', 1000);
  await bob.keys.importKeyFile(file, 'pass');
  const healed = await bobSyncs();
  assert.equal(healed.at(-1)?.content?.['m.new_content']?.body, 'late', 'the late key healed the event');
  const { fast, outputs } = await compare(bob, [await sendText(hs, others[0]!, ROOM, 'same session')]);
  assert.equal(fast, 1);
  assert.equal(info(outputs[0]!).shield.color, 'grey');
});

test('given a logout, the mirror holds nothing and decryption declines', async () => {
  const { hs, bob, others, bobSyncs } = await roomWith(['@alice:example.test']);
  const event = await sendText(hs, others[0]!, ROOM, 'bye');
  await bobSyncs();
  await bob.fastDecryption.mirror.feed();
  assert.ok(bob.fastDecryption.mirror.size > 0);
  await bob.shutdown();
  assert.equal(bob.fastDecryption.mirror.size, 0);
  bob.close(); // as the test hooks do: closing twice is harmless
  assert.equal(
    await bob.fastDecryption.decrypt(ROOM, event.content.session_id, event.sender, JSON.stringify(event)),
    undefined,
  );
});

test('given a session Bob got late and its earlier messages later from a key file, it is copied again', async () => {
  const { hs, others } = await roomWith(['@alice:example.test']);
  const alice = others[0]!;
  const early = [];
  for (let i = 0; i < 3; i++) early.push(await sendText(hs, alice, ROOM, `early ${i}`));
  // Bob's new device gets the session from the next message on.
  const phone = await openAccount(hs, BOB, 'BOBPHONE', { claim: true });
  await alice.processSync(hs.syncFor('@alice:example.test', 'DEV0'));
  await alice.flushOutgoingQueued();
  const late = await sendText(hs, alice, ROOM, 'late');
  assert.equal(late.content.session_id, early[0]!.content.session_id, 'Alice started a new session');
  await phone.processSync(hs.syncFor(BOB, 'BOBPHONE'));
  await phone.flushOutgoingQueued();
  const lateRead = await compare(phone, [late]);
  assert.equal(lateRead.outputs[0]!.content?.body, 'late');
  assert.equal(lateRead.fast, 1);

  // Alice's own copy, from the first message on: the session improves in the phone's store.
  const file = await encryptKeyFile(await alice.machine.exportRoomKeys(() => true), 'pass', 1000);
  await phone.keys.importKeyFile(file, 'pass');
  const first = await compare(phone, [early[0]!]);
  assert.equal(first.outputs[0]!.content?.body, 'early 0');
  assert.equal(first.fast, 0, 'the copy decrypted a message before its first index');
  const next = await compare(phone, early.slice(1));
  assert.deepEqual(
    next.outputs.map((e) => e.content?.body),
    ['early 1', 'early 2'],
  );
  assert.equal(next.fast, 2, 'the earlier messages still go to the persistent store');
});
