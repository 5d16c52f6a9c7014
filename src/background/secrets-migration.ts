/**
 * Moves the secrets older versions kept in `storage.local` into the keyring: each account
 * record's `storePassphrase` (64 hex digits: the 32 bytes of its crypto store's key) and
 * the search indexes' keys (`searchIndexKeys`). A secret leaves `storage.local` only once
 * the keyring holds exactly it; whatever cannot be moved stays where it was, with a warning.
 */
import { secretNames } from '../crypto/keyring/keyring.ts';
import type { AccountRecord, LegacySearchKeys, LocalValues } from '../shared/storage-keys.ts';
import { log } from './log.ts';

type Adopt = (name: string, secret: Uint8Array) => Promise<boolean>;
type LegacyKey = 'accounts' | 'searchIndexKeys';
/** The keys of `storage.local` that held secrets (src/platform/storage.ts; a fake in Node tests). */
export interface LegacyStorage {
  get<K extends LegacyKey>(key: K): Promise<LocalValues[K]>;
  set<K extends LegacyKey>(key: K, value: LocalValues[K]): Promise<void>;
  remove(key: LegacyKey): Promise<void>;
}
/** An account record as older versions kept it: with its store's key (the reader keeps the field). */
type LegacyRecords = Record<string, AccountRecord & { storePassphrase?: unknown }>;

const HEX_KEY = /^[0-9a-f]{64}$/;
const hexBytes = (hex: string) => Uint8Array.from(hex.match(/../g) ?? [], (byte) => parseInt(byte, 16));

function base64Key(text: unknown): Uint8Array | undefined {
  try {
    const bytes = Uint8Array.from(atob(String(text)), (c) => c.charCodeAt(0));
    return bytes.length === 32 ? bytes : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Moves the legacy secrets in `storage` into the keyring through `adopt`, removing each from
 * `storage` only once the keyring holds it; the keyring runs it before its first use.
 */
export async function migrateLegacySecrets(storage: LegacyStorage, adopt: Adopt): Promise<void> {
  const records: LegacyRecords = await storage.get('accounts');
  const searchKeys = await storage.get('searchIndexKeys');

  const movedStores = new Map<string, unknown>();
  for (const [id, record] of Object.entries(records)) {
    if (record.storePassphrase === undefined) continue;
    const passphrase = String(record.storePassphrase);
    if (HEX_KEY.test(passphrase) && (await adopt(secretNames.store(String(record.storeName)), hexBytes(passphrase)))) {
      movedStores.set(id, record.storePassphrase);
    } else {
      log.warn('a store key stays in storage.local: the keyring holds another one', {
        store: String(record.storeName),
      });
    }
  }
  const keptSearchKeys: LegacySearchKeys = {};
  for (const [id, keys] of Object.entries(searchKeys)) {
    const enc = base64Key(keys.enc);
    const mac = base64Key(keys.mac);
    if (!enc || !mac || !(await adopt(secretNames.search(id), new Uint8Array([...enc, ...mac])))) {
      log.warn('a search index key stays in storage.local: the keyring holds another one');
      keptSearchKeys[id] = keys;
    }
  }

  if (movedStores.size) {
    // Read again: an account may have been added meanwhile.
    const fresh: LegacyRecords = await storage.get('accounts');
    for (const [id, passphrase] of movedStores) {
      if (fresh[id]?.storePassphrase === passphrase) delete fresh[id].storePassphrase;
    }
    await storage.set('accounts', fresh);
  }
  if (Object.keys(searchKeys).length === 0) return;
  if (Object.keys(keptSearchKeys).length) await storage.set('searchIndexKeys', keptSearchKeys);
  else await storage.remove('searchIndexKeys');
}
