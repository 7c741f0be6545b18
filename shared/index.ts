/**
 * skipq's shared module: the job registry, API schemas, statuses and error codes.
 * Imports only zod, so producers, workers and the server can all depend on it.
 */
export * from './api.js';
export * from './batcher.js';
export * from './errors.js';
export * from './events.js';
export * from './ids.js';
export * from './issues.js';
export * from './lifecycle.js';
export * from './limits.js';
export * from './names.js';
export * from './registry.js';
export * from './statuses.js';
export * from './queues.js';
export * from './outputs.js';
