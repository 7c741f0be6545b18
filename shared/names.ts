import { z } from 'zod';

/**
 * Job type and queue names: a letter or digit, then letters, digits, `_ . : -`,
 * at most 128 characters. Safe in URLs, logs, metrics labels and SQL text arrays.
 */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;

/** Zod schema of a job type or queue name ({@link NAME_PATTERN}). */
export const nameSchema = z
  .string()
  .regex(NAME_PATTERN, 'must start with a letter or digit and use only letters, digits, "_", ".", ":" or "-" (at most 128 characters)');

/** Free text PostgreSQL can store: no NUL character (text columns reject it). */
export function textSchema(max: number) {
  return z
    .string()
    .max(max)
    .refine((s) => !s.includes('\u0000'), 'must not contain the NUL character (\\u0000)');
}

/** The queue a job goes to when neither the call nor its type names one. */
export const DEFAULT_QUEUE = 'default';
