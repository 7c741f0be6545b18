import { createRequire } from 'node:module';

/** `@opentelemetry/api`, as loaded on first need (see {@link registeredOtel}). */
export type OtelApi = typeof import('@opentelemetry/api');

// Where @opentelemetry/api 1.x keeps every global it is given (tracer, meter
// and propagation providers, the context manager, diag): its
// GLOBAL_OPENTELEMETRY_API_KEY. The ESM and CommonJS builds, and every copy
// of 1.x in node_modules, share it.
const OTEL_GLOBALS = Symbol.for('opentelemetry.js.api.1');

const load = createRequire(import.meta.url);
let api: OtelApi | undefined;

/** Loads `@opentelemetry/api` (once): for code that traces whether or not an SDK is there. */
export function otelApi(): OtelApi {
  api ??= load('@opentelemetry/api') as OtelApi;
  return api;
}

/**
 * `@opentelemetry/api` once anything has registered with it (an SDK's tracer
 * or meter provider, a context manager), else undefined: until then every call
 * of the API is its no-op (no active span, a non-recording tracer, a no-op
 * meter), so the clients skip tracing without loading it. Asked per call, so
 * an SDK registered after a client or worker was made is seen by its next call.
 * Loading the API was 46 files, 9-15 ms of a worker's start (--cpu-prof of the
 * W3 worker; the start is inside W3's clock) in apps that trace nothing.
 */
export function registeredOtel(): OtelApi | undefined {
  if (api !== undefined) return api;
  return (globalThis as Record<symbol, unknown>)[OTEL_GLOBALS] === undefined ? undefined : otelApi();
}
