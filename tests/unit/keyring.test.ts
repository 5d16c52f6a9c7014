/**
 * Kirjava's keyring, told as what the user and an attacker who copies the profile see:
 * secrets are sealed under a vault key and come back the same after worker and browser
 * restarts; a passphrase locks the vault key (PBKDF2-SHA-256, 600,000 iterations) until it
 * is entered once per browser session; a wrong or weak passphrase and a damaged entry get
 * a clear error and change nothing; older versions' secrets move in from storage.local.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  Keyring,
  KeyringLockedError,
  type KeyringBackend,
  type SessionKeyCache,
} from '../../src/crypto/keyring/keyring.ts';
import {
  KeyringDamagedError,
  PBKDF2_ITERATIONS,
  type SealedBlob,
  type VaultKeyRecord,
  WrongPassphraseError,
} from '../../src/crypto/keyring/keyring-seal.ts';
import { type LegacyStorage, migrateLegacySecrets } from '../../src/background/secrets-migration.ts';
import { type Reader, localReaders } from '../../src/platform/stored-shapes.ts';
import type { LocalValues } from '../../src/shared/storage-keys.ts';

/** Few iterations keep most tests fast; one story checks the real count. */
const FAST = 1000;
const PASSPHRASE = 'correct horse battery';

/** The extension's IndexedDB, as a copied profile would show it: values are copies, never shared. */
class MemoryBackend implements KeyringBackend {
  vault: VaultKeyRecord | undefined;
  readonly secrets = new Map<string, SealedBlob>();
  async loadVaultKey() {
    return structuredClone(this.vault);
  }
  async saveVaultKey(record: VaultKeyRecord) {
    this.vault = structuredClone(record);
  }
  async loadSecret(name: string) {
    return structuredClone(this.secrets.get(name));
  }
  async addSecret(name: string, blob: SealedBlob) {
    if (this.secrets.has(name)) return false;
    this.secrets.set(name, structuredClone(blob));
    return true;
  }
  async deleteSecret(name: string) {
    this.secrets.delete(name);
  }
}

/** `storage.session`: gone when the browser restarts, kept across worker restarts. */
class MemorySession implements SessionKeyCache {
  key: Uint8Array | undefined;
  async get() {
    return this.key && new Uint8Array(this.key);
  }
  async set(key: Uint8Array) {
    this.key = new Uint8Array(key);
  }
  async clear() {
    this.key = undefined;
  }
}

/** One browser profile: its IndexedDB survives restarts; `browserRestart` empties the session. */
class Profile {
  readonly backend = new MemoryBackend();
  session = new MemorySession();
  /** The worker (re)started: a new Keyring over the same storage. */
  worker(options: ConstructorParameters<typeof Keyring>[2] = { iterations: FAST }): Keyring {
    return new Keyring(this.backend, this.session, options);
  }
  browserRestart(): Keyring {
    this.session = new MemorySession();
    return this.worker();
  }
}

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex');
const contains = (haystack: Uint8Array, needle: Uint8Array) => Buffer.from(haystack).includes(Buffer.from(needle));

async function rejectsWith(promise: Promise<unknown>, type: new (...args: any[]) => Error, message: RegExp) {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof type, `not a ${type.name}: ${error}`);
    assert.match((error as Error).message, message);
    return true;
  });
}

/** A profile whose keyring holds two secrets, then is locked with PASSPHRASE. */
async function lockedProfile() {
  const profile = new Profile();
  const keyring = profile.worker();
  const store = await keyring.secret('store:kirjava-a');
  const search = await keyring.secret('search:account', 64);
  await keyring.setPassphrase(PASSPHRASE);
  return { profile, store, search };
}

