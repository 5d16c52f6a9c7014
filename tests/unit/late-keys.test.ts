/**
 * Late keys against the in-process fake homeserver: an event Bob cannot decrypt is healed
 * with an `m.replace` edit in a later /sync once its key comes from the server-side key
 * backup, fetched for just that session. Real Olm/Megolm and real backup encryption (the
 * backup body is what Alice's machine uploads); only the server is fake.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { BackupDecryptionKey } from '@matrix-org/matrix-sdk-crypto-wasm';
import { ENCRYPTION_INFO_KEY } from '../../src/crypto/receive/event-decryptor.ts';
import { MEGOLM_BACKUP_V1 } from '../../src/crypto/keys/key-backup.ts';
import { closeOpenedAccounts, openAccount } from '../fixtures/crypto-accounts.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

type Json = Record<string, any>;

const ALICE = '@alice:example.test';
const BOB = '@bob:example.test';
const ROOM = '!secret:example.test';

/** The fake server's key backup: one version, sessions as uploaded. */
class FakeBackup {
  readonly rooms: Record<string, { sessions: Record<string, Json> }> = {};
  readonly sessionFetches: string[] = [];

  constructor(readonly publicKey: string) {}

  wrap(hs: FakeHomeserver): (input: string, init?: RequestInit) => Promise<Response> {
    return async (input, init) => {
      const url = new URL(input);
      const path = url.pathname.replace('/_matrix/client/v3', '');
      const method = init?.method ?? 'GET';
      if (path === '/room_keys/version' && method === 'GET') {
        return Response.json({
          algorithm: MEGOLM_BACKUP_V1,
          auth_data: { public_key: this.publicKey },
          version: '1',
          count: 0,
          etag: '1',
        });
      }
      if (path === '/room_keys/keys' && method === 'PUT') {
        const body = JSON.parse(String(init?.body));
        for (const [roomId, room] of Object.entries<Json>(body.rooms)) {
          this.rooms[roomId] ??= { sessions: {} };
          Object.assign(this.rooms[roomId].sessions, room.sessions);
        }
        return Response.json({ count: 1, etag: '2' });
      }
      const one = path.match(/^\/room_keys\/keys\/([^/]+)\/([^/]+)$/);
      if (one && method === 'GET') {
        const [roomId, sessionId] = [decodeURIComponent(one[1]!), decodeURIComponent(one[2]!)];
        this.sessionFetches.push(sessionId);
        const data = this.rooms[roomId]?.sessions[sessionId];
        return data
          ? Response.json(data)
          : Response.json({ errcode: 'M_NOT_FOUND', error: 'No room_keys found' }, { status: 404 });
      }
      return hs.fetchFn(input, init);
    };
  }
}

afterEach(closeOpenedAccounts);

const open = (hs: FakeHomeserver, backup: FakeBackup, userId: string, deviceId: string) =>
  openAccount(hs, userId, deviceId, { claim: true, fetchFn: backup.wrap(hs) });

describe('Late keys', () => {
  it(
    'Bob sees a notice for a message whose key he never got; after the next sync Kirjava fetches ' +
      'that session from the backup and the following sync carries an edit with the plaintext',
    async () => {
      const hs = new FakeHomeserver();
      const backupKey = BackupDecryptionKey.createRandomKey();
      const backup = new FakeBackup(backupKey.megolmV1PublicKey.publicKeyBase64);
      const alice = await open(hs, backup, ALICE, 'ALICEDEV');
      const bob = await open(hs, backup, BOB, 'BOBDEV');
      hs.setEncrypted(ROOM);
      hs.setMembership(ROOM, ALICE, 'join'); // Bob joins later: Alice shares her key with nobody

      // Alice sends and backs her key up (her machine encrypts it to the backup's public key).
      const decision = await alice.prepareSend(
        ROOM,
        'm.room.message',
        JSON.stringify({ msgtype: 'm.text', body: 'Kept safe in the backup' }),
      );
      if (decision === 'passthrough') throw new Error('Alice sent in the clear');
      await alice.machine.enableBackupV1(backup.publicKey, '1');
      const upload = await alice.machine.backupRoomKeys();
      assert.ok(upload, 'Alice has nothing to back up');
      await backup.wrap(hs)(`${hs.baseUrl}/_matrix/client/v3/room_keys/keys?version=1`, {
        method: 'PUT',
        body: upload.body,
      });
      const envelope = hs.event(ROOM, ALICE, 'm.room.encrypted', JSON.parse(decision.body));
      const sessionId = envelope.content.session_id;

      // Bob holds the backup key (as after recovery) and syncs the event: a notice.
      hs.setMembership(ROOM, BOB, 'join');
      await bob.machine.saveBackupDecryptionKey(BackupDecryptionKey.fromBase64(backupKey.toBase64()), '1');
      const first = JSON.parse(await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: [envelope] } })));
      const notice = first.rooms.join[ROOM].timeline.events[0];
      assert.match(notice.content.body, /^\*\* Unable to decrypt/);
      assert.equal(notice.unsigned[ENCRYPTION_INFO_KEY].session_id, sessionId);

      // After the sync was answered: the per-session fetch, and a wake-up to-device to Bob's device.
      await bob.flushOutgoingQueued();
      assert.deepEqual(backup.sessionFetches, [sessionId]);
      assert.ok(
        hs.requests.some((r) => r.method === 'PUT' && r.path.startsWith('/sendToDevice/io.kirjava.wake/')),
        'the client was not woken',
      );

      const next = JSON.parse(await bob.processSync(hs.syncFor(BOB, 'BOBDEV')));
      const edits = next.rooms.join[ROOM].timeline.events;
      assert.equal(edits.length, 1);
      const [edit] = edits;
      assert.equal(edit.type, 'm.room.message');
      assert.equal(edit.sender, ALICE);
      assert.deepEqual(edit.content['m.relates_to'], { rel_type: 'm.replace', event_id: envelope.event_id });
      assert.deepEqual(edit.content['m.new_content'], { msgtype: 'm.text', body: 'Kept safe in the backup' });
      assert.equal(edit.unsigned[ENCRYPTION_INFO_KEY].healed, envelope.event_id);
      assert.ok(
        !(next.to_device?.events ?? []).some((e: Json) => e.type === 'io.kirjava.wake'),
        'the wake-up reached the client',
      );

      // Healed once: a later sync carries no second edit, and the event itself now decrypts.
      const later = JSON.parse(await bob.processSync(hs.syncFor(BOB, 'BOBDEV', { timeline: { [ROOM]: [envelope] } })));
      assert.deepEqual(
        later.rooms.join[ROOM].timeline.events.map((e: Json) => e.content.body),
        ['Kept safe in the backup'],
      );
    },
  );
});
