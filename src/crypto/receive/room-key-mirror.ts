import { DeviceId, type InboundGroupSession, OlmMachine, UserId } from '@matrix-org/matrix-sdk-crypto-wasm';
import { type Logger, defaultLog, errorText } from '../core/log.ts';
import { unref } from '../core/later.ts';

/** A megolm session as the mirror knows it: its room and its id. */
export interface SessionRef {
  roomId: string;
  sessionId: string;
}

/** What one feed cost: how many stored sessions the export read, and how long export + import took. */
export interface FeedCost {
  sessionsRead: number;
  ms: number;
}

/**
 * A feed is guessed to cost this much before the first one is measured (≈ 2,000 stored
 * sessions at ≈ 0.15 ms each in Chromium).
 */
const FIRST_FEED_GUESS_MS = 300;
/** Time a decryption on the mirror saves over the persistent machine's IndexedDB store (0.7–2 ms measured). */
const SAVING_PER_EVENT_MS = 1;
/** How long a background feed waits for more keys to arrive, so one export serves them all. */
const FEED_DELAY_MS = 250;

const keyOf = (roomId: string, sessionId: string) => `${roomId}\u0000${sessionId}`;

/**
 * Keeps an in-memory, decrypt-only OlmMachine holding copies of the persistent machine's
 * room keys, so that decryption does not go through the persistent store (one IndexedDB
 * transaction per event for the session, three more to re-check an uncross-signed sender).
 *
 * Keys are copied with `exportRoomKeys(predicate)` → `importExportedRoomKeys`. An export
 * reads and decrypts the whole store whatever the predicate, so copying is batched and kept
 * off the per-event path: everything at the first feed after the account opens, then the
 * sessions the persistent machine reports as received or improved (room-key-updated
 * callback: to-device keys, forwards, backup, key files, recovery), a short while after
 * they arrive. A sync that brings many events of sessions not copied yet waits for the
 * feed when that is cheaper than decrypting them from the store (`worthFeedingFor`).
 *
 * The mirror never talks to the homeserver: it has its own throwaway identity, sends no
 * key requests and answers none.
 */
export class RoomKeyMirror {
  private machine: Promise<OlmMachine> | undefined;
  private readonly mirrored = new Set<string>();
  private readonly pending = new Map<string, SessionRef>();
  private fedAll = false;
  private closed = false;
  private last: Promise<void> = Promise.resolve();
  private queued: Promise<void> | undefined;
  private timer: ReturnType<typeof setTimeout> | undefined;
  /** The most recent feed's cost (the bench reports it; the next decision uses it). */
  lastFeed: FeedCost | undefined;

  constructor(
    private readonly source: OlmMachine,
    private readonly identity: { userId: string; deviceId: string },
    private readonly log: Logger = defaultLog,
    private readonly options: { feedDelayMs?: number; savingPerEventMs?: number } = {},
  ) {}

  /** The decrypt-only machine, once it holds this session's key (as far as the mirror knows). */
  machineFor(roomId: string, sessionId: string): Promise<OlmMachine> | undefined {
    return this.closed || !this.mirrored.has(keyOf(roomId, sessionId)) ? undefined : this.machine;
  }

  /** How many sessions the mirror holds. */
  get size(): number {
    return this.mirrored.size;
  }

  /**
   * The persistent machine received or updated these sessions' keys: copy the new ones soon.
   * One the mirror holds already is not copied again: the library also reports a session it
   * only re-saved (with what it learned of the sender on a decryption or a shield lookup:
   * once per new session of a cross-signed sender), and each copy reads the whole store. A
   * key improved for real (an earlier message index, from a forward or a backup) shows when
   * the mirror cannot decrypt an earlier message: see `refresh`.
   */
  keysUpdated(sessions: Iterable<SessionRef>): void {
    for (const session of sessions) {
      const key = keyOf(session.roomId, session.sessionId);
      if (!this.mirrored.has(key)) this.pending.set(key, session);
    }
    if (this.pending.size > 0) this.feedSoon();
  }

  /**
   * The mirror's copy of this session could not decrypt a message the persistent machine may
   * (its key was improved since): the persistent machine decrypts the session's events until
   * the copy is made again, soon.
   */
  refresh(session: SessionRef): void {
    const key = keyOf(session.roomId, session.sessionId);
    this.mirrored.delete(key);
    this.pending.set(key, session);
    this.feedSoon();
  }

  /** Copies what is pending after a short delay, batching keys that arrive together. */
  feedSoon(): void {
    if (this.closed || this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.feed();
    }, this.options.feedDelayMs ?? FEED_DELAY_MS);
    unref(this.timer);
  }

  /**
   * Whether decrypting these events is faster after a feed than from the persistent store:
   * when enough of them belong to sessions that are waiting to be copied.
   */
  worthFeedingFor(sessions: SessionRef[]): boolean {
    if (this.closed || (this.fedAll && this.pending.size === 0)) return false;
    let waiting = 0;
    for (const { roomId, sessionId } of sessions) {
      const key = keyOf(roomId, sessionId);
      if (!this.mirrored.has(key) && (!this.fedAll || this.pending.has(key))) waiting += 1;
    }
    const feedMs = this.lastFeed?.ms ?? FIRST_FEED_GUESS_MS;
    return waiting * (this.options.savingPerEventMs ?? SAVING_PER_EVENT_MS) > feedMs;
  }

  /** Copies every pending key now (everything, the first time); one feed at a time. Never rejects. */
  feed(): Promise<void> {
    if (!this.queued) {
      const next = this.last.then(() => {
        this.queued = undefined;
        return this.feedOnce();
      });
      this.queued = next;
      this.last = next;
    }
    return this.queued;
  }

  /** Drops the copies (logout, account closed): the mirror is empty and stays so. */
  close(): void {
    this.closed = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.mirrored.clear();
    this.pending.clear();
    const machine = this.machine;
    this.machine = undefined;
    void machine?.then((m) => m.close()).catch(() => undefined);
  }

  private async feedOnce(): Promise<void> {
    if (this.closed) return;
    const all = !this.fedAll;
    const wanted = new Map(this.pending);
    this.pending.clear();
    if (!all && wanted.size === 0) return;
    const started = performance.now();
    let sessionsRead = 0;
    const copied: string[] = [];
    try {
      const exported = await this.source.exportRoomKeys((session: InboundGroupSession) => {
        sessionsRead += 1;
        const key = keyOf(session.roomId.toString(), session.sessionId);
        if (!all && !wanted.has(key)) return false;
        copied.push(key);
        return true;
      });
      if (this.closed) return;
      const machine = await (this.machine ??= this.create());
      await machine.importExportedRoomKeys(exported, () => {});
      if (this.closed) return;
      // Keys the mirror already held at least as well are not imported again, but are held.
      for (const key of copied) this.mirrored.add(key);
      this.fedAll = true;
      this.lastFeed = { sessionsRead, ms: performance.now() - started };
    } catch (error) {
      // Decryption falls back to the persistent machine meanwhile; the next keys retry.
      for (const [key, ref] of wanted) this.pending.set(key, ref);
      if (!this.closed) this.log.warn('could not copy room keys for fast decryption', { error: errorText(error) });
    }
  }

  private async create(): Promise<OlmMachine> {
    const machine = await OlmMachine.initialize(new UserId(this.identity.userId), new DeviceId(this.identity.deviceId));
    machine.roomKeyRequestsEnabled = false;
    machine.roomKeyForwardingEnabled = false;
    return machine;
  }
}
