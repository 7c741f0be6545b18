// `npm run build`: dist/ as the package ships it (ESM, .d.ts, source maps).
// One build for every entry, so client, shared and server share one copy of
// shared/ at run time; client/ imports the server only as a type, so no server
// code reaches dist/client.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'tsdown';

const ROUTER_DTS = fileURLToPath(new URL('./server/routers/_app.d.ts', import.meta.url));
const CLIENT_CONTEXT_DTS = fileURLToPath(new URL('./server/context.client.d.ts', import.meta.url));

/**
 * `AppRouter` (exported by skipq/client) names the tRPC context in its type, and
 * the context holds the server's pool, Prisma client and LISTEN hub: bundled as
 * is, every producer's type-check would load pg's and Prisma's declarations.
 * Clients never see the context, so in the router's declaration it is replaced
 * by `object`. Only imports from the router's .d.ts are redirected: the server's
 * own declarations (skipq/server) keep the real context. test/package.test.ts
 * checks that a client's type-check loads neither.
 */
const routerContextForClients = {
  name: 'skipq:router-context-for-clients',
  resolveId: {
    // Before rolldown-plugin-dts's own resolver, which would load server/context.ts.
    order: 'pre' as const,
    handler(source: string, importer: string | undefined) {
      if (importer === ROUTER_DTS && /^\.\.\/context\.[jt]s$/.test(source)) return { id: CLIENT_CONTEXT_DTS };
      return undefined;
    },
  },
  load(id: string) {
    if (id !== CLIENT_CONTEXT_DTS) return undefined;
    return "/** The server's tRPC context: clients never see it. */\nexport type QueueContext = object;\n";
  },
};

export default defineConfig({
  entry: {
    'client/index': 'client/index.ts',
    'shared/index': 'shared/index.ts',
    'server/index': 'server/app.ts',
    // The `skipq` bin (package.json "bin"); its shebang is kept.
    'server/main': 'server/main.ts',
  },
  format: 'esm',
  platform: 'node',
  target: 'node20.19',
  // .js and .d.ts: the package is "type": "module".
  fixedExtension: false,
  sourcemap: true,
  // Declarations through tsc (the sources rely on inferred types), bundled per entry.
  dts: true,
  outDir: 'dist',
  // Dependencies stay imports; everything else (the generated Prisma client
  // included) is bundled. That is tsdown's default, spelled out here.
  deps: { skipNodeModulesBundle: false },
  checks: { pluginTimings: false },
  inputOptions: (options) => ({ ...options, plugins: [routerContextForClients, options.plugins] }),
});
