import {
  EncryptionAlgorithm,
  EncryptionSettings,
  HistoryVisibility,
  type CollectStrategy,
} from '@matrix-org/matrix-sdk-crypto-wasm';
import { MatrixApiError, type MatrixHttp, seg } from '../core/http.ts';

/** The only room algorithm Kirjava (and the library) encrypts with. */
export const MEGOLM = 'm.megolm.v1.aes-sha2';

/**
 * `history_visibility` values (Matrix spec `m.room.history_visibility`), from the one that
 * shares room keys with the fewest to the one that shares with the most.
 */
const VISIBILITIES = ['joined', 'invited', 'shared', 'world_readable'] as const;
/** One of the `history_visibility` values. */
export type HistoryVisibilityName = (typeof VISIBILITIES)[number];

/** What the room's `m.room.encryption` content asks of a sender. */
export interface RoomEncryptionRules {
  algorithm: string;
  /** `rotation_period_ms`: a new session after this long. */
  rotationPeriodMs?: number;
  /** `rotation_period_msgs`: a new session after this many messages. */
  rotationPeriodMessages?: number;
}

/** Everything about a room that decides how its room key is shared. */
export interface RoomRules extends RoomEncryptionRules {
  historyVisibility: HistoryVisibilityName;
}

let defaults: { messages: number; ms: number } | undefined;
/**
 * The library's session rotation defaults, used when the room sets no limit. Read on first
 * use: the WASM module is loaded lazily, so nothing of it may run when this module loads.
 */
function defaultLimits(): { messages: number; ms: number } {
  if (!defaults) {
    const settings = new EncryptionSettings();
    defaults = { messages: Number(settings.rotationPeriodMessages), ms: Number(settings.rotationPeriod) / 1000 };
    settings.free();
  }
  return defaults;
}

/**
 * A room may ask for very long sessions; the library may cap them (the spec suggests no
 * more than a week). Kirjava's fast path holds itself to these caps, which is safe whatever
 * the library does: a lower limit only means a full share (cheap, never a panic) sooner.
 */
const MAX_ROTATION_MESSAGES = 10_000;

/** The room's rotation limits for Kirjava's fast path: message count and age in ms. */
export function rotationLimits(rules: RoomEncryptionRules): { messages: number; ms: number } {
  const { messages, ms } = defaultLimits();
  return {
    messages: Math.min(rules.rotationPeriodMessages ?? messages, MAX_ROTATION_MESSAGES),
    // A room asking for a longer period than the default is held to the default: safe either way.
    ms: Math.min(rules.rotationPeriodMs ?? ms, ms),
  };
}

/** The library's encryption settings for a room under these rules, as matrix-js-sdk's RoomEncryptor sets them. */
export function encryptionSettings(rules: RoomRules, strategy: CollectStrategy): EncryptionSettings {
  const settings = new EncryptionSettings();
  settings.algorithm = EncryptionAlgorithm.MegolmV1AesSha2;
  settings.sharingStrategy = strategy;
  // Shared and world-readable rooms mark the key `shared_history` (MSC3061); others do not.
  settings.historyVisibility = {
    joined: HistoryVisibility.Joined,
    invited: HistoryVisibility.Invited,
    shared: HistoryVisibility.Shared,
    world_readable: HistoryVisibility.WorldReadable,
  }[rules.historyVisibility];
  if (rules.rotationPeriodMs !== undefined) settings.rotationPeriod = BigInt(rules.rotationPeriodMs) * 1000n;
  if (rules.rotationPeriodMessages !== undefined) {
    settings.rotationPeriodMessages = BigInt(rules.rotationPeriodMessages);
  }
  return settings;
}

/** Invited members get the room key unless the room's history is visible to joined members only. */
export const sharesWithInvited = (rules: RoomRules): boolean => rules.historyVisibility !== 'joined';

/** An `m.room.encryption` content read as rules; junk limits are left out (the defaults apply). */
export function encryptionRules(content: unknown): RoomEncryptionRules {
  const c = (typeof content === 'object' && content !== null ? content : {}) as Record<string, unknown>;
  const limit = (value: unknown) =>
    typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  return {
    algorithm: typeof c.algorithm === 'string' ? c.algorithm : '',
    rotationPeriodMs: limit(c.rotation_period_ms),
    rotationPeriodMessages: limit(c.rotation_period_msgs),
  };
}

