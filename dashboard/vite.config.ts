import { defineConfig } from 'vite';

/**
 * Builds the dashboard into dist/, which the skipq server serves at / (server/dashboard.ts).
 * `npm run dev` serves it with hot reload and sends /trpc to a running server (SKIPQ_URL, its tRPC endpoint as everywhere else, default http://127.0.0.1:3000/trpc).
 */
export default defineConfig({
  base: '/',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    // The polyfill is for browsers without <link rel=modulepreload>; every browser that runs ES2022 has it.
    modulePreload: { polyfill: false },
    // Never inline small assets as data: URLs into scripts; the CSP allows data: only for images.
    assetsInlineLimit: 0,
  },
  // The proxy puts its target's path before the request's (/trpc/...): it takes the server's origin.
  server: { proxy: { '/trpc': (process.env.SKIPQ_URL ?? 'http://127.0.0.1:3000/trpc').replace(/\/trpc\/?$/, '') } },
});
