import { DEFAULT_QUEUE, ERROR_CODES, invalidPayloadMessage, type JobDefinition, type JobRegistry } from '../shared/index.js';
import { QueueError } from './errors.js';

/** Defaults a job gets from its type when the call does not set them. */
export interface TypeDefaults {
  queue: string;
  priority: number;
  maxRetries: number;
  timeoutMs: number | null;
}

const NO_REGISTRY_DEFAULTS: TypeDefaults = Object.freeze({ queue: DEFAULT_QUEUE, priority: 0, maxRetries: 3, timeoutMs: null });

/**
 * Validates a payload against the server's registry and returns what to store
 * (the schema's output) with the type's defaults. Without a registry any JSON
 * payload is accepted as it is.
 */
export function checkPayload(registry: JobRegistry | null, type: string, payload: unknown): { payload: unknown; defaults: TypeDefaults } {
  if (!registry) return { payload, defaults: NO_REGISTRY_DEFAULTS };
  const def = registry[type];
  if (!def) {
    const known = Object.keys(registry).join(', ');
    throw new QueueError(ERROR_CODES.UNKNOWN_JOB_TYPE, `unknown job type "${type}"; this server knows: ${known}`);
  }
  const parsed = def.payload.safeParse(payload);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => ({ path: i.path, message: i.message }));
    throw new QueueError(ERROR_CODES.INVALID_PAYLOAD, invalidPayloadMessage(type, issues), issues);
  }
  return { payload: parsed.data, defaults: defaultsOf(def) };
}

/** The defaults a job of type `def` gets when the call does not set them (also what job_types records). */
export function defaultsOf(def: JobDefinition): TypeDefaults {
  return {
    queue: def.queue ?? DEFAULT_QUEUE,
    priority: def.priority ?? 0,
    maxRetries: def.maxRetries ?? 3,
    timeoutMs: def.timeoutMs ?? null,
  };
}

/** The queue a job will go to: the call's, else its type's, else `default`. */
export function queueOf(registry: JobRegistry | null, input: { type: string; queue?: string | undefined }): string {
  return input.queue ?? registry?.[input.type]?.queue ?? DEFAULT_QUEUE;
}
