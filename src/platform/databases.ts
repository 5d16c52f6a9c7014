/**
 * IndexedDB databases as a whole: which there are, and deleting one. Dexie opens and reads
 * Kirjava's own databases (cache, media keys, search index, keyring) and the crypto library
 * its own; listing and deleting them all (a logout, "Reset Kirjava") goes through here.
 */

const DELETE_TIMEOUT_MS = 10_000;

/** The names of every IndexedDB database of the extension's origin. */
export async function databaseNames(): Promise<string[]> {
  return (await indexedDB.databases()).map((db) => db.name).filter((name): name is string => !!name);
}

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
