import { isTransient } from '../errors.js';

/** Tries of one report while the worker runs: about 80 s of backoff, past most restarts of a server. */
const MAX_TRIES = 20;

/**
 * When reports (completions, failures, releases) may still be sent. While the
 * worker runs, a report is retried on transient errors for about 80 s. Once
 * stop() begins, retries end with the grace period, and every report request
 * is cut one request timeout later: that is what bounds stop().
 */
export interface DeliveryWindow {
  /** True once stop() has begun. */
  readonly closing: boolean;
  /** True once the grace period is over: no report is retried any more. */
  readonly retriesOver: boolean;
  /**
   * The signal for a report request: none while running (a long-lived signal
   * would collect a listener per call), then one aborted at the hard deadline.
   */
  requestSignal(): AbortSignal | undefined;
  /** Waits `ms`; resolves false at once if retries end first. */
  pause(ms: number): Promise<boolean>;
  /** Begins the end: retries stop after `graceMs`, report requests are cut after `graceMs + requestTimeoutMs`. */
  close(graceMs: number, requestTimeoutMs: number): void;
  /** Resolves when the grace period is over. */
  graceOver(): Promise<void>;
  /** Milliseconds until the hard deadline (Infinity while running). */
  remainingMs(): number;
}

/** Creates the window of a worker. */
export function createDeliveryWindow(): DeliveryWindow {
  const retries = new AbortController();
  const requests = new AbortController();
  let closing = false;
  let hardDeadline = Infinity;
  return {
    get closing() {
      return closing;
    },
    get retriesOver() {
      return retries.signal.aborted;
    },
    requestSignal: () => (closing ? requests.signal : undefined),
    pause(ms) {
      if (retries.signal.aborted) return Promise.resolve(false);
      return new Promise((resolve) => {
        const over = (): void => {
          clearTimeout(timer);
          resolve(false);
        };
        const timer = setTimeout(() => {
          retries.signal.removeEventListener('abort', over);
          resolve(true);
        }, ms);
        retries.signal.addEventListener('abort', over, { once: true });
      });
    },
    close(graceMs, requestTimeoutMs) {
      if (closing) return;
      closing = true;
      hardDeadline = Date.now() + graceMs + requestTimeoutMs;
      // Unref'd: a deadline must not keep the process alive by itself.
      setTimeout(() => retries.abort(), graceMs).unref();
      setTimeout(() => requests.abort(new Error('the worker stopped before the server answered')), graceMs + requestTimeoutMs).unref();
    },
    graceOver() {
      if (retries.signal.aborted) return Promise.resolve();
      return new Promise((resolve) => retries.signal.addEventListener('abort', () => resolve(), { once: true }));
    },
    remainingMs: () => hardDeadline - Date.now(),
  };
}

/**
 * Sends with retries on transient errors (server or database unavailable,
 * network failure, request timeout) while the window allows; rethrows the last error.
 */
export async function deliver<T>(window: DeliveryWindow, send: () => Promise<T>): Promise<T> {
  for (let tries = 0; ; tries++) {
    try {
      return await send();
    } catch (error) {
      if (!isTransient(error) || tries >= MAX_TRIES || window.retriesOver) throw error;
      if (!(await window.pause(Math.min(100 * 2 ** tries, 5000)))) throw error;
    }
  }
}
