/**
 * Machine-readable error codes. The server puts one in `error.data.skipqCode` of every
 * tRPC error it raises on purpose (`error.data.code` stays tRPC's own code, e.g.
 * CONFLICT), so a client can react without parsing messages. The client's own
 * errors carry one too, in `code`; `errorCodeOf()` reads both.
 */
export const ERROR_CODES = {
  /** No job has that id. (tRPC NOT_FOUND) */
  JOB_NOT_FOUND: 'JOB_NOT_FOUND',
  /** No schedule has that name. (tRPC NOT_FOUND) */
  SCHEDULE_NOT_FOUND: 'SCHEDULE_NOT_FOUND',
  /** The caller no longer holds the job: another attempt owns it, or the lease ran out. (tRPC CONFLICT) */
  LEASE_LOST: 'LEASE_LOST',
  /** The job was cancelled while the caller held it. (tRPC CONFLICT) */
  JOB_CANCELLED: 'JOB_CANCELLED',
  /** The job is not in a status that allows this transition. (tRPC CONFLICT) */
  WRONG_STATE: 'WRONG_STATE',
  /** The job type is not in the server's registry. (tRPC BAD_REQUEST) */
  UNKNOWN_JOB_TYPE: 'UNKNOWN_JOB_TYPE',
  /** The payload does not match the job type's schema. (tRPC BAD_REQUEST) */
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  /** The input failed validation. (tRPC BAD_REQUEST) */
  INVALID_INPUT: 'INVALID_INPUT',
  /** A payload or result is larger than the server accepts. (tRPC PAYLOAD_TOO_LARGE) */
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  /** PostgreSQL cannot be reached right now; try again shortly. (tRPC SERVICE_UNAVAILABLE) */
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  /** No valid API key was sent. (tRPC UNAUTHORIZED) */
  UNAUTHORIZED: 'UNAUTHORIZED',
  /** The API key's role or queues do not allow this call. (tRPC FORBIDDEN) */
  FORBIDDEN: 'FORBIDDEN',
  /** The server is shutting down. (tRPC SERVICE_UNAVAILABLE) */
  SHUTTING_DOWN: 'SHUTTING_DOWN',
  /** A job id given by the caller belongs to another job this caller may not reuse. (tRPC CONFLICT) */
  JOB_ID_CONFLICT: 'JOB_ID_CONFLICT',
  /** The server is reading as many request bytes as it allows; retry shortly. (tRPC TOO_MANY_REQUESTS) */
  SERVER_BUSY: 'SERVER_BUSY',
  /** Client side: a request got no complete answer within its time limit; it may or may not have taken effect. (tRPC TIMEOUT) */
  REQUEST_TIMEOUT: 'REQUEST_TIMEOUT',
  /** events.jobs cannot resume from that lastEventId: events after it were pruned or never logged (no subscriber for longer than the resume window). Re-read the jobs, then subscribe afresh. (tRPC CONFLICT) */
  EVENTS_LOST: 'EVENTS_LOST',
  /** Anything unexpected; the server logged it. (tRPC INTERNAL_SERVER_ERROR) */
  INTERNAL: 'INTERNAL',
} as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/**
 * Why an attempt failed, stored in the job's `error_code` next to its
 * human-readable `error`. Programs branch on these; people read the message.
 */
export const FAILURE_CODES = {
  /** The handler threw (or rejected). Retried per the type's policy unless permanent. */
  HANDLER_ERROR: 'HANDLER_ERROR',
  /** The attempt ran past its `timeoutMs`. Retried per policy. */
  TIMEOUT: 'TIMEOUT',
  /** The payload failed the type's schema when a worker claimed it. Not retried. */
  INVALID_PAYLOAD: 'INVALID_PAYLOAD',
  /** The handler's result failed the result schema, is not JSON, or is over the size limit. Not retried. */
  INVALID_RESULT: 'INVALID_RESULT',
  /** The worker that claimed the job has no handler for its type. Not retried. */
  NO_HANDLER: 'NO_HANDLER',
  /** The worker stopped heartbeating and its lease ran out (set by the rescuer). */
  LEASE_EXPIRED: 'LEASE_EXPIRED',
  /** A flow's parent failed because a child of it failed or was cancelled (its `onChildFailure` is `fail`). Not retried. */
  CHILD_FAILED: 'CHILD_FAILED',
} as const;

/** One of {@link FAILURE_CODES}. */
export type FailureCode = (typeof FAILURE_CODES)[keyof typeof FAILURE_CODES];