describe('Keyring: sealed secrets', () => {
  it(
    'a secret is made at its first use and comes back the same after a worker restart; ' + 'the disk holds it sealed',
    async () => {
      const profile = new Profile();
      const first = await profile.worker().secret('store:kirjava-a');
      assert.equal(first.length, 32);
      assert.deepEqual(await profile.worker().secret('store:kirjava-a'), first);
      assert.equal((await profile.worker().secret('search:account', 64)).length, 64);
      assert.notDeepEqual(await profile.worker().secret('store:kirjava-b'), first);

      const sealed = profile.backend.secrets.get('store:kirjava-a')!;
      assert.ok(!contains(sealed.data, first), 'the secret is on disk in clear');
      assert.equal(profile.backend.vault?.kind, 'plain', 'without a passphrase the vault key is kept as is');
      assert.deepEqual(await profile.worker().status(), { locked: false, hasPassphrase: false });
    },
  );

  it('two callers of a new name at once get the same secret', async () => {
    const keyring = new Profile().worker();
    const [a, b] = await Promise.all([keyring.secret('store:x'), keyring.secret('store:x')]);
    assert.deepEqual(a, b);
  });

  it('a damaged entry, or one moved under another name, is refused with a clear error and left as it was', async () => {
    const profile = new Profile();
    const keyring = profile.worker();
    await keyring.secret('store:kirjava-a');
    await keyring.secret('store:kirjava-b');
    const blob = profile.backend.secrets.get('store:kirjava-a')!;
    blob.data[3] ^= 0x01;
    const damaged = structuredClone(blob);
    await rejectsWith(
      profile.worker().secret('store:kirjava-a'),
      KeyringDamagedError,
      /keyring entry store:kirjava-a is damaged/,
    );
    assert.deepEqual(profile.backend.secrets.get('store:kirjava-a'), damaged, 'the damaged entry was replaced');

    profile.backend.secrets.set('store:kirjava-a', structuredClone(profile.backend.secrets.get('store:kirjava-b')!));
    await rejectsWith(profile.worker().secret('store:kirjava-a'), KeyringDamagedError, /does not decrypt/);

    profile.backend.secrets.set('store:kirjava-a', { iv: new Uint8Array(3), data: new Uint8Array(0) });
    await rejectsWith(profile.worker().secret('store:kirjava-a'), KeyringDamagedError, /wrong shape/);

    profile.backend.vault = { kind: 'plain', key: new Uint8Array(5) };
    await rejectsWith(
      profile.worker().secret('store:kirjava-b'),
      KeyringDamagedError,
      /vault key record has the wrong shape/,
    );
  });

  it('an entry asked for with another length than it has is refused, not replaced', async () => {
    const profile = new Profile();
    await profile.worker().secret('search:account', 64);
    await assert.rejects(profile.worker().secret('search:account', 32), /has 64 bytes, not 32/);
    assert.equal((await profile.worker().secret('search:account', 64)).length, 64);
  });

  it('forget removes a secret, also while locked; the name then gets a new one', async () => {
    const { profile, store } = await lockedProfile();
    const locked = profile.browserRestart();
    await locked.forget('store:kirjava-a');
    assert.equal(profile.backend.secrets.has('store:kirjava-a'), false);
    await locked.unlock(PASSPHRASE);
    assert.notDeepEqual(await locked.secret('store:kirjava-a'), store);
  });
});

