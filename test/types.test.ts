// The compile-time guarantees written in test/*.test-d.ts, checked by the
// TypeScript compiler with the project's tsconfig: a wrong type fails here, and
// so does an @ts-expect-error that no longer errors. (vitest's typecheck mode
// does the same, and prints an "experimental feature" banner on every run that
// no option turns off.)
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { expect, it } from 'vitest';

const TEST_DIR = dirname(fileURLToPath(import.meta.url));
const TSCONFIG = join(TEST_DIR, '..', 'tsconfig.json');

it('type tests (test/*.test-d.ts) compile without an error', () => {
  const files = readdirSync(TEST_DIR)
    .filter((name) => name.endsWith('.test-d.ts'))
    .map((name) => join(TEST_DIR, name));
  expect(files.length).toBeGreaterThan(0);
  const { config, error } = ts.readConfigFile(TSCONFIG, (path) => ts.sys.readFile(path));
  if (error) throw new Error(ts.flattenDiagnosticMessageText(error.messageText, '\n'));
  const { options } = ts.parseJsonConfigFileContent(config, ts.sys, dirname(TSCONFIG));
  const program = ts.createProgram(files, { ...options, noEmit: true });
  const diagnostics = ts.getPreEmitDiagnostics(program);
  const host: ts.FormatDiagnosticsHost = {
    getCanonicalFileName: (name) => name,
    getCurrentDirectory: () => dirname(TSCONFIG),
    getNewLine: () => '\n',
  };
  expect(ts.formatDiagnostics(diagnostics, host)).toBe('');
}, 120_000);
