/**
 * Kirjava's keyring: every secret the extension keeps at rest (a crypto store's key, a
 * search index's keys) is a named random byte string sealed under one random vault key
 * (src/crypto/keyring/keyring-seal.ts). Like a password manager, the vault key may be locked
 * with the user's passphrase: it is then unwrapped once per browser session and kept in
 * session memory, and until then every secret is refused with KeyringLockedError.
 *
 * Storage is injected (the extension's IndexedDB and `storage.session` in the browser,
 * memory in Node tests). A change of passphrase rewraps the vault key only: no secret is
 * re-sealed, and a wrong passphrase changes nothing.
 */
import {
  type SealedBlob,
  type VaultKeyRecord,
  VAULT_KEY_BYTES,
  checkPassphrase,
  checkVaultRecord,
  open,
  randomBytes,
  seal,
  unwrapVaultKey,
  wrapVaultKey,
} from './keyring-seal.ts';
import type { LockStatus } from '../../shared/ui.ts';

/** Where the keyring lives at rest: one vault key record and the sealed secrets by name. */
export interface KeyringBackend {
  loadVaultKey(): Promise<VaultKeyRecord | undefined>;
  saveVaultKey(record: VaultKeyRecord): Promise<void>;
  loadSecret(name: string): Promise<SealedBlob | undefined>;
  /** Stores the blob unless `name` already has one; false when it had. */
  addSecret(name: string, blob: SealedBlob): Promise<boolean>;
  deleteSecret(name: string): Promise<void>;
}

/** The unwrapped vault key for this browser session (survives worker restarts, not a browser restart). */
export interface SessionKeyCache {
  get(): Promise<Uint8Array | undefined>;
  set(key: Uint8Array): Promise<void>;
  clear(): Promise<void>;
}

export type { LockStatus };

/** Keyring entry names, one place for every feature. */
export const secretNames = {
  /** An account's crypto store and the caches beside it (32 bytes); see the account record's storeName. */
  store: (storeName: string) => `store:${storeName}`,
  /** An account's search index (64 bytes: the AES key, then the HMAC key). */
  search: (accountId: string) => `search:${accountId}`,
};

/** The keyring is locked: the user must enter the passphrase first. */
export class KeyringLockedError extends Error {
  constructor() {
    super('Kirjava is locked: open the Kirjava popup and enter your passphrase');
  }
}

/** How a Keyring is set up besides its storage: the PBKDF2 cost and the migration of older secrets. */
export interface KeyringOptions {
  /** PBKDF2 iterations for a new passphrase (tests lower it; the default is PBKDF2_ITERATIONS). */
  iterations?: number;
  /**
   * Runs once before the keyring's first use (retried at the next use if it fails): moves
   * secrets kept elsewhere by older versions in with `adopt`.
   */
  migrate?: (adopt: (name: string, secret: Uint8Array) => Promise<boolean>) => Promise<void>;
}

