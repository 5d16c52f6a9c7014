/**
 * Key files in Element's format: what Kirjava writes, the Rust crypto crate (the code behind
 * Element's "Import E2E room keys") reads, and the other way round; a wrong passphrase, a cut
 * file or garbage fail with a message that says what to do, and change nothing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { DeviceId, EncryptionSettings, OlmMachine, RoomId, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { CryptoAccount, loadCrypto } from '../../src/crypto/account.ts';
import { KeyFileError, decryptKeyFile, encryptKeyFile } from '../../src/crypto/keys/key-file.ts';

/** Few rounds keep the tests fast; the format stores the count, so readers use it. */
const ROUNDS = 1000;
/** A real room key export (one megolm session), made by a machine sharing a room key with nobody. */
async function exportedKeys(): Promise<string> {
  await loadCrypto();
  const machine = await OlmMachine.initialize(new UserId('@alice:example.test'), new DeviceId('ALICEDEVICE'));
  try {
    await machine.shareRoomKey(new RoomId('!room:example.test'), [], new EncryptionSettings());
    return await machine.exportRoomKeys(() => true);
  } finally {
    machine.close();
  }
}
const KEYS = await exportedKeys();

async function rejectsWith(promise: Promise<unknown>, reason: KeyFileError['reason'], message: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof KeyFileError, `not a KeyFileError: ${error}`);
    assert.equal(error.reason, reason);
    assert.match(error.message, message);
    return true;
  });
}

describe('Key files (-----BEGIN MEGOLM SESSION DATA-----)', () => {
  it('a file Kirjava writes has the armour Element expects and reads back with the passphrase', async () => {
    const file = await encryptKeyFile(KEYS, 'correct horse', ROUNDS);
    const lines = file.trimEnd().split('\n');
    assert.equal(lines[0], '-----BEGIN MEGOLM SESSION DATA-----');
    assert.equal(lines.at(-1), '-----END MEGOLM SESSION DATA-----');
    assert.ok(lines.slice(1, -1).every((line) => line.length <= 96));
    assert.equal(await decryptKeyFile(file, 'correct horse'), KEYS);
  });

  it('files written by the Rust crypto crate (Element, matrix-js-sdk) decrypt, and ours decrypt there', async () => {
    await loadCrypto();
    const theirs = OlmMachine.encryptExportedRoomKeys(KEYS, 'shared secret', ROUNDS);
    assert.deepEqual(JSON.parse(await decryptKeyFile(theirs, 'shared secret')), JSON.parse(KEYS));
    const ours = await encryptKeyFile(KEYS, 'shared secret', ROUNDS);
    assert.deepEqual(JSON.parse(OlmMachine.decryptExportedRoomKeys(ours, 'shared secret')), JSON.parse(KEYS));
  });

  it('a wrong passphrase is refused as such', async () => {
    const file = await encryptKeyFile(KEYS, 'right', ROUNDS);
    await rejectsWith(decryptKeyFile(file, 'wrong'), 'wrong-passphrase', /^Wrong passphrase for this key file/);
  });

  it('an empty passphrase is asked for, not tried', async () => {
    const file = await encryptKeyFile(KEYS, 'right', ROUNDS);
    await rejectsWith(decryptKeyFile(file, ''), 'empty-passphrase', /Enter the passphrase/);
  });

  it('a file cut short (no END line, or too few bytes) says it is incomplete', async () => {
    const file = await encryptKeyFile(KEYS, 'right', ROUNDS);
    await rejectsWith(decryptKeyFile(file.slice(0, file.length / 2), 'right'), 'truncated', /incomplete/);
    const stub = '-----BEGIN MEGOLM SESSION DATA-----\nAQID\n-----END MEGOLM SESSION DATA-----\n';
    await rejectsWith(decryptKeyFile(stub, 'right'), 'truncated', /incomplete/);
  });

  it('a damaged body or something that is not a key file is named as such', async () => {
    await rejectsWith(decryptKeyFile('{"not": "a key file"}', 'x'), 'not-a-key-file', /not a Matrix key file/);
    const garbage = '-----BEGIN MEGOLM SESSION DATA-----\n@@@ not base64 @@@\n-----END MEGOLM SESSION DATA-----\n';
    await rejectsWith(decryptKeyFile(garbage, 'x'), 'corrupt', /damaged/);
    const file = await encryptKeyFile(KEYS, 'right', ROUNDS);
    const flipped = file.replace(/\n(.)/, (_, c) => `\n${c === 'A' ? 'B' : 'A'}`);
    await rejectsWith(decryptKeyFile(flipped, 'right'), 'corrupt', /damaged/);
  });

  it(
    'importing into an account: progress counts up to "1 of 1"; ' + 'a wrong passphrase or cut file imports nothing',
    async () => {
      const account = await CryptoAccount.open({
        baseUrl: 'https://hs.example.test',
        userId: '@alice:example.test',
        deviceId: 'NEWDEVICE',
        accessToken: 'unused',
        fetchFn: async () => new Response('{}', { status: 500 }),
      });
      try {
        const file = await encryptKeyFile(KEYS, 'right', ROUNDS);
        await rejectsWith(account.keys.importKeyFile(file, 'wrong'), 'wrong-passphrase', /Wrong passphrase/);
        await rejectsWith(account.keys.importKeyFile(file.slice(0, 200), 'right'), 'truncated', /incomplete/);
        assert.equal(await account.machine.exportRoomKeys(() => true), '[]');
        assert.equal(account.keys.progress, null);

        const seen: string[] = [];
        account.keys.onProgress = ({ task, done, total }) => seen.push(`${task}: ${done} of ${total}`);
        const importing = account.keys.importKeyFile(file, 'right');
        assert.deepEqual(account.keys.progress, { task: 'import', done: 0, total: 0 });
        const result = await importing;
        assert.deepEqual(result, { imported: 1, total: 1 });
        assert.equal(
          JSON.parse(await account.machine.exportRoomKeys(() => true))[0].session_id,
          JSON.parse(KEYS)[0].session_id,
        );
        assert.equal(seen.at(-1), 'import: 1 of 1');
        assert.equal(account.keys.progress, null);
      } finally {
        account.close();
      }
    },
  );
});
