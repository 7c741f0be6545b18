/**
 * skipq's clients: the typed producer (`createQueueClient`) and the bundled worker (`createWorker`).
 * They import the server's router as a type only.
 */
export { createQueueClient, type QueueClient, type QueueClientOptions, type EnqueueOptions, type EnqueueItem } from './queueClient.js';
export { createWorker, type Worker, type WorkerOptions, type Handlers, type JobContext, type WorkerEvent, type WorkerLogger, type StopReport, type UndeliveredReport } from './worker.js';
export { PermanentError, InvalidPayloadError, errorCodeOf, isLeaseLost, isTransient } from './errors.js';
export { defineJobs } from '../shared/index.js';