describe('Keyring: the passphrase lock', () => {
  it(
    `a passphrase wraps the vault key with PBKDF2-SHA-256 (${PBKDF2_ITERATIONS} iterations, ` +
      `random salt); the disk no longer holds it`,
    async () => {
      const profile = new Profile();
      const keyring = profile.worker({});
      const secret = await keyring.secret('store:kirjava-a');
      const vaultKey = (profile.backend.vault as { key: Uint8Array }).key;
      assert.deepEqual(await keyring.setPassphrase(PASSPHRASE), { locked: false, hasPassphrase: true });
      const record = profile.backend.vault!;
      assert.equal(record.kind, 'wrapped');
      if (record.kind !== 'wrapped') return;
      assert.ok(PBKDF2_ITERATIONS >= 600_000);
      assert.equal(record.iterations, PBKDF2_ITERATIONS);
      assert.equal(record.salt.length, 16);
      assert.ok(!contains(record.data, vaultKey), 'the vault key is on disk in clear');
      // The same session stays unlocked; the secret did not change.
      assert.deepEqual(await keyring.secret('store:kirjava-a'), secret);

      const again = new Profile();
      const other = again.worker({});
      await other.secret('x');
      await other.setPassphrase(PASSPHRASE);
      assert.notDeepEqual((again.backend.vault as { salt: Uint8Array }).salt, record.salt, 'the salt is not random');
    },
  );

  it(
    'after a browser restart every secret is refused until the ' +
      'passphrase is entered; a worker restart keeps it unlocked',
    async () => {
      const { profile, store, search } = await lockedProfile();
      const keyring = profile.browserRestart();
      assert.deepEqual(await keyring.status(), { locked: true, hasPassphrase: true });
      await rejectsWith(
        keyring.secret('store:kirjava-a'),
        KeyringLockedError,
        /^Kirjava is locked: open the Kirjava popup and enter your passphrase$/,
      );
      await rejectsWith(keyring.unlocked(), KeyringLockedError, /locked/);
      // A new name is refused too: nothing is made under a key nobody could open later.
      await rejectsWith(keyring.secret('store:new'), KeyringLockedError, /locked/);

      assert.deepEqual(await keyring.unlock(PASSPHRASE), { locked: false, hasPassphrase: true });
      assert.deepEqual(await keyring.secret('store:kirjava-a'), store);
      assert.deepEqual(
        await profile.worker().secret('search:account', 64),
        search,
        'a worker restart locked the keyring again',
      );
    },
  );

  it('a wrong passphrase says "Wrong passphrase" and changes nothing', async () => {
    const { profile, store } = await lockedProfile();
    const before = structuredClone(profile.backend.vault);
    const keyring = profile.browserRestart();
    await rejectsWith(keyring.unlock('not the passphrase'), WrongPassphraseError, /^Wrong passphrase$/);
    assert.deepEqual(profile.backend.vault, before);
    assert.equal(profile.session.key, undefined);
    assert.deepEqual(await keyring.status(), { locked: true, hasPassphrase: true });
    await keyring.unlock(PASSPHRASE);
    assert.deepEqual(await keyring.secret('store:kirjava-a'), store);
  });

  it('a weak passphrase is refused (at least 8 characters) and nothing is stored', async () => {
    const profile = new Profile();
    const keyring = profile.worker();
    await keyring.secret('store:kirjava-a');
    const before = structuredClone(profile.backend.vault);
    await rejectsWith(keyring.setPassphrase('seven77'), Error, /at least 8 characters/);
    await rejectsWith(keyring.setPassphrase(''), Error, /at least 8 characters/);
    assert.deepEqual(profile.backend.vault, before);
    assert.deepEqual(await keyring.status(), { locked: false, hasPassphrase: false });
  });

  it('changing the passphrase needs the current one; then only the new one unlocks, and the secrets stay', async () => {
    const { profile, store } = await lockedProfile();
    const keyring = profile.worker();
    const before = structuredClone(profile.backend.vault);
    await rejectsWith(keyring.setPassphrase('a brand new passphrase'), Error, /Enter your current passphrase/);
    await rejectsWith(
      keyring.setPassphrase('a brand new passphrase', 'wrong current one'),
      WrongPassphraseError,
      /^Wrong passphrase$/,
    );
    await rejectsWith(keyring.setPassphrase('short', PASSPHRASE), Error, /at least 8 characters/);
    assert.deepEqual(profile.backend.vault, before, 'a refused change changed the keyring');

    await keyring.setPassphrase('a brand new passphrase', PASSPHRASE);
    const restarted = profile.browserRestart();
    await rejectsWith(restarted.unlock(PASSPHRASE), WrongPassphraseError, /Wrong passphrase/);
    await restarted.unlock('a brand new passphrase');
    assert.deepEqual(await restarted.secret('store:kirjava-a'), store);
  });

  it(
    'removing the passphrase needs the current one; ' + 'then nothing is locked after a restart and the secrets stay',
    async () => {
      const { profile, store } = await lockedProfile();
      const keyring = profile.browserRestart();
      const before = structuredClone(profile.backend.vault);
      await rejectsWith(keyring.removePassphrase('wrong current one'), WrongPassphraseError, /^Wrong passphrase$/);
      assert.deepEqual(profile.backend.vault, before);
      assert.deepEqual(await keyring.status(), { locked: true, hasPassphrase: true });

      assert.deepEqual(await keyring.removePassphrase(PASSPHRASE), { locked: false, hasPassphrase: false });
      assert.equal(profile.backend.vault?.kind, 'plain');
      const restarted = profile.browserRestart();
      assert.deepEqual(await restarted.status(), { locked: false, hasPassphrase: false });
      assert.deepEqual(await restarted.secret('store:kirjava-a'), store);
    },
  );

  it('a wrapped vault key record cut short is reported as damaged, not as a wrong passphrase', async () => {
    const { profile } = await lockedProfile();
    const record = profile.backend.vault as VaultKeyRecord & { kind: 'wrapped' };
    record.data = record.data.slice(0, 20);
    await rejectsWith(profile.browserRestart().unlock(PASSPHRASE), KeyringDamagedError, /wrong shape/);
  });
});

