import type { WorkerEvent, WorkerLogger } from './types.js';

const ignore = (): void => {};

/** The default logger: warnings and errors, one line each on stderr. */
export const stderrLogger: WorkerLogger = {
  debug: ignore,
  info: ignore,
  warn: (fields, message) => process.stderr.write(`[skipq worker] warn: ${message ?? ''} ${JSON.stringify(fields)}\n`),
  error: (fields, message) => {
    const err = (fields as { err?: unknown }).err;
    const detail = err instanceof Error ? (err.stack ?? err.message) : JSON.stringify(fields);
    process.stderr.write(`[skipq worker] error: ${message ?? ''} ${detail}\n`);
  },
  isLevelEnabled: (level) => level === 'warn' || level === 'error' || level === 'fatal',
};

/**
 * Writes each worker event to `logger` at its level. Completions are debug and
 * are not even described unless debug is on (they are the hot path).
 */
export function createEventLogger(logger: WorkerLogger, workerId: string): (event: WorkerEvent) => void {
  const debugOn = logger.isLevelEnabled ? logger.isLevelEnabled('debug') : true;
  return (event) => {
    switch (event.kind) {
      case 'completed':
        if (debugOn) logger.debug({ workerId, id: event.id, type: event.type, attempt: event.attempt }, 'job completed');
        return;
      case 'failed':
        return logger.warn({ workerId, id: event.id, type: event.type, attempt: event.attempt, code: event.code, willRetry: event.willRetry, error: event.error }, `job ${event.id} (${event.type}) failed: ${event.error}`);
      case 'lost':
        return logger.warn({ workerId, id: event.id, reason: event.reason }, `job ${event.id} lost (${event.reason})`);
      case 'progress_rejected':
        return logger.warn({ workerId, id: event.id, type: event.type, error: event.error }, `progress of job ${event.id} refused: ${event.error}`);
      case 'stopped':
        if (event.undelivered.length > 0) return logger.warn({ workerId, undelivered: event.undelivered.length }, `worker stopped; ${event.undelivered.length} report(s) could not be delivered`);
        return logger.info({ workerId }, 'worker stopped');
      case 'error':
        return logger.error({ workerId, err: event.error }, `worker error: ${event.error instanceof Error ? event.error.message : String(event.error)}`);
    }
  };
}
