import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * skipq's own directory: the nearest folder above this module with a
 * package.json. From the sources that is the repository; from the build it is
 * the installed package, wherever the bundler put this code inside dist/
 * (a path relative to one source file's depth breaks once files are bundled).
 */
export const PACKAGE_DIR = findPackageDir(dirname(fileURLToPath(import.meta.url)));

function findPackageDir(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    if (dirname(dir) === dir) throw new Error(`skipq: no package.json in ${start} or above it`);
  }
}
