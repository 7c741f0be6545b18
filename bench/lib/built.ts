// Paths of what the bench's children run, built by lib/build.ts (no build code
// here: bench/skipq.ts, bundled into the children, imports this file).
import { join } from 'node:path';
import { REPO_ROOT } from './children.js';

/** Where the bench's own child scripts are built (git-ignored). */
export const BUILD_DIR = join(REPO_ROOT, 'bench', '.build');
/** The built bench scripts, by their source path relative to the repository root. */
export const BUILT: Readonly<Record<string, string>> = Object.freeze({
  'bench/roles/produce.ts': 'bench/.build/produce.js',
  'bench/roles/work.ts': 'bench/.build/work.js',
  'bench/jobs.ts': 'bench/.build/jobs.js',
});
/** The skipq server as the package ships it (package.json "bin"). */
export const SERVER_BIN = 'dist/server/main.js';
