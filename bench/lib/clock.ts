/**
 * Milliseconds of the machine's monotonic clock (CLOCK_MONOTONIC, through
 * process.hrtime), with sub-microsecond resolution and one origin for every
 * process on this machine, so a producer and a worker in different processes
 * can subtract their readings. Date.now() would round every latency to whole
 * milliseconds. Not performance.timeOrigin + performance.now(): that anchors
 * each process to the wall clock once at its start, and a process descheduled
 * between the two readings (a loaded machine) was off by milliseconds for its
 * whole life; W4 medians of -3.5 ms were measured that way here.
 */
export const now = (): number => Number(process.hrtime.bigint()) / 1e6;

/** Resolves after `ms` milliseconds. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