/** A `history_visibility` value; an unknown one is read as the strictest, `joined`. */
export function visibilityOf(content: unknown): HistoryVisibilityName {
  const value = (content as { history_visibility?: unknown } | null)?.history_visibility;
  return VISIBILITIES.find((v) => v === value) ?? 'joined';
}

/** Whether `next` shares no more widely, and rotates no less often, than `known`. */
function noLooser(known: RoomEncryptionRules, next: RoomEncryptionRules): boolean {
  if (next.algorithm !== MEGOLM) return true; // a send under it fails: nothing is shared at all
  if (known.algorithm !== MEGOLM) return false;
  const a = rotationLimits(known);
  const b = rotationLimits(next);
  return b.messages <= a.messages && b.ms <= a.ms;
}

interface KnownRules {
  encryption?: RoomEncryptionRules;
  visibility?: HistoryVisibilityName;
}

interface StateEvent {
  type?: unknown;
  state_key?: unknown;
  content?: unknown;
}

/**
 * Knows each encrypted room's rules for its room key: the `m.room.encryption` content
 * (algorithm, rotation by messages and by time) and the history visibility. The homeserver
 * is asked (state API, the account's own token) before the first send of a room in this
 * worker; after that a sync, which passed through the page, may only tighten them: a sync
 * that would share more widely or rotate less often (say, `shared` visibility where the
 * homeserver said `joined`) makes the next send ask the homeserver again.
 */
export class RoomRulesBook {
  private readonly rooms = new Map<string, KnownRules>();

  constructor(private readonly http: MatrixHttp) {}

  /** The homeserver's `m.room.encryption` content, already fetched by the caller. */
  confirmedEncryption(roomId: string, content: unknown): void {
    this.entry(roomId).encryption = encryptionRules(content);
  }

  /** The room's rules, from the homeserver for what this worker does not know (or no longer believes). */
  async current(roomId: string): Promise<RoomRules> {
    const known = this.entry(roomId);
    const [encryption, visibility] = await Promise.all([
      known.encryption ?? this.fetchEncryption(roomId),
      known.visibility ?? this.fetchVisibility(roomId),
    ]);
    known.encryption = encryption;
    known.visibility = visibility;
    return { ...encryption, historyVisibility: visibility };
  }

  /**
   * A room's state or timeline events from a sync or history body. Returns whether the
   * rules changed or must be asked for again.
   */
  observe(roomId: string, events: unknown[]): boolean {
    const known = this.rooms.get(roomId);
    if (!known) return false; // asked for before the next send anyway
    let changed = false;
    for (const event of events as StateEvent[]) {
      if (event?.state_key !== '') continue;
      if (event.type === 'm.room.encryption' && known.encryption) {
        const next = encryptionRules(event.content);
        if (JSON.stringify(next) === JSON.stringify(known.encryption)) continue;
        known.encryption = noLooser(known.encryption, next) ? next : undefined;
        changed = true;
      } else if (event.type === 'm.room.history_visibility' && known.visibility) {
        const next = visibilityOf(event.content);
        if (next === known.visibility) continue;
        const tighter = VISIBILITIES.indexOf(next) < VISIBILITIES.indexOf(known.visibility);
        known.visibility = tighter ? next : undefined;
        changed = true;
      }
    }
    return changed;
  }

  /** Asks the homeserver again before the room's next send (e.g. after a gap in its timeline). */
  forget(roomId: string): void {
    this.rooms.delete(roomId);
  }

  private entry(roomId: string): KnownRules {
    let known = this.rooms.get(roomId);
    if (!known) this.rooms.set(roomId, (known = {}));
    return known;
  }

  private async fetchEncryption(roomId: string): Promise<RoomEncryptionRules> {
    // Not found: the room was marked encrypted from a sync the homeserver does not confirm;
    // encryption is never turned off, so it is encrypted with the defaults.
    const content = await this.stateOrUndefined(roomId, 'm.room.encryption');
    return content ? encryptionRules(content) : { algorithm: MEGOLM };
  }

  private async fetchVisibility(roomId: string): Promise<HistoryVisibilityName> {
    const content = await this.stateOrUndefined(roomId, 'm.room.history_visibility');
    return content ? visibilityOf(content) : 'shared'; // the spec's default
  }

  private async stateOrUndefined(roomId: string, type: string): Promise<unknown> {
    try {
      return await this.http.request('GET', `/rooms/${seg(roomId)}/state/${seg(type)}/`);
    } catch (error) {
      if (error instanceof MatrixApiError && error.status === 404 && error.errcode === 'M_NOT_FOUND') return undefined;
      throw error;
    }
  }
}
