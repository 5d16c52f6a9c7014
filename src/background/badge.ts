/**
 * The toolbar badge: the number of things waiting for the user (verification requests,
 * sends waiting for "Send anyway"), summed over the features that report them.
 */
import browser from 'webextension-polyfill';

const counts = new Map<string, number>();

export async function setBadgeCount(source: string, count: number): Promise<void> {
  counts.set(source, count);
  const total = [...counts.values()].reduce((a, b) => a + b, 0);
  await browser.action.setBadgeText({ text: total > 0 ? String(total) : '' });
  if (total > 0) await browser.action.setBadgeBackgroundColor({ color: '#c0392b' });
}

/** Opens the popup (Chrome 127+), or the popup page in a tab where that is not possible. */
export async function openPopup(): Promise<void> {
  try {
    await (chrome.action as unknown as { openPopup(): Promise<void> }).openPopup();
  } catch {
    await browser.tabs.create({ url: browser.runtime.getURL('src/popup/index.html') });
  }
}
