/**
 * Kirjava speaks the browser's language: in a browser set to German, the options page, the
 * popup, their titles and the toolbar button's tooltip are German, messages with values in
 * them read whole (the typed text inside the sentence), and the page's `lang` says so.
 *
 * Chromium only: Debian's firefox-esr ships its English interface alone (German needs the
 * separate firefox-esr-l10n-de package), and Firefox gives extensions the interface's
 * language. Every other story runs the English pages in both browsers.
 */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { launchBrowser, storyBrowsers, type ExtensionBrowser } from '../fixtures/browser.ts';
import { substitute } from '../../src/platform/i18n.ts';

type Catalog = Record<string, { message: string }>;
const locales = resolve(import.meta.dirname, '../../public/_locales');
const german = JSON.parse(await readFile(resolve(locales, 'de/messages.json'), 'utf8')) as Catalog;
const english = JSON.parse(await readFile(resolve(locales, 'en/messages.json'), 'utf8')) as Catalog;
/** A German message, `$1`… filled in as the browser does. */
const de = (name: string, ...values: string[]) => substitute(german[name]!.message, values);

if (storyBrowsers().includes('chromium')) {
  describe('Kirjava in a German browser (chromium)', () => {
    let browser: ExtensionBrowser;
    before(async () => {
      browser = await launchBrowser({ browser: 'chromium', extraArgs: ['--lang=de'] });
    });
    after(() => browser?.close());

    it(
      'the options page, the popup and the toolbar tooltip are German, whole sentences with the values in them',
      {
        timeout: 120_000,
      },
      async () => {
        const options = await browser.openOptions();
        assert.equal(await options.title(), de('page_optionsTitle'));
        assert.equal(await options.evaluate(() => document.documentElement.lang), 'de');
        await options.getByRole('heading', { name: de('optionsApp_sitesHeading') }).waitFor({ timeout: 10_000 });
        assert.notEqual(de('optionsApp_sitesHeading'), english.optionsApp_sitesHeading!.message);
        const body = await options.locator('body').innerText();
        assert.ok(body.includes(de('optionsApp_sitesExplanation')), body);
        assert.ok(!body.includes(english.optionsApp_sitesExplanation!.message), 'English text on a German page');

        // A message with a value: what the user typed stands inside the German sentence.
        const field = options.getByRole('textbox', { name: de('optionsApp_homeserverInputLabel') });
        await field.fill('kein server');
        await options.getByRole('button', { name: de('optionsApp_homeserverSaveButton') }).click();
        await options.getByText(de('homeserverInput_notAHomeserver', 'kein server')).waitFor({ timeout: 10_000 });
        await options.close();

        const popup = await browser.openPopup();
        assert.equal(await popup.evaluate(() => document.documentElement.lang), 'de');
        await popup.getByText(de('popupApp_setHomeserverFirst')).waitFor({ timeout: 10_000 });
        await popup.getByRole('button', { name: de('popupApp_openOptions'), exact: true }).waitFor();
        await popup.close();

        // The worker speaks German too: the toolbar button's tooltip where no tab has a title of its own.
        const title = await browser.inExtension(() => chrome.action.getTitle({}));
        assert.ok(title.startsWith(de('tabStatus_notAMatrixClient')), title);
        assert.deepEqual(browser.pageErrors, []);
      },
    );
  });
}
