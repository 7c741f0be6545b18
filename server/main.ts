#!/usr/bin/env node
import { CommanderError } from 'commander';
import { CliError } from './cli/errors.js';
import { createProgram } from './cli/program.js';

// The `skipq` command (see cli/program.ts). Every failure ends here: one line on
// stderr and a non-zero exit code, never a silent exit 0.
let settled = false;
process.on('beforeExit', () => {
  // The event loop emptied while a command was still waiting on something that can never settle.
  if (!settled) {
    process.stderr.write('[skipq] stopped before the command finished (an operation never completed)\n');
    process.exitCode = 1;
  }
});
createProgram()
  .parseAsync(process.argv)
  .then(() => {
    settled = true;
  })
  .catch((error: unknown) => {
    settled = true;
    // Help and --version (exit 0), or a refusal commander has already printed (program.ts): exit 2.
    if (error instanceof CommanderError) process.exit(error.exitCode === 0 ? 0 : 2);
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`[skipq] ${message}\n`);
    process.exit(error instanceof CliError ? error.exitCode : 1);
  });
