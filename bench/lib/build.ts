// What the bench's child processes run: the package as it ships, with plain node.
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { build } from 'tsdown';
import { BUILD_DIR } from './built.js';
import { REPO_ROOT } from './children.js';

// The bench's imports of the package's sources, answered by the built package
// instead. As file URLs: a path would be re-relativised from the importing
// source's folder, not from bench/.build/.
const PACKAGE_ENTRIES: ReadonlyArray<[RegExp, string]> = [
  [/^(\.\.\/)+client\/index\.js$/, pathToFileURL(join(REPO_ROOT, 'dist', 'client', 'index.js')).href],
  [/^(\.\.\/)+shared\/index\.js$/, pathToFileURL(join(REPO_ROOT, 'dist', 'shared', 'index.js')).href],
];

/**
 * Builds the package (`npm run build`: tsdown, dist/ as it ships) and the
 * bench's child scripts (producer, worker, the registry given to the server
 * with --jobs), so every child runs as a package user runs it: plain node on
 * JavaScript, the client and shared imported from dist/ (`skipq/client`).
 * Through `node --import tsx` every process carried tsx's loader too: the idle
 * server 123-127 MiB against 86 MiB built (VmHWM after /trpc/health, this
 * machine), which is no part of what a user deploys. The peers' producers and
 * workers run the same built scripts, so they lose the loader alike.
 */
export async function buildForBench(log: (message: string) => void): Promise<void> {
  const began = Date.now();
  const pkg = spawnSync('npx', ['tsdown', '--logLevel', 'warn'], { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (pkg.status !== 0) throw new Error(`npm run build (tsdown) failed with status ${pkg.status}`);
  await build({
    config: false,
    cwd: REPO_ROOT,
    entry: { produce: 'bench/roles/produce.ts', work: 'bench/roles/work.ts', jobs: 'bench/jobs.ts' },
    outDir: BUILD_DIR,
    format: 'esm',
    platform: 'node',
    target: 'node20.19',
    fixedExtension: false,
    sourcemap: true,
    dts: false,
    clean: true,
    logLevel: 'warn',
    // The peers and every other dependency stay imports (bench/node_modules, node_modules).
    deps: { skipNodeModulesBundle: true },
    plugins: [
      {
        name: 'bench:built-package',
        resolveId(source: string) {
          for (const [pattern, file] of PACKAGE_ENTRIES) if (pattern.test(source)) return { id: file, external: true };
          return undefined;
        },
      },
    ],
  });
  log(`bench: built dist/ and bench/.build/ (${((Date.now() - began) / 1000).toFixed(1)} s)`);
}
