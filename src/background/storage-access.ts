/**
 * Keeps extension storage to the extension's own contexts (worker, popup, options page):
 * `setAccessLevel('TRUSTED_CONTEXTS')` on `storage.session` (Chromium's default, made
 * explicit) and on `storage.local` (Chromium 156 supports it there too). Content scripts
 * then get "Access to storage is not allowed from this context"; the bridge asks the worker
 * for its configuration instead (src/background/hook-config.ts). A browser without
 * `setAccessLevel` (Firefox) keeps `storage.session` from content scripts anyway; its
 * `storage.local` holds no secret (they are in the keyring).
 */
import { restrictToExtension } from '../platform/ext.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

let restricted: Promise<void> | undefined;

async function restrict(name: 'local' | 'session'): Promise<void> {
  try {
    await restrictToExtension(name);
  } catch (error) {
    log.warn(`storage.${name} could not be restricted to the extension`, { error: errorText(error) });
  }
}

/** Restricts the storage areas (once per worker start); resolves when done. */
export function storageRestricted(): Promise<void> {
  restricted ??= Promise.all([restrict('local'), restrict('session')]).then(() => undefined);
  return restricted;
}
