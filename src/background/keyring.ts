/**
 * The worker's keyring (src/crypto/keyring/keyring.ts) in the extension's own IndexedDB, which no
 * content script and no page can open (it belongs to the extension's origin); the vault
 * key unwrapped by the user's passphrase is kept in `storage.session` (memory, extension
 * contexts only) until the browser closes. Also answers the popup's and options page's
 * lock requests.
 */
import Dexie, { type Table } from 'dexie';
import { Keyring, type KeyringBackend, type SessionKeyCache } from '../crypto/keyring/keyring.ts';
import type { SealedBlob, VaultKeyRecord } from '../crypto/keyring/keyring-seal.ts';
import { storage } from '../platform/storage.ts';
import { migrateLegacySecrets } from './secrets-migration.ts';
import { storageRestricted } from './storage-access.ts';
import { onUiRequest } from './ui-router.ts';

const VAULT_KEY_ID = 'vault';

class KeyringDatabase extends Dexie {
  vault!: Table<VaultKeyRecord, string>;
  secrets!: Table<SealedBlob, string>;

  constructor() {
    super('kirjava-keyring');
    this.version(1).stores({ vault: '', secrets: '' });
  }
}

class IndexedDbKeyringBackend implements KeyringBackend {
  private readonly db = new KeyringDatabase();

  loadVaultKey() {
    return this.db.vault.get(VAULT_KEY_ID);
  }

  async saveVaultKey(record: VaultKeyRecord) {
    await this.db.vault.put(record, VAULT_KEY_ID);
  }

  loadSecret(name: string) {
    return this.db.secrets.get(name);
  }

  addSecret(name: string, blob: SealedBlob) {
    return this.db.secrets.add(blob, name).then(
      () => true,
      (error: unknown) => {
        if ((error as { name?: string })?.name === 'ConstraintError') return false;
        throw error;
      },
    );
  }

  deleteSecret(name: string) {
    return this.db.secrets.delete(name);
  }
}

const toBase64 = (bytes: Uint8Array) => btoa(String.fromCharCode(...bytes));
const fromBase64 = (text: string) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/** `storage.session`, only after it is restricted to the extension's own contexts. */
const sessionKeyCache: SessionKeyCache = {
  async get() {
    const stored = await storage.session.get('keyring.vaultKey');
    return stored === undefined ? undefined : fromBase64(stored);
  },
  async set(key) {
    await storageRestricted();
    await storage.session.set('keyring.vaultKey', toBase64(key));
  },
  async clear() {
    await storage.session.remove('keyring.vaultKey');
  },
};

/** The worker's one keyring; secrets older versions kept in `storage.local` move in at its first use. */
export const keyring = new Keyring(new IndexedDbKeyringBackend(), sessionKeyCache, {
  migrate: (adopt) => migrateLegacySecrets(storage.local, adopt),
});

/** 'lock-status', 'lock-unlock', 'lock-set', 'lock-remove' for the popup and options page. */
export function registerLockService(): void {
  onUiRequest('lock-status', () => keyring.status());
  onUiRequest('lock-unlock', ({ passphrase }) => keyring.unlock(String(passphrase)));
  onUiRequest('lock-set', ({ passphrase, current }) =>
    keyring.setPassphrase(String(passphrase), current === undefined ? undefined : String(current)),
  );
  onUiRequest('lock-remove', ({ current }) => keyring.removePassphrase(String(current)));
}
