/**
 * The e2e stories, their fixtures and the benchmarks run functions inside the extension
 * (`inWorker`, `inExtension`), where `chrome.*` is the API both browsers give; this file gives
 * them its types. tsconfig.json's `types` leaves them out, but one program sees every global,
 * so it is ESLint that keeps `chrome` out of `src/` (the product reaches the browser through
 * `src/platform/`).
 */
/// <reference types="chrome" />
