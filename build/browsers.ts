/**
 * The two browsers Kirjava is built for, from one source: vite (with crxjs) writes the Chromium
 * extension to dist/chromium/, then this plugin copies it to dist/firefox/ with the manifest
 * Firefox wants (an event page instead of a service worker, its add-on id and data-collection
 * statement). Everything else in the two folders is byte for byte the same.
 */
import { cp, readFile, rm, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { Plugin } from 'vite';

/** The browsers a build targets, as the dist/ folders and the tests name them. */
export const BROWSERS = ['chromium', 'firefox'] as const;
/** One of {@link BROWSERS}. */
export type BrowserName = (typeof BROWSERS)[number];

/** The add-on id Firefox (and addons.mozilla.org) knows Kirjava by. */
export const GECKO_ID = 'kirjava@kirjava-e2ee.org';
/** Firefox 140 is the first with `data_collection_permissions`; ESR 140 and 153 qualify. */
const GECKO_MIN_VERSION = '140.0';
const GECKO_ANDROID_MIN_VERSION = '142.0';

/** The unpacked extension for `browser` inside the repository at `root`. */
export const distDir = (root: string, browser: BrowserName): string => resolve(root, 'dist', browser);

type Manifest = Record<string, unknown> & {
  background?: { service_worker?: string; scripts?: string[]; type?: string };
};

/**
 * Firefox's manifest made from the built Chromium one: the background worker's script runs as a
 * module event page (Firefox MV3 has no extension service workers), no Chromium version floor,
 * and the gecko settings AMO requires.
 */
export function firefoxManifest(chromium: Manifest): Manifest {
  const { minimum_chrome_version: _chromeOnly, background, ...rest } = chromium;
  if (!background?.service_worker) throw new Error('the Chromium manifest has no background service worker');
  return {
    ...rest,
    background: { scripts: [background.service_worker], type: background.type ?? 'module' },
    browser_specific_settings: {
      gecko: {
        id: GECKO_ID,
        strict_min_version: GECKO_MIN_VERSION,
        data_collection_permissions: { required: ['none'] },
      },
      // Firefox for Android learnt data_collection_permissions in 142.
      gecko_android: { strict_min_version: GECKO_ANDROID_MIN_VERSION },
    },
  };
}

/** The vite plugin that writes dist/firefox/ once dist/chromium/ is complete. */
export function firefoxBuild(root: string): Plugin {
  return {
    name: 'kirjava-firefox-build',
    apply: 'build',
    async closeBundle() {
      const from = distDir(root, 'chromium');
      const to = distDir(root, 'firefox');
      await rm(to, { recursive: true, force: true });
      await cp(from, to, { recursive: true });
      const manifest = JSON.parse(await readFile(resolve(from, 'manifest.json'), 'utf8')) as Manifest;
      await writeFile(resolve(to, 'manifest.json'), `${JSON.stringify(firefoxManifest(manifest), null, 2)}\n`);
    },
  };
}
