// The dashboard's build: `npm run build` runs it after the server's tsc build (see docs/dashboard.md).
// Output goes to dist/dashboard, served by the server at /dashboard/ (src/server/routes/dashboard.ts).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

const root = fileURLToPath(new URL('.', import.meta.url));

export default defineConfig({
  root,
  base: '/dashboard/',
  publicDir: false,
  logLevel: 'info',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  // `npx vite --config dashboard/vite.config.ts`: live-reloading development against a running
  // `conveyor serve` (CONVEYOR_SERVER, default http://127.0.0.1:8080) for the API.
  server: { proxy: { '/api': { target: process.env.CONVEYOR_SERVER ?? 'http://127.0.0.1:8080', changeOrigin: false } } },
  build: {
    outDir: fileURLToPath(new URL('../dist/dashboard', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: false,
    sourcemap: false,
    assetsInlineLimit: 0,
    reportCompressedSize: true,
  },
});
