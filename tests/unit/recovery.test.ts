/**
 * Recovery from secret storage against a fake server whose account data was written the way
 * matrix-js-sdk (Element) writes it: a wrong key, or a key backup that the recovery key did not
 * make, is refused and leaves the device as it was; the right key turns the backup on.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { BackupDecryptionKey } from '@matrix-org/matrix-sdk-crypto-wasm';
import { encodeRecoveryKey } from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import { calculateKeyCheck } from 'matrix-js-sdk/lib/secret-storage.js';
import encryptAESSecretStorageItem from 'matrix-js-sdk/lib/utils/encryptAESSecretStorageItem.js';
import { CryptoAccount, loadCrypto } from '../../src/crypto/account.ts';
import { KeyBackupError, MEGOLM_BACKUP_V1 } from '../../src/crypto/keys/key-backup.ts';
import { SecretStorageError } from '../../src/crypto/keys/secret-storage.ts';
import { FakeHomeserver } from '../fixtures/fake-homeserver.ts';

const BOB = '@bob:example.test';

const opened: CryptoAccount[] = [];
afterEach(() => {
  for (const account of opened.splice(0)) account.close();
});

/** Bob's account whose server holds secret storage (key `KEYID`) with a backup key in it. */
async function givenSecretStorage(options: { serverBackupKey: 'same' | 'other' }) {
  await loadCrypto();
  const secretStorageKey = globalThis.crypto.getRandomValues(new Uint8Array(32));
  const backupKey = BackupDecryptionKey.createRandomKey();
  const serverKey = options.serverBackupKey === 'same' ? backupKey : BackupDecryptionKey.createRandomKey();
  const check = await calculateKeyCheck(secretStorageKey);
  const accountData: Record<string, unknown> = {
    'm.secret_storage.default_key': { key: 'KEYID' },
    'm.secret_storage.key.KEYID': { algorithm: 'm.secret_storage.v1.aes-hmac-sha2', iv: check.iv, mac: check.mac },
    'm.megolm_backup.v1': {
      encrypted: {
        KEYID: await encryptAESSecretStorageItem(backupKey.toBase64(), secretStorageKey, 'm.megolm_backup.v1'),
      },
    },
  };
  const hs = new FakeHomeserver();
  const fetchFn = async (input: string, init?: RequestInit) => {
    const path = new URL(input).pathname.replace('/_matrix/client/v3', '');
    const data = path.match(/^\/user\/[^/]+\/account_data\/([^/]+)$/);
    if (data) {
      const content = accountData[decodeURIComponent(data[1]!)];
      return content
        ? Response.json(content)
        : Response.json({ errcode: 'M_NOT_FOUND', error: 'Not found' }, { status: 404 });
    }
    if (path === '/room_keys/version') {
      return Response.json({
        algorithm: MEGOLM_BACKUP_V1,
        auth_data: { public_key: serverKey.megolmV1PublicKey.publicKeyBase64 },
        version: '7',
      });
    }
    if (path === '/room_keys/keys') return Response.json({ rooms: {} });
    return hs.fetchFn(input, init);
  };
  const bob = await CryptoAccount.open({
    baseUrl: hs.baseUrl,
    userId: BOB,
    deviceId: 'BOBDEV',
    accessToken: hs.login(BOB, 'BOBDEV'),
    fetchFn,
  });
  opened.push(bob);
  await bob.claimDevice();
  return { bob, recoveryKey: encodeRecoveryKey(secretStorageKey)! };
}

async function assertUnchanged(bob: CryptoAccount) {
  const stored = await bob.machine.getBackupKeys();
  assert.equal(stored.decryptionKey, undefined);
  assert.equal(bob.keys.backup.version, null);
  assert.equal(await bob.machine.isBackupEnabled(), false);
}

describe('Recovery from secret storage', () => {
  it('a recovery key of another account is refused and nothing changes', async () => {
    const { bob } = await givenSecretStorage({ serverBackupKey: 'same' });
    const other = encodeRecoveryKey(globalThis.crypto.getRandomValues(new Uint8Array(32)))!;
    await assert.rejects(bob.keys.recover(other), (error: unknown) => {
      assert.ok(error instanceof SecretStorageError);
      assert.equal(
        error.message,
        'That is not the recovery key of this account: check it and try again (nothing was changed)',
      );
      return true;
    });
    await assertUnchanged(bob);
  });

  it('a key backup on the server that the recovery key did not make is not trusted, and nothing changes', async () => {
    const { bob, recoveryKey } = await givenSecretStorage({ serverBackupKey: 'other' });
    await assert.rejects(bob.keys.recover(recoveryKey), (error: unknown) => {
      assert.ok(error instanceof KeyBackupError);
      assert.match(
        error.message,
        /^The key backup on the server was not made with your recovery key.*nothing was changed/,
      );
      return true;
    });
    await assertUnchanged(bob);
  });

  it('the right recovery key turns on the backup it made', async () => {
    const { bob, recoveryKey } = await givenSecretStorage({ serverBackupKey: 'same' });
    const result = await bob.keys.recover(recoveryKey);
    assert.deepEqual(result, { crossSigned: false, backupVersion: '7', imported: 0, total: 0 });
    assert.equal(bob.keys.backup.version, '7');
    assert.equal(await bob.machine.isBackupEnabled(), true);
    assert.equal((await bob.machine.getBackupKeys()).backupVersion, '7');
  });
});
