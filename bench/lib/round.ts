import { spawnChild, type Child, type SpawnOptions } from './children.js';

/** A round that ran past its time limit; its cell is marked TIMEOUT. */
export class RoundTimeout extends Error {
  override readonly name = 'RoundTimeout';
  constructor(limitMs: number) {
    super(`round took longer than ${limitMs / 1000} s and was aborted`);
  }
}

/** What one round may use; everything it starts is ended when it ends, however it ends. */
export interface Round {
  /** Aborted when the round runs out of time. */
  readonly signal: AbortSignal;
  /** Starts a child that is stopped when the round ends. */
  spawn(options: SpawnOptions): Child;
  /** Registers a cleanup (stop a server, drop a database); run in reverse order at the end. */
  defer(cleanup: () => Promise<void>): void;
  /** Waits for a promise, or rejects with RoundTimeout when the round runs out of time. */
  wait<T>(promise: Promise<T>): Promise<T>;
}

/**
 * Runs one round under a time limit. A round is one workload on one system,
 * so a hung peer costs at most `limitMs` and never blocks the rest of the run.
 */
export async function withRound<T>(limitMs: number, verbose: boolean, body: (round: Round) => Promise<T>): Promise<T> {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(new RoundTimeout(limitMs)), limitMs);
  const children: Child[] = [];
  const cleanups: Array<() => Promise<void>> = [];
  const round: Round = {
    signal: controller.signal,
    spawn(options) {
      const child = spawnChild({ verbose, ...options });
      children.push(child);
      return child;
    },
    defer(cleanup) {
      cleanups.push(cleanup);
    },
    wait(promise) {
      return new Promise((resolve, reject) => {
        if (controller.signal.aborted) return reject(controller.signal.reason);
        const onAbort = (): void => reject(controller.signal.reason);
        controller.signal.addEventListener('abort', onAbort, { once: true });
        promise.then(resolve, reject).finally(() => controller.signal.removeEventListener('abort', onAbort));
      });
    },
  };
  try {
    return await round.wait(body(round));
  } finally {
    clearTimeout(timer);
    await Promise.all(children.map((c) => c.stop(controller.signal.aborted ? 0 : 5000)));
    for (const cleanup of cleanups.reverse()) {
      await cleanup().catch((error: unknown) => process.stderr.write(`  cleanup failed: ${(error as Error).message}\n`));
    }
  }
}
