/**
 * `npm run demo`: Kirjava at work, end to end, on this machine. Starts a throwaway Synapse, a plain
 * web Matrix client (no crypto) logged in as alice in a browser with the extension (Chromium, or
 * Firefox with `npm run demo -- --browser firefox` or `KIRJAVA_BROWSER=firefox`), and an
 * Element-like E2EE peer, bob, who shares an encrypted room with alice and echoes everything she
 * says. With a display the browser is shown and the demo runs until Ctrl-C; without one it runs
 * headless, saves screenshots into demo-output/ and exits.
 */
import { mkdir } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Page } from 'playwright-core';
import { type BrowserName, launchBrowser, type ExtensionBrowser } from './fixtures/browser.ts';
import { startClientServer, type ClientServer } from './fixtures/client-server.ts';
import { startPeer, type Peer } from './fixtures/peer.ts';
import { openPlainClient } from './fixtures/plain-client.ts';
import { startSynapse, type Synapse } from './fixtures/synapse.ts';

const headless = !process.env.DISPLAY;
const browserName = chosenBrowser();
const browserLabel = browserName === 'firefox' ? 'Firefox' : 'Chromium';
const outputDir = resolve(import.meta.dirname, '../demo-output');
const say = (line: string) => console.log(`demo: ${line}`);

let synapse: Synapse | undefined;
let site: ClientServer | undefined;
let peer: Peer | undefined;
let browser: ExtensionBrowser | undefined;

/** `--browser firefox` (or `--browser=firefox`), else KIRJAVA_BROWSER, else Chromium. */
function chosenBrowser(): BrowserName {
  const args = process.argv.slice(2);
  const at = args.findIndex((arg) => arg === '--browser' || arg.startsWith('--browser='));
  const named = at < 0 ? process.env.KIRJAVA_BROWSER : args[at]!.includes('=') ? args[at]!.split('=')[1] : args[at + 1];
  const name = (named ?? 'chromium').trim().toLowerCase();
  if (name !== 'chromium' && name !== 'firefox') {
    console.error(`demo: --browser (or KIRJAVA_BROWSER) is chromium or firefox, not "${named}"`);
    process.exit(2);
  }
  return name;
}

/**
 * Waits until an extension page has drawn what it shows. Chromium reports network idle for it;
 * Firefox reports no load state for moz-extension:// pages to the driver, so the document's own
 * readiness and a moment for the page's messages to the background stand in.
 */
async function settled(page: Page): Promise<void> {
  if (browserName === 'chromium') return page.waitForLoadState('networkidle');
  await page.waitForFunction(() => document.readyState === 'complete');
  await new Promise((resolve) => setTimeout(resolve, 1000));
}

async function shutDown(): Promise<void> {
  await browser?.close();
  await peer?.stop();
  await site?.stop();
  await synapse?.stop();
}

async function main(): Promise<void> {
  say('starting Synapse');
  synapse = await startSynapse();
  const alice = await synapse.register('alice', 'alice-password');
  const bob = await synapse.register('bob', 'bob-password');
  say(`homeserver ${synapse.baseUrl}: alice / alice-password (plain client), bob / bob-password (E2EE peer)`);

  site = await startClientServer();
  say(`plain client page at ${site.origin}/`);

  say(`launching ${browserLabel} with the extension (${headless ? 'headless: no DISPLAY' : 'headed'})`);
  browser = await launchBrowser({ browser: browserName, headless });
  say(`extension ${browser.extensionId}; configuring it through the options page`);
  await browser.configure(synapse.baseUrl, site.origin);

  say('alice logs in through the plain client');
  const client = await openPlainClient(browser.context, site.origin);
  const session = await client.login(synapse.baseUrl, 'alice', 'alice-password');

  say('bob (matrix-js-sdk with Rust crypto) logs in and waits for the device keys Kirjava uploads for alice');
  peer = await startPeer(synapse.baseUrl, bob);
  await peer.waitForDeviceKeys(alice.userId, session.deviceId, 20_000);

  const roomId = await peer.createEncryptedRoom([alice.userId]);
  say(`bob created the encrypted room ${roomId} and invited alice`);
  await client.joinRoom(await client.waitForInvite());
  await peer.waitForMembership(roomId, alice.userId, 'join');

  const echoing = peer;
  peer.onText(roomId, ({ sender, body, decrypted }) => {
    if (sender !== alice.userId) return;
    say(`bob received "${body}" (${decrypted ? 'decrypted' : 'NOT encrypted'}), echoing it`);
    echoing.sendText(roomId, `echo: ${body}`).catch((error) => console.error('demo: echo failed:', error));
  });
  await peer.sendText(roomId, 'Hi alice! This room is end-to-end encrypted. Say something and I will echo it.');

  if (!headless) {
    say(`ready: type into the plain client at ${site.origin}/ (already logged in as alice); Ctrl-C to stop`);
    await new Promise<void>((done) => process.once('SIGINT', () => done()));
    return;
  }

  say('alice says hello; waiting for the echo');
  await client.waitForBody(roomId, 'Hi alice! This room is end-to-end encrypted. Say something and I will echo it.');
  const sent = await client.sendText(roomId, 'Hello from a plain web client');
  await client.waitForBody(roomId, 'echo: Hello from a plain web client', 20_000);
  const stored = await peer.rawEvent(roomId, sent);
  say(`the homeserver stores alice's message as ${stored.type}`);

  await mkdir(outputDir, { recursive: true });
  // Chromium's screenshots keep their names; Firefox's say which browser they are from.
  const shot = (name: string) => (browserName === 'chromium' ? `${name}.png` : `${name}-${browserName}.png`);
  await client.page.screenshot({ path: resolve(outputDir, shot('client')) });
  const popup = await browser.openPopup();
  await popup.setViewportSize({ width: 420, height: 480 });
  await settled(popup);
  await popup.screenshot({ path: resolve(outputDir, shot('popup')) });
  const options = await browser.openOptions();
  await settled(options);
  await options.screenshot({ path: resolve(outputDir, shot('options')) });
  say(`screenshots in ${outputDir}: ${['client', 'popup', 'options'].map(shot).join(', ')}`);
}

try {
  await main();
  await shutDown();
  // matrix-js-sdk leaves request timers running after stopClient; nothing is left to wait for.
  process.exit(0);
} catch (error) {
  console.error('demo failed:', error);
  await shutDown().catch(() => {});
  process.exit(1);
}
