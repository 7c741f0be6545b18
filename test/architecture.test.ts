import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir)).flatMap((name) => {
    const path = join(dir, name);
    if (name === 'generated' || name === 'node_modules') return [];
    if (statSync(join(ROOT, path)).isDirectory()) return sources(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module a file imports (type-only imports too: they tie the files' vocabulary together all the same). */
function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  return [...text.matchAll(/^(?:import|export)\s[^;]*?\sfrom\s+'([^']+)'/gm)].map((m) => m[1] as string);
}

/** Local imports of `file` as repository paths (`./x.js` -> `dir/x.ts`). */
function localImports(file: string): string[] {
  return importsOf(file)
    .filter((spec) => spec.startsWith('.'))
    .map((spec) => relative(ROOT, resolve(ROOT, dirname(file), spec)).replace(/\.js$/, '.ts'));
}

/** The import cycles among `files`, each as the path that closes it. */
function cyclesAmong(files: readonly string[]): string[][] {
  const inside = new Set(files);
  const cycles: string[][] = [];
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (file: string): void => {
    state.set(file, 'open');
    stack.push(file);
    for (const next of localImports(file).filter((f) => inside.has(f))) {
      if (state.get(next) === 'open') cycles.push([...stack.slice(stack.indexOf(next)), next]);
      else if (!state.has(next)) visit(next);
    }
    stack.pop();
    state.set(file, 'done');
  };
  for (const file of files) if (!state.has(file)) visit(file);
  return cycles;
}

describe('how the code is laid out', () => {
  it('has no import circle in server/, and shared/ imports only zod and itself', () => {
    expect(cyclesAmong(sources('server')).map((c) => c.join(' -> '))).toEqual([]);
    for (const file of sources('shared')) {
      for (const spec of importsOf(file)) expect(spec === 'zod' || spec.startsWith('./'), `${file} imports ${spec}`).toBe(true);
    }
  });

  it('keeps every hot-path statement whole: no SQL assembled from pieces in server/queries/', () => {
    for (const file of sources('server/queries')) {
      const text = readFileSync(join(ROOT, file), 'utf8');
      expect(text, file).not.toMatch(/\.split\(|\.join\(/);
      // ${...} in a statement may only name a constant, never a value or a fragment.
      for (const [, inner] of text.matchAll(/\$\{([^}]*)\}/g)) expect(inner, `${file}: \${${inner}}`).toMatch(/^[A-Z][A-Z0-9_.]*$/);
    }
  });
});
