/**
 * Every contract between Kirjava's contexts, in one place: what the page hook, the bridge,
 * the worker, the popup and the options page say to each other, and what they keep in
 * storage. src/shared imports nothing from the rest of src/.
 */
export * from './page.js';
export * from './ui.js';
export * from './settings.js';
export * from './media.js';
export * from './names.js';
export * from './storage-keys.js';
