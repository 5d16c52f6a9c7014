/**
 * Builds the plain test client (a matrix-js-sdk page without crypto) into tests/client/dist.
 * The end-to-end fixtures build it on demand (tests/fixtures/client-server.ts).
 */
import { resolve } from 'node:path';
import { defineConfig } from 'vite';

const here = import.meta.dirname;

export default defineConfig({
  root: here,
  base: './',
  logLevel: 'warn',
  build: {
    outDir: resolve(here, 'dist'),
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 4096,
  },
});
