/**
 * The worker's side of devices, trust and verification: answers the popup's
 * requests, keeps the toolbar badge at the number of verifications waiting for the user,
 * and raises an OS notification for each new incoming request; clicking it opens the popup.
 */
import { browser } from '../platform/ext.ts';
import type { CryptoAccount } from '../crypto/account.ts';
import type { AccountRegistry } from './accounts.ts';
import { openPopup, setBadgeCount } from './badge.ts';
import { onUiRequest } from './ui-router.ts';
import { log } from './log.ts';
import { errorText } from '../crypto/core/log.ts';
import { t } from '../platform/i18n.ts';

const NOTIFICATION_PREFIX = 'kirjava-verification:';

/**
 * Answers the popup's device, trust and verification requests from `registry`, and keeps the
 * badge and the OS notifications in step with the verifications waiting for the user.
 */
export function registerVerificationService(registry: AccountRegistry): void {
  onUiRequest('devices', async ({ accountId, discover }) => {
    const account = await registry.forAccount(accountId);
    return { devices: await account.devices.list(discover) };
  });

  onUiRequest('device-trust', async ({ accountId, userId, deviceId, action }) => {
    const account = await registry.forAccount(accountId);
    return { device: await account.devices.apply(userId, deviceId, action) };
  });

  onUiRequest('verifications', async ({ accountId }) => {
    const account = await registry.forAccount(accountId);
    const [verifications, crossSigning] = [
      await account.verifications.list(),
      await account.verifications.crossSigning(),
    ];
    void updateBadge(registry);
    return { verifications, crossSigning };
  });

  onUiRequest('verification-start', async ({ accountId, userId, deviceId, inRoom }) => {
    const account = await registry.forAccount(accountId);
    const verification = inRoom
      ? await account.verifications.startInRoom(userId)
      : await account.verifications.start(userId, deviceId);
    return { verification };
  });

  onUiRequest('verification-action', async ({ accountId, userId, flowId, action }) => {
    const account = await registry.forAccount(accountId);
    const verification = await account.verifications.act(userId, flowId, action);
    void updateBadge(registry);
    return { verification };
  });

  registry.onAccountOpened((_id, account) => {
    openAccounts.add(account);
    account.afterSync.add(() => onSynced(registry, account));
  });

  browser.notifications?.onClicked.addListener((notificationId) => {
    if (!notificationId.startsWith(NOTIFICATION_PREFIX)) return;
    void browser.notifications.clear(notificationId);
    void openPopup();
  });
}

/** Flows already announced with a notification, so each request notifies once. */
const announced = new Set<string>();
const openAccounts = new Set<CryptoAccount>();

async function onSynced(registry: AccountRegistry, account: CryptoAccount): Promise<void> {
  for (const verification of await account.verifications.list()) {
    if (verification.stage !== 'incoming' || announced.has(verification.flowId)) continue;
    announced.add(verification.flowId);
    const message = verification.selfVerification
      ? t(
          'notifications_verificationFromOwnSession',
          verification.otherDeviceId ?? t('notifications_unknownDevice'),
          account.identity.userId,
        )
      : t('notifications_verificationMessage', verification.otherUserId, account.identity.userId);
    await browser.notifications
      ?.create(`${NOTIFICATION_PREFIX}${verification.flowId}`, {
        type: 'basic',
        iconUrl: browser.runtime.getURL('icons/kirjava-128.png'),
        title: t('notifications_verificationTitle'),
        message,
        priority: 2,
      })
      .catch((error) => log.warn('notification failed', { error: errorText(error) }));
  }
  await updateBadge(registry);
}

/** The badge counts the verifications that wait for the user, across all open accounts. */
async function updateBadge(_registry: AccountRegistry): Promise<void> {
  let pending = 0;
  for (const account of openAccounts) pending += await account.verifications.pendingCount().catch(() => 0);
  await setBadgeCount('verification', pending);
}
