/**
 * skipq's clients: the typed producer (`createQueueClient`) and the bundled worker (`createWorker`).
 * They import the server's router as a type only.
 */
export {
  createQueueClient,
  type QueueClient,
  type QueueClientOptions,
  type EnqueueOptions,
  type EnqueueItem,
  type EnqueuedJobRef,
  type TypedJobView,
  type WaitOptions,
  type Flow,
  type FlowJob,
  type FlowJobOptions,
  type EnqueuedFlowRef,
  type TypedJobEvent,
  type SubscribeOptions,
  type JobEventStream,
  type JobFilterOf,
} from './queueClient.js';
export { createWorker, type Worker, type WorkerOptions, type Handlers, type JobContext, type ChildResult, type WorkerEvent, type WorkerLogger, type StopReport, type UndeliveredReport } from './worker.js';
export {
  PermanentError,
  InvalidPayloadError,
  InvalidResultError,
  JobCancelledError,
  JobFailedError,
  JobWaitTimeoutError,
  errorCodeOf,
  serverCodeOf,
  isLeaseLost,
  isTransient,
} from './errors.js';
export { defineJobs } from '../shared/registry.js';
/** The server's router type, for a tRPC client of your own (`createTRPCClient<AppRouter>`); the built package declares it without the server's context. */
export type { AppRouter } from '../server/routers/_app.js';
