/**
 * Deletes an account's stores: the IndexedDB databases matrix-sdk-crypto-wasm made for the
 * store name (`<name>::matrix-sdk-crypto` and `<name>::matrix-sdk-crypto-meta`) and
 * Kirjava's own beside them (`<name>-decrypted-events`, `<name>-media`).
 */
import { databaseNames, deleteDatabase } from '../platform/databases.ts';

/** Names of the IndexedDB databases that belong to the store `storeName`. */
export async function storeDatabases(storeName: string): Promise<string[]> {
  return (await databaseNames()).filter(
    (name) => name === storeName || name.startsWith(`${storeName}::`) || name.startsWith(`${storeName}-`),
  );
}

/** Deletes every database of the store `storeName`: the crypto library's and Kirjava's own. */
export async function deleteStore(storeName: string): Promise<void> {
  for (const name of await storeDatabases(storeName)) await deleteDatabase(name);
}
