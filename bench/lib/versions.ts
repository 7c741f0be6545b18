import { readFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { REPO_ROOT } from './children.js';

/** The installed version of a package, read from its package.json: the bench's own peers first (bench/package.json), then skipq's. */
export function packageVersion(name: string): string {
  for (const dir of [join(REPO_ROOT, 'bench', 'node_modules'), join(REPO_ROOT, 'node_modules')]) {
    try {
      return (JSON.parse(readFileSync(join(dir, name, 'package.json'), 'utf8')) as { version: string }).version;
    } catch {
      // not installed there
    }
  }
  return '?';
}

/** skipq's version and the commit the work tree is on (with "+changes" when it has uncommitted edits). */
export function skipqVersion(): string {
  const { version } = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string };
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'server', 'client', 'shared', 'prisma'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
    return `${version} (${commit}${dirty ? '+changes' : ''})`;
  } catch {
    return version;
  }
}
