/**
 * The user's key sharing policy: reads each account's choice (options page, per
 * account with per-room exceptions) and, under 'ask', holds a send while the popup and an OS
 * notification offer "Send anyway" / "Cancel"; after the account's bounded wait the send
 * fails with a Matrix error, so the client never hangs.
 */
import type { SharingDecisions } from '../crypto/send/sharing-policy.ts';
import { browser } from '../platform/ext.ts';
import { storage } from '../platform/storage.ts';
import {
  type AccountSharing,
  type DeviceView,
  type SendQuestion,
  asSharing,
  roomLabelText,
} from '../shared/messages.ts';
import type { AccountRegistry } from './accounts.ts';
import { openPopup, setBadgeCount } from './badge.ts';
import { onUiRequest } from './ui-router.ts';
import { roomLabel } from './room-labels.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';
import { plural, t } from '../platform/i18n.ts';

const NOTIFICATION_PREFIX = 'kirjava-send:';

interface Pending extends SendQuestion {
  answer(value: 'send' | 'cancel' | 'timeout'): void;
}

const pending = new Map<string, Pending>();

async function sharingOf(accountId: string): Promise<AccountSharing> {
  return asSharing((await storage.local.get('sharing'))[accountId]);
}

/** The user's key sharing decisions for an account, read from storage at every send (AccountRegistry gives them). */
export function decisionsFor(accountId: string): SharingDecisions {
  return {
    async policyFor(roomId) {
      const sharing = await sharingOf(accountId);
      return sharing.rooms[roomId] ?? sharing.policy;
    },
    async ask(roomId, devices) {
      const { askTimeoutSeconds } = await sharingOf(accountId);
      return askUser(accountId, roomId, devices, askTimeoutSeconds * 1000);
    },
  };
}

async function askUser(accountId: string, roomId: string, devices: DeviceView[], waitMs: number) {
  const room = await roomLabel(accountId, roomId).catch(() => undefined);
  return new Promise<'send' | 'cancel' | 'timeout'>((resolve) => {
    const id = crypto.randomUUID();
    const timer = setTimeout(() => finish('timeout'), waitMs);
    const finish = (value: 'send' | 'cancel' | 'timeout') => {
      if (!pending.delete(id)) return;
      clearTimeout(timer);
      void browser.notifications?.clear(`${NOTIFICATION_PREFIX}${id}`);
      void setBadgeCount('send', pending.size);
      resolve(value);
    };
    pending.set(id, { id, accountId, roomId, room, devices, deadline: Date.now() + waitMs, answer: finish });
    void setBadgeCount('send', pending.size);
    const names = devices.map((d) => `${d.displayName ?? d.deviceId} (${d.userId})`).join(', ');
    void browser.notifications
      ?.create(`${NOTIFICATION_PREFIX}${id}`, {
        type: 'basic',
        iconUrl: browser.runtime.getURL('icons/kirjava-128.png'),
        title: t('notifications_sendTitle'),
        message: plural(
          devices.length,
          'notifications_sendMessageOne',
          'notifications_sendMessageOther',
          roomLabelText(room) ?? roomId,
          names,
        ),
        priority: 2,
      })
      .catch((error) => log.warn('notification failed', { error: errorText(error) }));
  });
}

/**
 * Answers the popup's send questions and its "Send anyway" / "Cancel" (the accounts get the
 * user's decisions from `decisionsFor`, through the registry, when they open).
 */
export function registerSharingService(registry: AccountRegistry): void {
  registry.onAccountWiped(async (id) => {
    for (const question of pending.values()) if (question.accountId === id) question.answer('cancel');
    await storage.local.update('sharing', (all) =>
      Object.fromEntries(Object.entries(all).filter(([key]) => key !== id)),
    );
  });

  onUiRequest('send-questions', async () => ({
    questions: [...pending.values()].map(({ answer: _answer, ...question }) => question),
  }));

  onUiRequest('send-answer', async ({ id, answer }) => {
    const question = pending.get(id);
    if (!question) throw new Error('This message is no longer waiting (it was answered or timed out)');
    question.answer(answer);
    return {};
  });

  browser.notifications?.onClicked.addListener((notificationId) => {
    if (notificationId.startsWith(NOTIFICATION_PREFIX)) void openPopup();
  });
}
