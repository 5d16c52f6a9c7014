import type { EncryptedFile, MediaKey } from '../../shared/media.ts';
import { isEncryptedFile } from './attachments.ts';
import { type Logger, defaultLog, errorText } from '../core/log.ts';

export type { MediaKey };

/** Where keys outlive the worker (the service worker stops when idle); optional. */
export interface MediaKeyStore {
  load(mxc: string): Promise<MediaKey | undefined>;
  save(mxc: string, key: MediaKey): Promise<void>;
}

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/**
 * Remembers the encrypted files that decrypted events point at (mxc URI → EncryptedFile),
 * and makes such content usable by a plain client: next to the standard `file` and
 * `info.thumbnail_file` it sets `url` and `info.thumbnail_url` to the ciphertext's mxc, the
 * only fields a client without E2EE knows, so the client downloads it through the hook,
 * which decrypts (src/content/media-hook.ts).
 *
 * The keys are part of the event content the page already receives, so handing one to the
 * page that asks for it reveals nothing new. Recent keys are in memory (bounded); with a
 * store, every key also outlives worker restarts, so a client that shows an old picture
 * from its own cache still gets it decrypted.
 */
export class MediaKeyRing {
  private readonly keys = new Map<string, MediaKey>();
  /** Saves under way: a page must not see a file's event before its key is stored. */
  private readonly saving = new Set<Promise<void>>();

  constructor(
    private readonly limit = 20_000,
    private readonly store?: MediaKeyStore,
    private readonly log: Logger = defaultLog,
  ) {}

  /** The key of the ciphertext at `mxc`, if a decrypted event named it. */
  async lookup(mxc: string): Promise<MediaKey | undefined> {
    const known = this.keys.get(mxc);
    if (known || !this.store) return known;
    const stored = await this.store.load(mxc).catch((error) => {
      this.log.warn('reading a stored media key failed', { error: errorText(error) });
      return undefined;
    });
    if (stored && !this.keys.has(mxc)) this.keep(mxc, stored);
    return this.keys.get(mxc) ?? stored;
  }

  /**
   * Content of a decrypted event with `url` / `info.thumbnail_url` added for its encrypted
   * files (also inside `m.new_content`, an edit that replaces the file); other content as is.
   */
  expose(content: Json): Json {
    let out = this.exposeOne(content);
    if (isObject(out['m.new_content'])) {
      const replaced = this.exposeOne(out['m.new_content']);
      if (replaced !== out['m.new_content']) out = { ...out, 'm.new_content': replaced };
    }
    return out;
  }

  private exposeOne(content: Json): Json {
    let out = content;
    const info = isObject(content.info) ? content.info : undefined;
    if (isEncryptedFile(content.file)) {
      this.remember(content.file, typeof info?.mimetype === 'string' ? info.mimetype : undefined);
      if (typeof content.url !== 'string') out = { ...out, url: content.file.url };
    }
    // Some senders put the thumbnail at the top level (not the spec's place): honour it too.
    if (isEncryptedFile(content.thumbnail_file)) {
      const thumbInfo = isObject(content.thumbnail_info)
        ? content.thumbnail_info
        : isObject(info?.thumbnail_info)
          ? info.thumbnail_info
          : undefined;
      this.remember(content.thumbnail_file, typeof thumbInfo?.mimetype === 'string' ? thumbInfo.mimetype : undefined);
      if (typeof content.thumbnail_url !== 'string') out = { ...out, thumbnail_url: content.thumbnail_file.url };
    }
    if (info && isEncryptedFile(info.thumbnail_file)) {
      const thumbInfo = isObject(info.thumbnail_info) ? info.thumbnail_info : undefined;
      this.remember(info.thumbnail_file, typeof thumbInfo?.mimetype === 'string' ? thumbInfo.mimetype : undefined);
      if (typeof info.thumbnail_url !== 'string') {
        out = { ...out, info: { ...info, thumbnail_url: info.thumbnail_file.url } };
      }
    }
    return out;
  }

  private remember(file: EncryptedFile, mimetype: string | undefined): void {
    const key: MediaKey = mimetype === undefined ? { file } : { file, mimetype };
    const before = this.keys.get(file.url);
    this.keep(file.url, key);
    if (this.store && JSON.stringify(before) !== JSON.stringify(key)) {
      const saved = this.store
        .save(file.url, key)
        .catch((error) => this.log.warn('storing a media key failed', { error: errorText(error) }));
      this.saving.add(saved);
      void saved.then(() => this.saving.delete(saved));
    }
  }

  /**
   * Resolves once every key named so far is stored (or its save failed, which is logged).
   * Awaited before a decrypted body goes back to the page: a worker stopped right after the
   * client got an event still has the key of its file when the client downloads it.
   */
  async stored(): Promise<void> {
    while (this.saving.size > 0) await Promise.all([...this.saving]);
  }

  private keep(mxc: string, key: MediaKey): void {
    this.keys.delete(mxc); // re-insert: the map's order is least recently seen first
    if (this.keys.size >= this.limit) this.keys.delete(this.keys.keys().next().value as string);
    this.keys.set(mxc, key);
  }
}
