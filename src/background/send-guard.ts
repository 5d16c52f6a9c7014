/**
 * The send guard: keeps the declarativeNetRequest session rules of send-guard-rules.ts in
 * place, so that no plaintext event reaches an encrypted room from any context of an
 * allowed site, whatever the MAIN-world hook sees. Remembers, per account, the rooms known
 * to be unencrypted (storage.local), because those rooms' sends must pass; a room seen
 * encrypted loses its allow rule before the response that says so reaches the page.
 *
 * Session rules do not survive a browser restart: `install()` runs at every worker start
 * and whenever the settings change.
 */
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { browser, browserKind } from '../platform/ext.ts';
import { getSettings, storage, watchSettings } from '../platform/storage.ts';
import type { PlainRooms } from '../shared/messages.ts';
import { GuardedTabs } from './guarded-tabs.ts';
import { onUiRequest } from './ui-router.ts';
import { buildGuardRules } from './send-guard-rules.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';

/** Regex rules kept free for anything else the extension may need. */
const REGEX_RESERVE = 10;

/**
 * Installs the send guard's session rules and keeps them current: at worker start, when the
 * settings or the guarded tabs change, and as accounts learn which rooms are unencrypted.
 */
export class SendGuard {
  /** Serializes changes to the known plain rooms (short: memory and storage). */
  private readonly queue = new SerialQueue();
  /** Serializes rule installs; see requestInstall. */
  private readonly installs = new SerialQueue();
  private nextInstall: Promise<void> | undefined;
  private plain: Promise<PlainRooms> | undefined;
  /** Rooms that got an allow rule in the last install. */
  private allowed = new Set<string>();
  private readonly tabs = new GuardedTabs(() => {
    this.requestInstall().catch((error) => log.error('could not update the send guard', { error: errorText(error) }));
  });

  /** (Re)installs every rule from the settings, the open tabs and the known plain rooms. */
  async install(): Promise<void> {
    await this.tabs.refresh();
    await this.requestInstall();
  }

  /** Removed sites whose open pages stay blocked until reloaded. */
  async guardedUntilReload(): Promise<string[]> {
    return this.tabs.untilReload((await getSettings()).allowedSites);
  }

  /** The account learnt that `roomId` is unencrypted: its sends must pass the guard. */
  async roomIsPlain(accountId: string, baseUrl: string, roomId: string): Promise<void> {
    await this.queue.run(async () => {
      const plain = await this.plainRooms();
      const entry = (plain[accountId] ??= { baseUrl, rooms: [] });
      if (entry.rooms.at(-1) === roomId) return;
      entry.rooms = [...entry.rooms.filter((id) => id !== roomId), roomId];
      await storage.local.set('guard.plainRooms', plain);
    });
    if (!this.allowed.has(roomId)) await this.requestInstall();
  }

  /**
   * `roomId` is encrypted: no account keeps an allow rule for it (resolves once it is
   * gone). Whichever homeserver said so, every account forgets it: a room id names the
   * same room everywhere, and its allow rule holds on every host.
   */
  async roomIsEncrypted(_seenOn: string, roomId: string): Promise<void> {
    const changed = await this.queue.run(async () => {
      const plain = await this.plainRooms();
      let changed = false;
      for (const entry of Object.values(plain)) {
        if (entry.rooms.includes(roomId)) {
          entry.rooms = entry.rooms.filter((id) => id !== roomId);
          changed = true;
        }
      }
      if (changed) await storage.local.set('guard.plainRooms', plain);
      return changed;
    });
    if (changed || this.allowed.has(roomId)) await this.requestInstall();
  }

  /** Whether an account already knows `roomId` to be unencrypted (no need to look it up). */
  async isKnownPlain(accountId: string, roomId: string): Promise<boolean> {
    return (await this.plainRooms())[accountId]?.rooms.includes(roomId) ?? false;
  }

  /** The account is gone (logged out): its plain rooms and their rules go too. */
  async forgetAccount(accountId: string): Promise<void> {
    const changed = await this.queue.run(async () => {
      const plain = await this.plainRooms();
      if (!(accountId in plain)) return false;
      delete plain[accountId];
      await storage.local.set('guard.plainRooms', plain);
      return true;
    });
    if (changed) await this.requestInstall();
  }

  /**
   * Resolves after an install that started after this call. A full install costs ~4 ms
   * with 10 unencrypted rooms and ~270-500 ms with 990: calls that arrive while one waits
   * share it, so learning many rooms at once does not reinstall once per room.
   */
  private requestInstall(): Promise<void> {
    this.nextInstall ??= this.installs.run(async () => {
      this.nextInstall = undefined;
      await this.installNow();
    });
    return this.nextInstall;
  }

  private plainRooms(): Promise<PlainRooms> {
    this.plain ??= storage.local.get('guard.plainRooms');
    return this.plain;
  }

  private async installNow(): Promise<void> {
    const settings = await getSettings();
    let plainRooms: string[] = [];
    for (const { rooms } of Object.values(await this.plainRooms())) {
      plainRooms = [...plainRooms.filter((id) => !rooms.includes(id)), ...rooms];
    }
    const dnr = browser.declarativeNetRequest;
    const input = {
      // A removed site's open pages stay guarded until they are reloaded (guarded-tabs.ts).
      allowedSites: [...settings.allowedSites, ...(await this.tabs.untilReload(settings.allowedSites))],
      plainRooms,
      tabIds: this.tabs.ids(),
      extensionHost: new URL(browser.runtime.getURL('/')).hostname,
      browser: browserKind,
      regexBudget: dnr.MAX_NUMBER_OF_REGEX_RULES - REGEX_RESERVE,
    };
    const built = buildGuardRules(input);
    if (built.plainRoomsLeftOut > 0) {
      // Sends there pass once the page hook asks for them again.
      log.warn('unencrypted rooms without an allow rule (regex rule limit)', { rooms: built.plainRoomsLeftOut });
    }
    const removeRuleIds = (await dnr.getSessionRules()).map((rule) => rule.id);
    try {
      await dnr.updateSessionRules({ removeRuleIds, addRules: built.rules });
      this.allowed = built.plainRoomsAllowed;
    } catch (error) {
      // A room id whose pattern the browser refuses must not cost the whole guard: keep
      // the block rules and the m.room.encrypted allow rules; unencrypted rooms fail closed.
      log.error('send guard rules refused, installing them without unencrypted rooms', { error: errorText(error) });
      const essential = buildGuardRules({ ...input, plainRooms: [] });
      await dnr.updateSessionRules({ removeRuleIds, addRules: essential.rules });
      this.allowed = new Set();
    }
  }
}

/**
 * Installs the rules now (session rules do not survive a browser restart: at every worker
 * start) and again whenever the user changes the allowed sites (or anything else in the settings);
 * answers the popup's question which removed sites' pages must be reloaded.
 */
export function registerSendGuard(guard: SendGuard): void {
  const install = () =>
    guard.install().catch((error) => log.error('could not install the send guard', { error: errorText(error) }));
  void install();
  watchSettings(() => void install());
  onUiRequest('guarded-until-reload', async () => ({ origins: await guard.guardedUntilReload() }));
}
