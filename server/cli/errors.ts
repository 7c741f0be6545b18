/** A failure the CLI reports as one line on stderr and an exit code (2: the command line is wrong; 1: it could not be done). */
export class CliError extends Error {
  override readonly name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: 1 | 2 = 1,
  ) {
    super(message);
  }
}

/** Progress and notes go to stderr, so stdout carries only the answer (a URL, a key, JSON). */
export const progress = (message: string): void => {
  process.stderr.write(`[skipq] ${message}\n`);
};
