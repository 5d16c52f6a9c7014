/**
 * Every contract between Kirjava's contexts, in one place: what the page hook, the bridge,
 * the worker, the popup and the options page say to each other, and what they keep in
 * storage. src/shared imports nothing from the rest of src/.
 */
export * from './page.ts';
export * from './ui.ts';
export * from './diagnostics.ts';
export * from './settings.ts';
export * from './media.ts';
export * from './names.ts';
export * from './room-label.ts';
export * from './storage-keys.ts';
