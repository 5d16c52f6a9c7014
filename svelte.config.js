/**
 * Svelte's own configuration, read by vite-plugin-svelte and svelte-check. No preprocessor:
 * Svelte 5 reads TypeScript itself, and `vitePreprocess` would make svelte-check load
 * vite.config.ts, whose extension plugin clears dist/ as it starts.
 */
export default {};
