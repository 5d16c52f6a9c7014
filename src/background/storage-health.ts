/**
 * The worker's record of full storage (StorageQuota), shared by every account's decrypted-event
 * cache and search index, and its answer to the popup's `storage-status`.
 */
import { StorageQuota } from '../crypto/core/storage-quota.ts';
import { log } from './log.ts';
import { onUiRequest } from './ui-router.ts';

/** Whether the browser refuses Kirjava's writes for lack of space, for the whole worker. */
export const storageQuota = new StorageQuota(log);

/** Answers the popup's `storage-status`. */
export function registerStorageHealthService(): void {
  onUiRequest('storage-status', async () => storageQuota.status());
}
