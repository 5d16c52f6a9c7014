import { defineConfig } from 'vite';
import { crx } from '@crxjs/vite-plugin';
import { svelte } from '@sveltejs/vite-plugin-svelte';
import manifest from './manifest.json' with { type: 'json' };
import { distDir, firefoxBuild } from './build/browsers.ts';

// One source, two browsers: dist/chromium/ is crxjs's output, dist/firefox/ a copy with
// Firefox's manifest (build/browsers.ts).
// The MAIN-world hook and the bridge are `*.iife.ts`: crxjs bundles them as standalone
// scripts so they run at document_start, before the page's own code (docs/architecture.md, "Contexts").
export default defineConfig({
  plugins: [svelte(), crx({ manifest }), firefoxBuild(import.meta.dirname)],
  build: {
    outDir: distDir(import.meta.dirname, 'chromium'),
    emptyOutDir: true,
    target: ['chrome120', 'firefox140'],
    minify: false,
    sourcemap: false,
    chunkSizeWarningLimit: 10_000,
    // Pages the manifest does not name (crxjs builds those it names).
    rollupOptions: { input: { diagnostics: 'src/diagnostics/index.html' } },
  },
  server: { cors: true },
});
