/**
 * `npm run store:screenshots`: the store listings' screenshots at the stores' size (1280×800),
 * made from the same story the end-to-end tests tell: a plain client logged in through
 * Kirjava, an E2EE peer in an encrypted room, then the client's conversation, the popup,
 * the options page and the diagnostics page. Writes store/screenshots/*.png (committed).
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { StoryBed, assertClientReads, givenEncryptedRoom } from './fixtures/stories.ts';

const SIZE = { width: 1280, height: 800 };
const outputDir = resolve(import.meta.dirname, '..', 'store', 'screenshots');

async function shoot(page: Page, name: string): Promise<void> {
  await page.setViewportSize(SIZE);
  await page.screenshot({ path: resolve(outputDir, `${name}.png`) });
  console.log(`store/screenshots/${name}.png`);
}

await mkdir(outputDir, { recursive: true });
const bed = new StoryBed('chromium');
try {
  await bed.start();
  const { client, userId, deviceId } = await bed.givenLoggedInClient();
  const peer = await bed.givenPeer();
  const roomId = await givenEncryptedRoom(peer, client, userId, deviceId);
  await peer.sendText(roomId, 'Hi! This room is end-to-end encrypted.');
  await assertClientReads(client, roomId, 'Hi! This room is end-to-end encrypted.', peer.userId);
  await client.sendText(roomId, 'And my plain web client reads and writes in it, thanks to Kirjava.');
  await assertClientReads(client, roomId, 'And my plain web client reads and writes in it, thanks to Kirjava.', userId);
  await shoot(client.page, '1-client');

  const popup = bed.track(await bed.browser.openPopup());
  await popup.getByText('Encryption active').waitFor({ timeout: 15_000 });
  await shoot(popup, '2-popup');

  const options = bed.track(await bed.browser.openOptions());
  await options.getByRole('heading', { name: 'Allowed sites' }).waitFor();
  await shoot(options, '3-options');

  const diagnostics = bed.track(await bed.browser.context.newPage());
  await diagnostics.goto(`${bed.browser.extensionOrigin}/src/diagnostics/index.html`, { waitUntil: 'commit' });
  await diagnostics.getByRole('heading', { name: 'account 1: active' }).waitFor({ timeout: 30_000 });
  await shoot(diagnostics, '4-diagnostics');
  await bed.cleanUp();
} finally {
  await bed.stop();
}