/** storage.local of an older version: the fake keeps copies, like the browser. */
class LegacyLocal implements LegacyStorage {
  constructor(public items: Record<string, unknown>) {}
  async get<K extends 'accounts' | 'searchIndexKeys'>(key: K): Promise<LocalValues[K]> {
    const reader = localReaders[key] as Reader<LocalValues[K]>;
    return reader(structuredClone(this.items[key]), (problem) => assert.fail(`${key}: ${problem}`));
  }
  async set<K extends 'accounts' | 'searchIndexKeys'>(key: K, value: LocalValues[K]) {
    this.items[key] = structuredClone(value);
  }
  async remove(key: string) {
    delete this.items[key];
  }
}

describe('Keyring: secrets of older versions move in from storage.local', () => {
  const rawPassphrase = 'a1'.repeat(32);
  const passphraseStore = '0f'.repeat(32);
  const enc = Buffer.alloc(32, 7).toString('base64');
  const mac = Buffer.alloc(32, 9).toString('base64');
  const legacy = () =>
    new LegacyLocal({
      accounts: {
        'hs|@a:x|DEV1': {
          baseUrl: 'hs',
          userId: '@a:x',
          deviceId: 'DEV1',
          storeName: 'kirjava-raw',
          storePassphrase: rawPassphrase,
          rawStoreKey: true,
          claimed: true,
        },
        'hs|@a:x|DEV2': {
          baseUrl: 'hs',
          userId: '@a:x',
          deviceId: 'DEV2',
          storeName: 'kirjava-old',
          storePassphrase: passphraseStore,
          claimed: true,
        },
      },
      searchIndexKeys: { 'hs|@a:x|DEV1': { enc, mac } },
      settings: { homeservers: ['hs'], allowedSites: [] },
    });

  it(
    'store keys and search keys move into the keyring and leave storage.local; ' +
      'the stores open with the same key or passphrase',
    async () => {
      const local = legacy();
      const profile = new Profile();
      const keyring = profile.worker({ iterations: FAST, migrate: (adopt) => migrateLegacySecrets(local, adopt) });
      await keyring.ready();

      const records = local.items.accounts as Record<string, Record<string, unknown>>;
      for (const record of Object.values(records)) assert.equal('storePassphrase' in record, false);
      assert.equal('searchIndexKeys' in local.items, false);
      assert.ok(!/[0-9a-f]{64}/.test(JSON.stringify(local.items)), 'a store key is still in storage.local');
      assert.equal(records['hs|@a:x|DEV2'].claimed, true, 'the rest of the record was lost');
      assert.equal(records['hs|@a:x|DEV1'].rawStoreKey, true);

      // What openAccount derives from the keyring is what the old record said: the raw key's
      // bytes, and for a store made with a passphrase the same 64 hex digits.
      assert.equal(hex(await keyring.secret('store:kirjava-raw')), rawPassphrase);
      assert.equal(hex(await keyring.secret('store:kirjava-old')), passphraseStore);
      const search = await keyring.secret('search:hs|@a:x|DEV1', 64);
      assert.equal(Buffer.from(search.slice(0, 32)).toString('base64'), enc);
      assert.equal(Buffer.from(search.slice(32)).toString('base64'), mac);
    },
  );

  it(
    'a keyring that holds another secret under the name keeps it, ' + 'and the old one stays in storage.local',
    async () => {
      const local = legacy();
      const profile = new Profile();
      const other = await profile.worker().secret('store:kirjava-raw');
      await profile.worker({ migrate: (adopt) => migrateLegacySecrets(local, adopt) }).ready();
      const records = local.items.accounts as Record<string, Record<string, unknown>>;
      assert.equal(records['hs|@a:x|DEV1'].storePassphrase, rawPassphrase);
      assert.equal('storePassphrase' in records['hs|@a:x|DEV2'], false);
      assert.deepEqual(await profile.worker().secret('store:kirjava-raw'), other);
    },
  );

  it('a locked keyring leaves storage.local untouched and migrates once unlocked', async () => {
    const { profile } = await lockedProfile();
    const local = legacy();
    const before = structuredClone(local.items);
    profile.session = new MemorySession();
    const keyring = profile.worker({ iterations: FAST, migrate: (adopt) => migrateLegacySecrets(local, adopt) });
    await rejectsWith(keyring.ready(), KeyringLockedError, /locked/);
    assert.deepEqual(local.items, before);
    await keyring.unlock(PASSPHRASE);
    assert.equal(hex(await keyring.secret('store:kirjava-old')), passphraseStore);
    assert.equal('searchIndexKeys' in local.items, false);
  });
});
