/**
 * Wall-clock milliseconds with sub-millisecond resolution, comparable across
 * processes on this machine: each process anchors its monotonic clock to the
 * wall clock once at start (performance.timeOrigin, microsecond precision), so
 * a producer and a worker in different processes can subtract their readings.
 * Date.now() would round every latency to whole milliseconds.
 */
export const now = (): number => performance.timeOrigin + performance.now();

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
