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
