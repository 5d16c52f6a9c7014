/**
 * Which sites may use which account: an account belongs to the site whose page first used it
 * with a token the homeserver confirmed; another allowed site presenting its token gets
 * SiteNotBoundError until the user answers "Let <site> use <account> too?" in the popup.
 * Kept in the account's record (AccountRecord.sites); the questions in storage.session.
 */
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { storage } from '../platform/storage.ts';
import type { AccountSiteRequestView } from '../shared/messages.ts';
import type { AccountRecord } from '../shared/storage-keys.ts';
import { AccountUnusableError, SiteNotBoundError } from './account-errors.ts';

/** How AccountSites reads and writes the account records it keeps the sites in. */
export interface AccountRecords {
  get(id: string): Promise<AccountRecord | undefined>;
  save(id: string, record: AccountRecord): Promise<void>;
}

/** The sites bound to each account, and the user's answers about other sites that ask. */
export class AccountSites {
  /** Per account, the sites bound to it, as last read or written. */
  private readonly cache = new Map<string, string[]>();
  /** Serializes binding, so two sites' first requests cannot both bind an account. */
  private readonly queue = new SerialQueue();

  constructor(private readonly records: AccountRecords) {}

  /**
   * Whether a page of `origin` may use the account `id`; binds an account no site uses yet
   * to it. Otherwise the popup asks the user and the page gets SiteNotBoundError.
   */
  async check(id: string, origin: string): Promise<void> {
    if (this.cache.get(id)?.includes(origin)) return;
    await this.queue.run(async () => {
      const record = await this.records.get(id);
      if (!record) throw new AccountUnusableError('This account was removed from Kirjava');
      const sites = record.sites ?? [];
      this.cache.set(id, sites);
      if (sites.includes(origin)) return;
      if (sites.length === 0) {
        await this.records.save(id, { ...record, sites: [origin] });
        return;
      }
      const requests = await this.requests();
      if (!requests.some((r) => r.accountId === id && r.origin === origin)) {
        const request: AccountSiteRequestView = { accountId: id, origin, userId: record.userId, sites };
        await storage.session.set('account.siteRequests', [...requests, request]);
      }
      throw new SiteNotBoundError(origin, record.userId);
    });
  }

  /** Sites waiting for the user's answer to "let <origin> use <account> too?". */
  async requests(): Promise<AccountSiteRequestView[]> {
    return storage.session.get('account.siteRequests');
  }

  /** The user's answer: Allow binds the site to the account, Deny drops the question. */
  decide(accountId: string, origin: string, allow: boolean): Promise<void> {
    return this.queue.run(async () => {
      const requests = await this.requests();
      if (!requests.some((r) => r.accountId === accountId && r.origin === origin)) {
        throw new Error(`${origin} is not waiting for an answer about this account any more`);
      }
      if (allow) {
        const record = await this.records.get(accountId);
        if (!record) throw new Error('This account is gone');
        await this.records.save(accountId, { ...record, sites: [...new Set([...(record.sites ?? []), origin])] });
      }
      const rest = requests.filter((r) => !(r.accountId === accountId && r.origin === origin));
      await storage.session.set('account.siteRequests', rest);
    });
  }

  /** The record of `id` was written: its sites are these now. */
  remember(id: string, record: AccountRecord): void {
    this.cache.set(id, record.sites ?? []);
  }

  /** The account `id` is gone. */
  forget(id: string): void {
    this.cache.delete(id);
  }

  /** The account `id` is gone: questions about it go too. */
  dropRequests(id: string): Promise<void> {
    return this.queue.run(async () => {
      const requests = await this.requests();
      const rest = requests.filter((r) => r.accountId !== id);
      if (rest.length !== requests.length) await storage.session.set('account.siteRequests', rest);
    });
  }
}
