import { TRPCClientError } from '@trpc/client';
import { ERROR_CODES } from '../shared/errors.js';
import { invalidPayloadMessage } from '../shared/issues.js';
import type { ErrorCode } from '../shared/index.js';
import { RequestTimeoutError } from './transport.js';

/**
 * Throw from a handler to fail the job for good: no retry, whatever retries are left.
 * @example throw new PermanentError(`chain ${chainId} does not exist`);
 */
export class PermanentError extends Error {
  override readonly name = 'PermanentError';
}

/** A payload failed its job type's schema on the client, before anything was sent. `code` is INVALID_PAYLOAD, as the server would say. */
export class InvalidPayloadError extends Error {
  override readonly name = 'InvalidPayloadError';
  readonly code = ERROR_CODES.INVALID_PAYLOAD;
  constructor(
    readonly type: string,
    readonly issues: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
  ) {
    super(invalidPayloadMessage(type, issues));
  }
}

/** skipq's code as the server sent it (`error.data.skipqCode`); undefined when no skipq server answered. */
export function serverCodeOf(error: unknown): ErrorCode | undefined {
  if (!(error instanceof TRPCClientError)) return undefined;
  return (error.data as { skipqCode?: ErrorCode } | undefined)?.skipqCode;
}

/**
 * The skipq error code of a failed call or of the client's own refusal: the
 * server's `error.data.skipqCode`, INVALID_PAYLOAD for an {@link InvalidPayloadError},
 * REQUEST_TIMEOUT for a request cut by its time limit; undefined otherwise
 * (a network failure, a tRPC error without a skipq reason such as an unknown path).
 * @example if (errorCodeOf(error) === 'LEASE_LOST') return;
 */
export function errorCodeOf(error: unknown): ErrorCode | undefined {
  if (error instanceof InvalidPayloadError) return error.code;
  if (error instanceof RequestTimeoutError) return ERROR_CODES.REQUEST_TIMEOUT;
  if (!(error instanceof TRPCClientError)) return undefined;
  const sent = serverCodeOf(error);
  if (sent) return sent;
  return error.cause instanceof RequestTimeoutError ? ERROR_CODES.REQUEST_TIMEOUT : undefined;
}

/** True when a worker call failed because the worker no longer holds the job. */
export function isLeaseLost(error: unknown): boolean {
  return errorCodeOf(error) === 'LEASE_LOST';
}

const TRANSIENT_CODES: ReadonlySet<ErrorCode> = new Set([ERROR_CODES.DATABASE_UNAVAILABLE, ERROR_CODES.SHUTTING_DOWN, ERROR_CODES.SERVER_BUSY, ERROR_CODES.REQUEST_TIMEOUT]);

/**
 * True when the failure is worth retrying later: the server or its database is
 * unavailable, the server is busy (429), the request timed out, or the network failed.
 */
export function isTransient(error: unknown): boolean {
  const code = errorCodeOf(error);
  if (code !== undefined && TRANSIENT_CODES.has(code)) return true;
  if (error instanceof TRPCClientError) {
    const status = (error.data as { httpStatus?: number } | undefined)?.httpStatus;
    return status === undefined || status === 429 || status === 502 || status === 503 || status === 504;
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
