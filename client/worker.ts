/**
 * The bundled worker. Split along its seams (see client/worker/): the claim
 * loop fetches ahead (claimLoop.ts), the runner runs one job per slot and
 * decides its outcome (runner.ts), reporting sends completions, failures,
 * starts and heartbeats (reporting.ts, starts.ts, heartbeats.ts), and the
 * lifecycle wires them and owns start/stop (lifecycle.ts).
 */
export { createWorker } from './worker/lifecycle.js';
export type { ChildResult, Handlers, JobContext, StopReport, UndeliveredReport, Worker, WorkerEvent, WorkerLogger, WorkerOptions } from './worker/types.js';
