/**
 * The toolbar button, owned here alone: its badge shows what waits for the user. Counted
 * things (verification requests, sends waiting for "Send anyway") show their sum in red;
 * otherwise sites asking "Allow <origin> to use encryption?" and pages talking to a homeserver
 * Kirjava does not handle ("add it?") show a '?' in amber, and the title says what waits.
 */
import { browser } from '../platform/ext.ts';
import { SerialQueue } from '../crypto/core/serial-queue.ts';
import { FNV1A_START, fnv1a } from '../crypto/core/fnv.ts';
import { plural, t } from '../platform/i18n.ts';

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
      sitesWaiting > 0 ? plural(sitesWaiting, 'badge_sitesAskOne', 'badge_sitesAskOther') : '',
      serversOffered > 0 ? plural(serversOffered, 'badge_serversOfferedOne', 'badge_serversOfferedOther') : '',
    ].filter(Boolean);
    // A tab without its own title (tab-status.ts) is not a Matrix client; what waits follows.
    const title = [t('tabStatus_notAMatrixClient'), ...waiting].join(' · ');
    await action.setTitle({ title });
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

/** What a tab is to Kirjava, as its toolbar icon and title show it (tab-status.ts decides). */
export interface TabProtection {
  state: 'protected' | 'not-covered' | 'none';
  title: string;
}

/** The mark drawn on the icon's corner per state; 'none' keeps the plain icon. */
const MARKS: Record<TabProtection['state'], string | null> = {
  protected: '#1e8e3e',
  'not-covered': '#d93025',
  none: null,
};
const ICON_SIZES = [16, 32];
/** ImageData as the action API's types want it (they add an index signature). */
type IconData = ImageData & Record<string, unknown>;
const icons = new Map<string, Record<string, IconData>>();

/** The toolbar icon with a coloured corner mark, drawn once per colour. */
async function markedIcon(color: string): Promise<Record<string, IconData>> {
  const cached = icons.get(color);
  if (cached) return cached;
  const blob = await (await fetch(browser.runtime.getURL('icons/kirjava-128.png'))).blob();
  const bitmap = await createImageBitmap(blob);
  const drawn: Record<string, IconData> = {};
  for (const size of ICON_SIZES) {
    const canvas = new OffscreenCanvas(size, size);
    const context = canvas.getContext('2d');
    if (!context) throw new Error('no 2d canvas');
    context.drawImage(bitmap, 0, 0, size, size);
    const radius = size * 0.22;
    context.beginPath();
    context.arc(size - radius - 0.5, size - radius - 0.5, radius, 0, 2 * Math.PI);
    context.fillStyle = color;
    context.fill();
    context.lineWidth = Math.max(1, size / 16);
    context.strokeStyle = '#ffffff';
    context.stroke();
    drawn[size] = context.getImageData(0, 0, size, size) as IconData;
  }
  icons.set(color, drawn);
  return drawn;
}

/** The toolbar icon in every size the manifest lists (the browser picks the one its toolbar needs). */
const DEFAULT_ICON = Object.fromEntries([16, 32, 48, 128].map((size) => [size, `icons/kirjava-${size}.png`]));

/** Per tab, a digest of the icon last set on it (see `toolbarIconsShown`). */
const iconsShown = new Map<number, string>();

/** A short digest of drawn icons (FNV-1a over every size's pixels), to tell two images apart. */
function digestOf(images: Record<string, IconData>): string {
  let hash = FNV1A_START;
  for (const size of Object.keys(images).sort()) {
    for (const byte of images[size]!.data) hash = fnv1a(hash, byte);
  }
  return `drawn:${(hash >>> 0).toString(16).padStart(8, '0')}`;
}

/**
 * Shows in `tabId`'s toolbar icon and title whether the tab is protected, not covered, or
 * not a Matrix client (the badge text stays what waits for the user).
 */
export async function showTabProtection(tabId: number, protection: TabProtection): Promise<void> {
  const mark = MARKS[protection.state];
  const { action } = browser;
  await action.setTitle({ tabId, title: protection.title });
  if (mark) {
    const imageData = await markedIcon(mark);
    await action.setIcon({ tabId, imageData });
    iconsShown.set(tabId, digestOf(imageData));
  } else {
    await action.setIcon({ tabId, path: DEFAULT_ICON });
    iconsShown.set(tabId, `path:${DEFAULT_ICON[16]}`);
  }
}

/** Forgets what `tabId`'s icon was (the tab closed). */
export function forgetTabIcon(tabId: number): void {
  iconsShown.delete(tabId);
}

/**
 * What the toolbar icon of each tab is since this worker started, for DevTools and the
 * end-to-end tests (`kirjavaStatus`): per tab id, a digest of the pixels handed to
 * `action.setIcon` ("drawn:…"), or the plain icon's file ("path:…").
 */
export function toolbarIconsShown(): Record<number, string> {
  return Object.fromEntries(iconsShown);
}

/** Opens the popup (Chrome 127+), or the popup page in a tab where that is not possible. */
export async function openPopup(): Promise<void> {
  try {
    await browser.action.openPopup();
  } catch {
    await browser.tabs.create({ url: browser.runtime.getURL('src/popup/index.html') });
  }
}
