/**
 * Highlight counts for encrypted rooms. The homeserver cannot read an encrypted message,
 * so its push rules only ever say "notify" (`.m.rule.encrypted`) and its
 * `unread_notifications.highlight_count` misses every mention in an encrypted room.
 * Kirjava evaluates the highlight rules on the plaintext (Matrix spec "Push rules":
 * `.m.rule.is_user_mention`, the legacy `.m.rule.contains_display_name` when the event has
 * no `m.mentions`, and the user's own keyword rules with a highlight tweak) and adds the
 * mentions the user has not read yet to the count the server sent.
 *
 * "Not read yet" is tracked from the user's own read receipts and own messages in the
 * syncs Kirjava sees; it lives in memory, so after a worker restart only mentions decrypted
 * since then are counted (never more than the truth, at worst fewer).
 */
import { ENCRYPTION_INFO_KEY } from '../../shared/names.ts';

type Json = Record<string, unknown>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);
const arrayOf = (value: unknown): unknown[] => (Array.isArray(value) ? value : []);

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** A push rule glob as a whole-word, case-insensitive pattern. */
const globWord = (glob: string) =>
  new RegExp(`(^|\\W)${escapeRegExp(glob).replace(/\\\*/g, '.*').replace(/\\\?/g, '.')}($|\\W)`, 'i');

/** One account's unread mentions in encrypted rooms, and the highlight counts they add to a sync. */
export class MentionTracker {
  /** roomId → unread mention event id → origin_server_ts. */
  private readonly unread = new Map<string, Map<string, number>>();
  private readonly displayNames = new Map<string, string>();
  private keywords: RegExp[] = [];

  constructor(private readonly userId: string) {}

  /** Reads the user's keyword rules from `m.push_rules` account data when a sync carries it. */
  observeAccountData(sync: Json): void {
    const events = isObject(sync.account_data) ? arrayOf(sync.account_data.events) : [];
    for (const event of events) {
      if (!isObject(event) || event.type !== 'm.push_rules' || !isObject(event.content)) continue;
      const global = isObject(event.content.global) ? event.content.global : {};
      this.keywords = arrayOf(global.content).flatMap((rule) => {
        if (!isObject(rule) || rule.enabled === false || typeof rule.pattern !== 'string') return [];
        if (typeof rule.rule_id === 'string' && rule.rule_id.startsWith('.')) return [];
        const highlights = arrayOf(rule.actions).some(
          (action) => isObject(action) && action.set_tweak === 'highlight' && action.value !== false,
        );
        return highlights ? [globWord(rule.pattern)] : [];
      });
    }
  }

  /**
   * Called with a joined room's sync section after its timeline was decrypted: records new
   * mentions, forgets read ones, and adds the unread ones to `highlight_count`.
   */
  applyToRoom(roomId: string, room: Json): void {
    const state = isObject(room.state) ? arrayOf(room.state.events) : [];
    const timeline = isObject(room.timeline) ? arrayOf(room.timeline.events) : [];
    let unread = this.unread.get(roomId);
    for (const event of [...state, ...timeline]) {
      if (!isObject(event)) continue;
      if (event.type === 'm.room.member' && event.state_key === this.userId && isObject(event.content)) {
        const name = event.content.displayname;
        if (typeof name === 'string' && name.trim()) this.displayNames.set(roomId, name);
      }
    }
    for (const event of timeline) {
      if (!isObject(event) || typeof event.event_id !== 'string') continue;
      const ts = typeof event.origin_server_ts === 'number' ? event.origin_server_ts : 0;
      if (event.sender === this.userId) {
        this.markReadUpTo(roomId, ts); // sending a message means the room was read
        unread = this.unread.get(roomId);
      } else if (this.wasDecrypted(event) && this.mentionsUser(roomId, event)) {
        if (!unread) this.unread.set(roomId, (unread = new Map()));
        unread.set(event.event_id, ts);
      }
    }
    this.observeReceipts(roomId, room);
    const count = this.unread.get(roomId)?.size ?? 0;
    const counts = room.unread_notifications;
    if (count > 0 && isObject(counts)) {
      const server = typeof counts.highlight_count === 'number' ? counts.highlight_count : 0;
      room.unread_notifications = { ...counts, highlight_count: server + count };
    }
  }

  /**
   * Whether a decrypted event (of a `/notifications` answer, say) mentions the user by the
   * highlight rules above: what the server's push rules would have said, could they read it.
   */
  highlights(roomId: string, event: unknown): boolean {
    return (
      isObject(event) && event.sender !== this.userId && this.wasDecrypted(event) && this.mentionsUser(roomId, event)
    );
  }

  private wasDecrypted(event: Json): boolean {
    const info = isObject(event.unsigned) ? event.unsigned[ENCRYPTION_INFO_KEY] : undefined;
    return isObject(info) && info.decrypted === true;
  }

  private mentionsUser(roomId: string, event: Json): boolean {
    if (event.type !== 'm.room.message' || !isObject(event.content)) return false;
    const content = event.content;
    const body = typeof content.body === 'string' ? content.body : '';
    if (isObject(content['m.mentions'])) {
      if (arrayOf(content['m.mentions'].user_ids).includes(this.userId)) return true;
    } else {
      const name = this.displayNames.get(roomId);
      if (name && globWord(name).test(body)) return true;
    }
    return this.keywords.some((keyword) => keyword.test(body));
  }

  private observeReceipts(roomId: string, room: Json): void {
    const ephemeral = isObject(room.ephemeral) ? arrayOf(room.ephemeral.events) : [];
    for (const event of ephemeral) {
      if (!isObject(event) || event.type !== 'm.receipt' || !isObject(event.content)) continue;
      for (const [eventId, receipts] of Object.entries(event.content)) {
        if (!isObject(receipts)) continue;
        for (const kind of ['m.read', 'm.read.private']) {
          const mine = isObject(receipts[kind]) ? (receipts[kind] as Json)[this.userId] : undefined;
          if (!isObject(mine)) continue;
          const readTs = this.unread.get(roomId)?.get(eventId) ?? (typeof mine.ts === 'number' ? mine.ts : undefined);
          if (readTs !== undefined) this.markReadUpTo(roomId, readTs);
        }
      }
    }
  }

  private markReadUpTo(roomId: string, ts: number): void {
    const unread = this.unread.get(roomId);
    if (!unread) return;
    for (const [eventId, eventTs] of unread) if (eventTs <= ts) unread.delete(eventId);
    if (unread.size === 0) this.unread.delete(roomId);
  }
}
