/**
 * The toolbar button, owned here alone: its badge shows what waits for the user. Counted
 * things (verification requests, sends waiting for "Send anyway") show their sum in red;
 * otherwise sites asking "Allow <origin> to use encryption?" and pages talking to a homeserver
 * Kirjava does not handle ("add it?") show a '?' in amber, and the title says what waits.
 */
import { browser } from '../platform/ext.ts';
import { SerialQueue } from '../crypto/core/serial-queue.ts';

const counts = new Map<string, number>();
let sitesWaiting = 0;
let serversOffered = 0;
const renders = new SerialQueue();

function render(): Promise<void> {
  return renders.run(async () => {
    const total = [...counts.values()].reduce((a, b) => a + b, 0);
    const { action } = browser;
    if (total > 0) {
      await action.setBadgeBackgroundColor({ color: '#c0392b' });
      await action.setBadgeText({ text: String(total) });
    } else {
      await action.setBadgeBackgroundColor({ color: '#8a5a00' });
      await action.setBadgeText({ text: sitesWaiting + serversOffered > 0 ? '?' : '' });
    }
    const waiting = [
      sitesWaiting > 0 ? `${sitesWaiting} site(s) ask to use encryption` : '',
      serversOffered > 0 ? `${serversOffered} client(s) talk to a homeserver Kirjava does not handle` : '',
    ].filter(Boolean);
    await action.setTitle({ title: waiting.length > 0 ? `Kirjava: ${waiting.join('; ')}` : 'Kirjava' });
  });
}

/** `count` things of `source` ('send', 'verification') wait for the user. */
export function setBadgeCount(source: string, count: number): Promise<void> {
  counts.set(source, count);
  return render();
}

/** `count` sites wait for the user's "Allow <origin> to use encryption?". */
export function setSitesWaiting(count: number): Promise<void> {
  sitesWaiting = count;
  return render();
}

/** `count` pages talk to a homeserver Kirjava does not handle, waiting for "add it?". */
export function setServersOffered(count: number): Promise<void> {
  serversOffered = count;
  return render();
}

/** Opens the popup (Chrome 127+), or the popup page in a tab where that is not possible. */
export async function openPopup(): Promise<void> {
  try {
    await browser.action.openPopup();
  } catch {
    await browser.tabs.create({ url: browser.runtime.getURL('src/popup/index.html') });
  }
}