/** Hands out the named secrets, sealed at rest under the vault key; locks and unlocks the vault key. */
export class Keyring {
  /** The vault key once known in this worker; never a failure (a lock may end). */
  private vaultKey: Uint8Array | undefined;
  private migrated: Promise<void> | undefined;
  /** The first vault key being stored (a fresh keyring). */
  private vaultKeyCreation: Promise<void> | undefined;
  /** Secrets being created, so two callers of a new name get the same bytes. */
  private readonly creating = new Map<string, Promise<Uint8Array>>();
  /** Passphrase changes, one at a time. */
  private changes: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly backend: KeyringBackend,
    private readonly session: SessionKeyCache,
    private readonly options: KeyringOptions = {},
  ) {}

  /** Runs the migration if it has not run yet; see KeyringOptions.migrate. */
  ready(): Promise<void> {
    this.migrated ??= (this.options.migrate?.((name, secret) => this.adopt(name, secret)) ?? Promise.resolve()).catch(
      (error) => {
        this.migrated = undefined;
        throw error;
      },
    );
    return this.migrated;
  }

  /**
   * The secret called `name`, `length` random bytes made at its first use. Throws
   * KeyringLockedError while locked, KeyringDamagedError for an entry that does not open
   * (it is left as it is).
   */
  async secret(name: string, length = 32): Promise<Uint8Array> {
    await this.ready();
    const key = await this.unlockedKey();
    const stored = await this.backend.loadSecret(name);
    if (stored) return this.checkedLength(name, await open(key, name, stored), length);
    let made = this.creating.get(name);
    if (!made) {
      made = this.create(key, name, length).finally(() => this.creating.delete(name));
      this.creating.set(name, made);
    }
    return made;
  }

  /** Resolves once secrets can be had; KeyringLockedError while locked. */
  async unlocked(): Promise<void> {
    await this.ready();
    await this.unlockedKey();
  }

  /** Removes the secret `name` (its account is gone); works while locked. */
  async forget(name: string): Promise<void> {
    await this.ready().catch(() => undefined);
    await this.backend.deleteSecret(name);
  }

  async status(): Promise<LockStatus> {
    const record = await this.backend.loadVaultKey();
    const hasPassphrase = record?.kind === 'wrapped';
    return { hasPassphrase, locked: hasPassphrase && !(this.vaultKey ?? (await this.session.get())) };
  }

  /** Unwraps the vault key with `passphrase` for this browser session. */
  unlock(passphrase: string): Promise<LockStatus> {
    return this.serialized(async () => {
      const record = await this.backend.loadVaultKey();
      if (record?.kind !== 'wrapped') return this.status();
      const key = await unwrapVaultKey(record, passphrase);
      await this.session.set(key);
      this.vaultKey = key;
      return this.status();
    });
  }

  /**
   * Locks the vault key with `passphrase` (checked by checkPassphrase); replacing a
   * passphrase needs the `current` one. The keyring stays unlocked for this session.
   */
  setPassphrase(passphrase: string, current?: string): Promise<LockStatus> {
    return this.serialized(async () => {
      checkPassphrase(passphrase);
      const key = await this.keyForChange(current);
      await this.backend.saveVaultKey(await wrapVaultKey(key, passphrase, this.options.iterations));
      await this.session.set(key);
      this.vaultKey = key;
      return this.status();
    });
  }

  /** Stores the vault key unwrapped again; needs the `current` passphrase. */
  removePassphrase(current: string): Promise<LockStatus> {
    return this.serialized(async () => {
      const record = await this.backend.loadVaultKey();
      if (record?.kind !== 'wrapped') return this.status();
      const key = await unwrapVaultKey(record, current);
      await this.backend.saveVaultKey({ kind: 'plain', key });
      await this.session.clear();
      this.vaultKey = key;
      return this.status();
    });
  }

  /** Keeps `secret` as `name` unless the keyring has that name; true when it now holds exactly `secret`. */
  private async adopt(name: string, secret: Uint8Array): Promise<boolean> {
    const key = await this.unlockedKey();
    const stored = await this.backend.loadSecret(name);
    if (stored) return equal(await open(key, name, stored), secret);
    if (await this.backend.addSecret(name, await seal(key, name, secret))) return true;
    return this.adopt(name, secret);
  }

  private async create(key: Uint8Array, name: string, length: number): Promise<Uint8Array> {
    const secret = randomBytes(length);
    if (await this.backend.addSecret(name, await seal(key, name, secret))) return secret;
    // Made meanwhile by someone else: theirs counts.
    const stored = await this.backend.loadSecret(name);
    if (!stored) throw new Error(`Kirjava's keyring entry ${name} could not be stored`);
    return this.checkedLength(name, await open(key, name, stored), length);
  }

  private checkedLength(name: string, secret: Uint8Array, length: number): Uint8Array {
    if (secret.length !== length) {
      throw new Error(`Kirjava's keyring entry ${name} has ${secret.length} bytes, not ${length}`);
    }
    return secret;
  }

  /** The vault key, made on first use; KeyringLockedError while locked. */
  private async unlockedKey(): Promise<Uint8Array> {
    if (this.vaultKey) return this.vaultKey;
    const record = await this.backend.loadVaultKey();
    if (!record) {
      this.vaultKeyCreation ??= this.backend
        .saveVaultKey({ kind: 'plain', key: randomBytes(VAULT_KEY_BYTES) })
        .catch((error) => {
          this.vaultKeyCreation = undefined;
          throw error;
        });
      await this.vaultKeyCreation;
      return this.unlockedKey();
    }
    checkVaultRecord(record);
    const key = record.kind === 'plain' ? record.key : await this.session.get();
    if (!key) throw new KeyringLockedError();
    this.vaultKey = key;
    return key;
  }

  /** The vault key a passphrase change starts from: it needs the current passphrase when one is set. */
  private async keyForChange(current: string | undefined): Promise<Uint8Array> {
    const record = await this.backend.loadVaultKey();
    if (record?.kind !== 'wrapped') return this.unlockedKey();
    if (current === undefined || current === '') throw new Error('Enter your current passphrase first');
    return unwrapVaultKey(record, current);
  }

  private serialized<T>(change: () => Promise<T>): Promise<T> {
    const run = this.changes.then(change);
    this.changes = run.catch(() => undefined);
    return run;
  }
}

function equal(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}
