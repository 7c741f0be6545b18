// `npm run bench` runs this first: the peers skipq is compared with (BullMQ,
// graphile-worker, pg-boss, ioredis) are not skipq's dependencies, so they live
// in bench/package.json with their own lock file, out of `npm install`'s way
// (pg-boss 12 wants Node 22). Installs them on first use, and again when the
// lock file changed since.
import { spawnSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const bench = fileURLToPath(new URL('.', import.meta.url));
const mtime = (path) => {
  try {
    return statSync(new URL(path, import.meta.url)).mtimeMs;
  } catch {
    return -1;
  }
};

// npm writes node_modules/.package-lock.json at the end of every install.
if (mtime('./node_modules/.package-lock.json') < mtime('./package-lock.json')) {
  process.stderr.write('bench: installing the peers (bench/package.json)\n');
  const npm = spawnSync('npm', ['ci', '--no-audit', '--no-fund', '--prefer-offline'], { cwd: bench, stdio: 'inherit' });
  if (npm.status !== 0) process.exit(npm.status ?? 1);
}
