import { TRPCClientError } from '@trpc/client';
import type { ErrorCode } from '../shared/index.js';

/**
 * Throw from a handler to fail the job for good: no retry, whatever retries are left.
 * @example throw new PermanentError(`chain ${chainId} does not exist`);
 */
export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

/** A payload failed its job type's schema on the client, before anything was sent. */
export class InvalidPayloadError extends Error {
  override readonly name = 'InvalidPayloadError';
  constructor(
    readonly type: string,
    readonly issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
  ) {
    super(`payload of "${type}" is invalid: ${issues.map((i) => `${i.path.map(String).join('.') || '(payload)'}: ${i.message}`).join('; ')}`);
  }
}

/** The skipq error code (`error.data.code`) of a failed call, if the server sent one. */
export function errorCodeOf(error: unknown): ErrorCode | undefined {
  if (!(error instanceof TRPCClientError)) return undefined;
  const data = error.data as { code?: ErrorCode } | undefined;
  return data?.code;
}

/** True when a worker call failed because the worker no longer holds the job. */
export function isLeaseLost(error: unknown): boolean {
  return errorCodeOf(error) === 'LEASE_LOST';
}

/** True when the failure is worth retrying later: the server or its database is unavailable, or the network failed. */
export function isTransient(error: unknown): boolean {
  const code = errorCodeOf(error);
  if (code === 'DATABASE_UNAVAILABLE' || code === 'SHUTTING_DOWN') return true;
  if (error instanceof TRPCClientError) {
    const status = (error.data as { httpStatus?: number } | undefined)?.httpStatus;
    return status === undefined || status === 502 || status === 503 || status === 504;
  }
  return false;
}

/** What the result errors carry about the job: enough to log or branch on without another call. */
interface FinishedJob {
  id: string;
  type: string;
  status: string;
  error: string | null;
  errorCode: string | null;
  attempt: number;
}

/**
 * The awaited job failed for good (its retries are spent, or the error was permanent).
 * @example if (error instanceof JobFailedError) console.log(error.lastError, error.attempts);
 */
export class JobFailedError extends Error {
  override readonly name = 'JobFailedError';
  /** The error message of the last attempt. */
  readonly lastError: string | null;
  /** Why the last attempt failed, as a code (FAILURE_CODES), if one was given. */
  readonly errorCode: string | null;
  /** Attempts made (claims, including the last). */
  readonly attempts: number;
  constructor(readonly job: FinishedJob) {
    super(`job ${job.id} ("${job.type}") failed after ${job.attempt} attempt(s): ${job.error ?? 'no error message'}`);
    this.lastError = job.error;
    this.errorCode = job.errorCode;
    this.attempts = job.attempt;
  }
}

/** The awaited job was cancelled. */
export class JobCancelledError extends Error {
  override readonly name = 'JobCancelledError';
  constructor(readonly job: FinishedJob) {
    super(`job ${job.id} ("${job.type}") was cancelled`);
  }
}

/** The awaited job was not finished when the wait's `timeoutMs` passed; it may still finish later. */
export class JobWaitTimeoutError extends Error {
  override readonly name = 'JobWaitTimeoutError';
  constructor(
    readonly job: FinishedJob,
    readonly timeoutMs: number,
  ) {
    super(`job ${job.id} ("${job.type}") is still ${job.status} after ${timeoutMs} ms`);
  }
}

/** The stored result of a completed job does not match its type's result schema (the registries of worker and producer differ). */
export class InvalidResultError extends Error {
  override readonly name = 'InvalidResultError';
  constructor(
    readonly job: FinishedJob,
    readonly issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
  ) {
    super(`result of job ${job.id} ("${job.type}") fails the result schema: ${issues.map((i) => `${i.path.map(String).join('.') || '(result)'}: ${i.message}`).join('; ')}`);
  }
}
