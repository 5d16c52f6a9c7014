/**
 * Deletes an account's stores: the IndexedDB databases matrix-sdk-crypto-wasm made for the
 * store name (`<name>::matrix-sdk-crypto` and `<name>::matrix-sdk-crypto-meta`) and
 * Kirjava's own beside them (`<name>-decrypted-events`, `<name>-media`).
 */

const DELETE_TIMEOUT_MS = 10_000;

/** Deletes one IndexedDB database; fails with what the user can do when it stays open. */
export function deleteDatabase(name: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const request = indexedDB.deleteDatabase(name);
    const timer = setTimeout(
      () =>
        reject(
          new Error(
            `The crypto store ${name} could not be deleted because it is still open: ` +
              'reload Kirjava in chrome://extensions and log out again',
          ),
        ),
      DELETE_TIMEOUT_MS,
    );
    request.onsuccess = () => {
      clearTimeout(timer);
      resolve();
    };
    request.onerror = () => {
      clearTimeout(timer);
      reject(request.error ?? new Error(`Could not delete the crypto store ${name}`));
    };
  });
}

/** Names of the IndexedDB databases that belong to the store `storeName`. */
export async function storeDatabases(storeName: string): Promise<string[]> {
  const all = await indexedDB.databases();
  return all
    .map((db) => db.name)
    .filter(
      (name): name is string =>
        !!name && (name === storeName || name.startsWith(`${storeName}::`) || name.startsWith(`${storeName}-`)),
    );
}

/** Deletes every database of the store `storeName`: the crypto library's and Kirjava's own. */
export async function deleteStore(storeName: string): Promise<void> {
  for (const name of await storeDatabases(storeName)) await deleteDatabase(name);
}
