/**
 * "Set up secure backup" against a fake homeserver that keeps account data and key backups and
 * puts `POST /delete_devices` behind user-interactive auth, as Synapse does. What the setup
 * writes is read back by Kirjava's own secret-storage reader and by matrix-js-sdk's, and a
 * second Kirjava device of the user recovers with the recovery key. A wrong password, or a
 * homeserver that wants another auth stage, changes nothing.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { calculateKeyCheck } from 'matrix-js-sdk/lib/secret-storage.js';
import decryptAESSecretStorageItem from 'matrix-js-sdk/lib/utils/decryptAESSecretStorageItem.js';
import { CryptoAccount, loadCrypto } from '../../src/crypto/account.ts';
import { MEGOLM_BACKUP_V1 } from '../../src/crypto/keys/key-backup.ts';
import { PasswordAuthError } from '../../src/crypto/keys/password-auth.ts';
import {
  AES_HMAC_SHA2,
  type EncryptedSecret,
  type SecretStorageKeyDescription,
  checkKey,
  createSecretStorageKey,
  decodeRecoveryKey,
  decryptSecret,
  encodeRecoveryKey,
  unlockKey,
} from '../../src/crypto/keys/secret-storage.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const BOB = '@bob:example.test';
const PASSWORD = 'bob password';
const SECRETS = [
  'm.cross_signing.master',
  'm.cross_signing.self_signing',
  'm.cross_signing.user_signing',
  'm.megolm_backup.v1',
];

const opened: CryptoAccount[] = [];
afterEach(() => {
  for (const account of opened.splice(0)) account.close();
});

/** Bob's server: the fake homeserver plus account data, key backup and a password-protected `/delete_devices`. */
function givenServer(options: { authStages?: string[] } = {}) {
  const hs = new FakeHomeserver();
  const accountData = new Map<string, Record<string, unknown>>();
  let backup: Record<string, unknown> | undefined;
  let versions = 0;
  const backedUp = new Set<string>();
  const flows = [{ stages: options.authStages ?? ['m.login.password'] }];
  const fetchFn = async (input: string, init: RequestInit = {}) => {
    const url = new URL(input);
    const path = url.pathname.replace('/_matrix/client/v3', '');
    const method = init.method ?? 'GET';
    const body = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    const data = path.match(/^\/user\/[^/]+\/account_data\/([^/]+)$/);
    if (data) {
      const type = decodeURIComponent(data[1]!);
      if (method === 'PUT') {
        accountData.set(type, body);
        return Response.json({});
      }
      const content = accountData.get(type);
      return content ? Response.json(content) : Response.json({ errcode: 'M_NOT_FOUND' }, { status: 404 });
    }
    if (path === '/delete_devices') {
      if (!body.auth) return Response.json({ flows, params: {}, session: 'UIA1' }, { status: 401 });
      const { auth } = body;
      const right =
        auth.type === 'm.login.password' &&
        auth.session === 'UIA1' &&
        auth.identifier?.user === BOB &&
        auth.password === PASSWORD;
      if (!right) {
        return Response.json(
          { errcode: 'M_FORBIDDEN', error: 'Invalid password', flows, params: {}, session: 'UIA1' },
          { status: 401 },
        );
      }
      return Response.json({});
    }
    if (path === '/room_keys/version') {
      if (method === 'POST') {
        const version = String(++versions);
        backup = { ...body, version };
        return Response.json({ version });
      }
      return backup ? Response.json(backup) : Response.json({ errcode: 'M_NOT_FOUND' }, { status: 404 });
    }
    if (path === '/room_keys/keys' && method === 'GET') return Response.json({ rooms: {} });
    if (path === '/room_keys/keys' && method === 'PUT') {
      for (const [roomId, room] of Object.entries(body.rooms ?? {}) as [string, { sessions: object }][]) {
        for (const sessionId of Object.keys(room.sessions)) backedUp.add(`${roomId}|${sessionId}`);
      }
      return Response.json({ count: backedUp.size, etag: String(backedUp.size) });
    }
    return hs.fetchFn(input, init);
  };
  return { hs, fetchFn, accountData, backup: () => backup, backedUp };
}

async function openBob(server: ReturnType<typeof givenServer>, deviceId: string) {
  await loadCrypto();
  const bob = await CryptoAccount.open({
    baseUrl: server.hs.baseUrl,
    userId: BOB,
    deviceId,
    accessToken: server.hs.login(BOB, deviceId),
    fetchFn: server.fetchFn,
  });
  opened.push(bob);
  await bob.claimDevice();
  return bob;
}

const deviceSigningUploads = (server: ReturnType<typeof givenServer>) =>
  server.hs.requests.filter((r) => r.path === '/keys/device_signing/upload').length;

