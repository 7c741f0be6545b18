import { getTRPCErrorFromUnknown, TRPCError } from '@trpc/server';
import { ZodError } from 'zod';
import { ERROR_CODES, type ErrorCode } from '../shared/index.js';

type TRPCCode = TRPCError['code'];

/** Which tRPC code each domain error becomes. The one place this mapping lives. */
const TRPC_CODE_OF: Record<ErrorCode, TRPCCode> = {
  JOB_NOT_FOUND: 'NOT_FOUND',
  SCHEDULE_NOT_FOUND: 'NOT_FOUND',
  LEASE_LOST: 'CONFLICT',
  JOB_CANCELLED: 'CONFLICT',
  WRONG_STATE: 'CONFLICT',
  UNKNOWN_JOB_TYPE: 'BAD_REQUEST',
  INVALID_PAYLOAD: 'BAD_REQUEST',
  INVALID_INPUT: 'BAD_REQUEST',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  DATABASE_UNAVAILABLE: 'SERVICE_UNAVAILABLE',
  UNAUTHORIZED: 'UNAUTHORIZED',
  FORBIDDEN: 'FORBIDDEN',
  SHUTTING_DOWN: 'SERVICE_UNAVAILABLE',
  JOB_ID_CONFLICT: 'CONFLICT',
  SERVER_BUSY: 'TOO_MANY_REQUESTS',
  REQUEST_TIMEOUT: 'TIMEOUT',
  EVENTS_LOST: 'CONFLICT',
  INTERNAL: 'INTERNAL_SERVER_ERROR',
};

/** An error the domain raises on purpose; the router's middleware turns it into a tRPC error (`data.code` the tRPC code, `data.skipqCode` this one). */
export class QueueError extends Error {
  override readonly name = 'QueueError';
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly issues?: ReadonlyArray<{ path: PropertyKey[]; message: string }>,
  ) {
    super(message);
  }
}

// PostgreSQL SQLSTATEs of values the database refuses: bad input, not a server fault.
const BAD_VALUE_STATES = new Set(['22P05', '22021', '22P02', '22003', '22007', '22008', '54000', '23514', '22023', '2202E']);
// Node socket errors and PostgreSQL states that mean "the database is not reachable now".
const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', '57P01', '57P02', '57P03', '53300']);

/** True when `error` says PostgreSQL is down, restarting or unreachable. */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'string' && (UNAVAILABLE_CODES.has(code) || code.startsWith('08'))) return true;
  return /Connection terminated|timeout exceeded when trying to connect|Client has encountered a connection error|Connection ended|connect ECONNREFUSED/i.test(
    error.message,
  );
}

/**
 * Classifies anything a procedure threw as a domain error, or undefined when
 * it is unexpected (a bug: logged, reported as INTERNAL_SERVER_ERROR without details).
 */
export function toQueueError(error: unknown): QueueError | undefined {
  if (error instanceof QueueError) return error;
  if (error instanceof ZodError) {
    return new QueueError(ERROR_CODES.INVALID_INPUT, error.issues.map((i) => `${i.path.join('.') || 'input'}: ${i.message}`).join('; '), error.issues);
  }
  if (isDatabaseUnavailable(error)) return new QueueError(ERROR_CODES.DATABASE_UNAVAILABLE, 'the database is unavailable; retry shortly');
  const state = (error as { code?: unknown } | null)?.code;
  if (typeof state === 'string' && BAD_VALUE_STATES.has(state)) {
    return new QueueError(ERROR_CODES.INVALID_INPUT, `the database rejected a value: ${(error as Error).message}`);
  }
  return undefined;
}

/** The tRPC error for a domain error. */
export function toTRPCError(error: QueueError): TRPCError {
  return new TRPCError({ code: TRPC_CODE_OF[error.code], message: error.message, cause: error });
}

/** The TRPCError a call that threw `cause` answers with, for the paths served outside tRPC's adapter (fastCall, sseCall, rest). */
export function trpcErrorOf(cause: unknown): TRPCError {
  return cause instanceof QueueError ? toTRPCError(cause) : getTRPCErrorFromUnknown(cause);
}
