/**
 * Opens and deletes an account's search index: one database per account (laid out by
 * search-database.ts), named by a hash of the account id, holding sealed events and hashed
 * words only (search-index.ts), its keys in the keyring.
 */
import Dexie from 'dexie';
import { secretNames } from '../../crypto/keyring/keyring.ts';
import type { StorageQuota } from '../../crypto/core/storage-quota.ts';
import { keyring } from '../keyring.ts';
import { SearchIndex } from './search-index.ts';
import { SegmentedSearchStore } from './search-database.ts';

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest('SHA-256', new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

/** One database per account, named by a hash of the account id. */
const databaseName = async (accountId: string) => `kirjava-search-${(await sha256Hex(accountId)).slice(0, 16)}`;

/** Opens the index of the account `accountId` (see AccountView.id), creating its keys. */
export async function openSearchIndex(accountId: string, quota: StorageQuota): Promise<SearchIndex> {
  const keys = await keyring.secret(secretNames.search(accountId), 64);
  return SearchIndex.create(keys, await SegmentedSearchStore.open(await databaseName(accountId)), quota);
}

/** Deletes the index of `accountId` and its keys (the account logged out). */
export async function destroySearchIndex(accountId: string): Promise<void> {
  await Dexie.delete(await databaseName(accountId));
  await keyring.forget(secretNames.search(accountId));
}