describe('Secret-storage key description', () => {
  it("a new key's description passes Kirjava's check and matrix-js-sdk's; its recovery key opens it", async () => {
    const { keyId, key, description } = await createSecretStorageKey();
    assert.match(keyId, /^[A-Za-z0-9]{32}$/);
    assert.deepEqual(Object.keys(description).sort(), ['algorithm', 'iv', 'mac']);
    assert.equal(description.algorithm, AES_HMAC_SHA2);
    assert.equal(await checkKey(key, description), true);
    assert.equal((await calculateKeyCheck(key as Uint8Array<ArrayBuffer>, description.iv)).mac, description.mac);
    assert.deepEqual(await unlockKey(encodeRecoveryKey(key), description), key);
    assert.equal(await checkKey(globalThis.crypto.getRandomValues(new Uint8Array(32)), description), false);
  });
});

describe('Set up secure backup', () => {
  it('writes secret storage whose secrets open with the recovery key, and an enabled, signed key backup', async () => {
    const server = givenServer();
    const bob = await openBob(server, 'BOBDEV');
    assert.equal(await bob.keys.secureBackupState(), 'none');

    const { recoveryKey, backupVersion } = await bob.keys.setUpSecureBackup(PASSWORD);
    assert.equal(backupVersion, '1');
    assert.equal(bob.keys.unsavedRecoveryKey, recoveryKey);

    // m.secret_storage.default_key → m.secret_storage.key.<id>, checked with the recovery key.
    const keyId = (server.accountData.get('m.secret_storage.default_key') as { key: string }).key;
    const description = server.accountData.get(`m.secret_storage.key.${keyId}`) as SecretStorageKeyDescription;
    assert.deepEqual(Object.keys(description).sort(), ['algorithm', 'iv', 'mac']);
    const key = await unlockKey(recoveryKey, description);
    assert.deepEqual(key, decodeRecoveryKey(recoveryKey));

    // Each secret decrypts with it, in Kirjava and in matrix-js-sdk, and is what the machine holds.
    const exported = (await bob.machine.exportCrossSigningKeys())!;
    const expected: Record<string, string> = {
      'm.cross_signing.master': exported.masterKey!,
      'm.cross_signing.self_signing': exported.self_signing_key!,
      'm.cross_signing.user_signing': exported.userSigningKey!,
      'm.megolm_backup.v1': (await bob.machine.getBackupKeys()).decryptionKey!.toBase64(),
    };
    for (const name of SECRETS) {
      const content = server.accountData.get(name) as { encrypted: Record<string, EncryptedSecret> };
      assert.deepEqual(Object.keys(content.encrypted), [keyId], name);
      assert.equal(await decryptSecret(key, name, content.encrypted[keyId]!), expected[name], name);
      assert.equal(
        await decryptAESSecretStorageItem(content.encrypted[keyId]!, key as Uint8Array<ArrayBuffer>, name),
        expected[name],
      );
    }

    // The backup: our public key, signed by this device and the new master key; turned on.
    const info = server.backup() as { algorithm: string; auth_data: Record<string, any> };
    assert.equal(info.algorithm, MEGOLM_BACKUP_V1);
    const publicKey = (await bob.machine.getBackupKeys()).decryptionKey!.megolmV1PublicKey.publicKeyBase64;
    assert.equal(info.auth_data.public_key, publicKey);
    const signers = Object.keys(info.auth_data.signatures[BOB]);
    assert.ok(signers.includes('ed25519:BOBDEV'), signers.join());
    assert.equal(signers.length, 2, `device and master key: ${signers.join()}`);
    assert.equal(bob.keys.backup.version, '1');
    assert.equal(await bob.machine.isBackupEnabled(), true);
    assert.equal((await bob.machine.crossSigningStatus()).hasMaster, true);
    assert.equal(await bob.keys.secureBackupState(), 'set-up');

    // Another Kirjava device of Bob recovers with the recovery key: cross-signed, same backup, trusted.
    const second = await openBob(server, 'BOBDEV2');
    const recovered = await second.keys.recover(recoveryKey);
    assert.deepEqual(recovered, { crossSigned: true, backupVersion: '1', imported: 0, total: 0 });
    assert.equal((await second.machine.verifyBackup(info)).trusted(), true);

    // Running it again is refused: the account has secure backup now.
    await assert.rejects(bob.keys.setUpSecureBackup(PASSWORD), /already has secure backup/);
    bob.keys.recoveryKeySaved();
    assert.equal(bob.keys.unsavedRecoveryKey, null);
  });

  it('a wrong password is refused before anything is created', async () => {
    const server = givenServer();
    const bob = await openBob(server, 'BOBDEV');
    await assert.rejects(bob.keys.setUpSecureBackup('not the password'), (error: unknown) => {
      assert.ok(error instanceof PasswordAuthError);
      assert.equal(error.reason, 'wrong-password');
      assert.equal(error.message, 'Wrong password: check it and try again (nothing was changed)');
      return true;
    });
    assert.equal(server.accountData.size, 0);
    assert.equal(server.backup(), undefined);
    assert.equal(deviceSigningUploads(server), 0);
    assert.equal((await bob.machine.crossSigningStatus()).hasMaster, false);
    assert.equal(bob.keys.unsavedRecoveryKey, null);
  });

  it('a homeserver that wants another auth stage gets a message naming it, and nothing is created', async () => {
    const server = givenServer({ authStages: ['m.login.sso'] });
    const bob = await openBob(server, 'BOBDEV');
    await assert.rejects(bob.keys.setUpSecureBackup(PASSWORD), (error: unknown) => {
      assert.ok(error instanceof PasswordAuthError);
      assert.equal(error.reason, 'unsupported');
      assert.equal(
        error.message,
        'Your homeserver asks to confirm this with m.login.sso, not with your password alone, which Kirjava ' +
          'cannot do yet: nothing was changed',
      );
      return true;
    });
    assert.equal(server.accountData.size, 0);
    assert.equal(deviceSigningUploads(server), 0);
  });

  it('a reset after a lost recovery key: new identity, new secret storage and recovery key, a new backup', async () => {
    const server = givenServer();
    const bob = await openBob(server, 'BOBDEV');
    const old = await bob.keys.setUpSecureBackup(PASSWORD);
    bob.keys.recoveryKeySaved();
    const masterBefore = (await bob.machine.exportCrossSigningKeys())!.masterKey;
    const oldKeyId = (server.accountData.get('m.secret_storage.default_key') as { key: string }).key;
    const uploadsBefore = deviceSigningUploads(server);

    // A wrong password changes nothing.
    await assert.rejects(bob.keys.resetSecureBackup('not the password'), PasswordAuthError);
    assert.equal(deviceSigningUploads(server), uploadsBefore);
    assert.equal((await bob.machine.exportCrossSigningKeys())!.masterKey, masterBefore);
    assert.equal((server.backup() as { version: string }).version, old.backupVersion);

    const reset = await bob.keys.resetSecureBackup(PASSWORD);
    assert.notEqual(reset.recoveryKey, old.recoveryKey);
    assert.equal(reset.backupVersion, '2');
    assert.equal(bob.keys.unsavedRecoveryKey, reset.recoveryKey);
    assert.equal(deviceSigningUploads(server), uploadsBefore + 1);
    const exported = (await bob.machine.exportCrossSigningKeys())!;
    assert.notEqual(exported.masterKey, masterBefore);

    // The new default key opens every secret with the new recovery key; the old recovery key does not open it.
    const keyId = (server.accountData.get('m.secret_storage.default_key') as { key: string }).key;
    assert.notEqual(keyId, oldKeyId);
    const description = server.accountData.get(`m.secret_storage.key.${keyId}`) as SecretStorageKeyDescription;
    const key = await unlockKey(reset.recoveryKey, description);
    await assert.rejects(unlockKey(old.recoveryKey, description));
    const content = server.accountData.get('m.cross_signing.master') as { encrypted: Record<string, EncryptedSecret> };
    assert.deepEqual(Object.keys(content.encrypted), [keyId]);
    assert.equal(await decryptSecret(key, 'm.cross_signing.master', content.encrypted[keyId]!), exported.masterKey);

    // Backing up goes to the new version, whose key the new secret storage holds.
    assert.equal(bob.keys.backup.version, '2');
    const backupKey = (await bob.machine.getBackupKeys()).decryptionKey!;
    assert.equal(
      (server.backup() as { auth_data: { public_key: string } }).auth_data.public_key,
      backupKey.megolmV1PublicKey.publicKeyBase64,
    );
    const secret = server.accountData.get('m.megolm_backup.v1') as { encrypted: Record<string, EncryptedSecret> };
    assert.equal(await decryptSecret(key, 'm.megolm_backup.v1', secret.encrypted[keyId]!), backupKey.toBase64());

    // Another device of Bob recovers with the new key and trusts the new backup.
    const second = await openBob(server, 'BOBDEV2');
    await assert.rejects(second.keys.recover(old.recoveryKey));
    const recovered = await second.keys.recover(reset.recoveryKey);
    assert.deepEqual(recovered, { crossSigned: true, backupVersion: '2', imported: 0, total: 0 });
  });
});
