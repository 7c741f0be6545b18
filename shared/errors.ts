/**
 * Machine-readable error codes. The server puts one in `error.data.code` of every
 * tRPC error it raises on purpose, so a client can react without parsing messages.
 */
export const ERROR_CODES = {
  /** No job has that id. (tRPC NOT_FOUND) */
  JOB_NOT_FOUND: 'JOB_NOT_FOUND',
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
  /** Anything unexpected; the server logged it. (tRPC INTERNAL_SERVER_ERROR) */
  INTERNAL: 'INTERNAL',
} as const;

/** One of {@link ERROR_CODES}. */
export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];
