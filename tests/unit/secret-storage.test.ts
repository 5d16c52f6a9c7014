/**
 * Secret storage crypto against matrix-js-sdk's own implementation (what Element writes to
 * account data): recovery keys, passphrases, the key check and secrets decrypt the same way,
 * and a wrong key or passphrase is refused with a clear message.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { encodeRecoveryKey as sdkEncodeRecoveryKey } from 'matrix-js-sdk/lib/crypto-api/recovery-key.js';
import { deriveRecoveryKeyFromPassphrase } from 'matrix-js-sdk/lib/crypto-api/key-passphrase.js';
import { calculateKeyCheck } from 'matrix-js-sdk/lib/secret-storage.js';
import encryptAESSecretStorageItem from 'matrix-js-sdk/lib/utils/encryptAESSecretStorageItem.js';
import {
  AES_HMAC_SHA2,
  SecretStorageError,
  type SecretStorageKeyDescription,
  decodeRecoveryKey,
  decryptSecret,
  encodeRecoveryKey,
  unlockKey,
} from '../../src/crypto/keys/secret-storage.ts';

const randomKey = () => globalThis.crypto.getRandomValues(new Uint8Array(32));

async function describeKey(key: Uint8Array<ArrayBuffer>, passphrase?: { salt: string; iterations: number }) {
  const check = await calculateKeyCheck(key);
  const description: SecretStorageKeyDescription = { algorithm: AES_HMAC_SHA2, iv: check.iv, mac: check.mac };
  if (passphrase) description.passphrase = { algorithm: 'm.pbkdf2', ...passphrase };
  return description;
}

describe('Secret storage (m.secret_storage.v1.aes-hmac-sha2)', () => {
  it('recovery keys decode as matrix-js-sdk encodes them, with or without spaces', () => {
    const key = randomKey();
    const encoded = sdkEncodeRecoveryKey(key)!;
    assert.deepEqual(decodeRecoveryKey(encoded), key);
    assert.deepEqual(decodeRecoveryKey(encoded.replace(/ /g, '')), key);
    assert.equal(encodeRecoveryKey(key), encoded);
  });

  it('a recovery key with a typo fails its parity check', () => {
    const encoded = sdkEncodeRecoveryKey(randomKey())!;
    const typo = encoded.slice(0, 10) + (encoded[10] === 'a' ? 'b' : 'a') + encoded.slice(11);
    assert.equal(decodeRecoveryKey(typo), undefined);
    assert.equal(decodeRecoveryKey('not a recovery key'), undefined);
  });

  it('the recovery key unlocks secret storage and decrypts a secret Element stored', async () => {
    const key = randomKey();
    const description = await describeKey(key);
    const unlocked = await unlockKey(sdkEncodeRecoveryKey(key)!, description);
    assert.deepEqual(unlocked, key);
    const stored = await encryptAESSecretStorageItem('master-private-key-base64', key, 'm.cross_signing.master');
    assert.equal(await decryptSecret(unlocked, 'm.cross_signing.master', stored), 'master-private-key-base64');
  });

  it('the passphrase unlocks it too (PBKDF2-SHA-512 with the stored salt and iterations)', async () => {
    const passphrase = { salt: 'saltysalt', iterations: 1000 };
    const key = await deriveRecoveryKeyFromPassphrase('my long passphrase', passphrase.salt, passphrase.iterations);
    const description = await describeKey(key, passphrase);
    assert.deepEqual(await unlockKey('my long passphrase', description), key);
  });

  it('a wrong key or passphrase is refused, saying nothing was changed', async () => {
    const passphrase = { salt: 'saltysalt', iterations: 1000 };
    const key = await deriveRecoveryKeyFromPassphrase('right passphrase', passphrase.salt, passphrase.iterations);
    const description = await describeKey(key, passphrase);
    await assert.rejects(unlockKey('wrong passphrase', description), (error: unknown) => {
      assert.ok(error instanceof SecretStorageError);
      assert.match(error.message, /^Wrong recovery key or passphrase.*nothing was changed/);
      return true;
    });
    await assert.rejects(
      unlockKey(sdkEncodeRecoveryKey(randomKey())!, await describeKey(randomKey())),
      /^SecretStorageError: That is not the recovery key/,
    );
    await assert.rejects(unlockKey('   ', description), /Enter your recovery key/);
  });

  it('a secret whose MAC does not match is refused', async () => {
    const key = randomKey();
    const stored = await encryptAESSecretStorageItem('secret', key, 'm.megolm_backup.v1');
    await assert.rejects(
      decryptSecret(key, 'm.megolm_backup.v1', {
        ...stored,
        mac: stored.mac.replace(/^./, (c) => (c === 'A' ? 'B' : 'A')),
      }),
      SecretStorageError,
    );
  });
});
