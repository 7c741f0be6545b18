import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, type TRPCClient } from '@trpc/client';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import { LIMITS } from '../shared/limits.js';
import type { AppRouter } from '../server/routers/_app.js';
import { jsonLink } from './jsonLink.js';
import { createTransport, DEFAULT_REQUEST_TIMEOUT_MS, type Transport } from './transport.js';

/** Connection options shared by the producer client and the worker. */
export interface ConnectionOptions {
  /** The server's tRPC endpoint, e.g. `http://127.0.0.1:3000/trpc`. */
  url: string;
  /** API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Keep-alive connections to the server. Default 16. */
  connections?: number;
  /** Longest one request may take before it is cut and counts as a network failure (a long-poll gets its wait on top). Default 10 000. */
  requestTimeoutMs?: number;
}

/** The typed tRPC client of a skipq server. */
export type SkipqTrpc = TRPCClient<AppRouter>;

/**
 * Operation context that sends a call in an HTTP request of its own instead of
 * tRPC's batch: for calls that carry a lot (a batch fails or succeeds as one
 * HTTP request, and the server caps request bodies).
 * @example trpc.worker.completeMany.mutate(input, { context: ALONE })
 */
export const ALONE = Object.freeze({ alone: true });

/**
 * Checks a server URL before anything is sent: an absolute http(s) URL whose
 * path ends in `/trpc`. Without this, a URL lacking `/trpc` failed later with
 * tRPC's "Unable to transform response from server" and one lacking a scheme
 * with a raw undici stack.
 * @example assertServerUrl('http://127.0.0.1:3000/trpc')
 */
export function assertServerUrl(url: string): void {
  const example = 'e.g. http://127.0.0.1:3000/trpc';
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new TypeError(`skipq url ${JSON.stringify(url)} is not an absolute URL: it needs http:// or https:// and the /trpc path, ${example}`);
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw new TypeError(`skipq url ${JSON.stringify(url)} uses ${parsed.protocol.slice(0, -1)}: only http and https are served, ${example}`);
  }
  if (!/\/trpc$/.test(parsed.pathname) || parsed.search !== '' || parsed.hash !== '') {
    const path = parsed.pathname.replace(/\/+$/, '');
    const suggestion = `${parsed.origin}${path.endsWith('/trpc') ? path : `${path}/trpc`}`;
    throw new TypeError(`skipq url ${JSON.stringify(url)} does not end in /trpc (the tRPC endpoint of a skipq server); did you mean ${suggestion}?`);
  }
}

/**
 * A value that is plain JSON all the way down (strings, finite numbers but -0,
 * booleans, null, arrays, plain objects; no undefined, Date or class instance
 * anywhere), handed to the transport as it is. As a call's whole input, the
 * transformer writes it as `{ json: value }`, which is all superjson would
 * have written; inside an input, superjson's walk takes it (an instance of a
 * class it does not know) for a leaf, and JSON.stringify of the request body
 * writes what `toJSON` gives. Either way the server receives the JSON superjson
 * would have written, without the walk. Measured on this machine: superjson's
 * walk of a claim carrying 1,000 completions was 5.6% of the worker's busy
 * time in a W3 drain of 10,000 no-op jobs (--cpu-prof), and of the producer's
 * enqueueMany of 500 17% with `{ n }` payloads, 30% with 4 KiB ones (producer
 * CPU per 4 KiB job about 85 -> 43 µs without it).
 */
export class PlainJson {
  constructor(readonly value: unknown) {}

  toJSON(): unknown {
    return this.value;
  }
}

/**
 * `value`, marked as plain JSON (see {@link PlainJson}): the caller vouches for
 * it. Typed as the value, since the tRPC client only hands it to the transformer.
 * @example trpc.worker.completeMany.mutate(plainJson({ workerId, jobs: [{ id: '1', attempt: 1 }] }))
 */
export function plainJson<T>(value: T): T {
  return new PlainJson(value) as T;
}

/**
 * The transformer of skipq's tRPC clients (exported for tests:
 * test/workerHotPath.test.ts): {@link PlainJson} inputs skip superjson's walk,
 * and answers are read in place, since each was just parsed from the wire and
 * the deep copy superjson makes by default was pure garbage (a drain of 4 KiB
 * payloads: the copy was 7% of the worker's busy time, and GC 46%).
 */
export const transformer = {
  serialize: (value: unknown) => (value instanceof PlainJson ? { json: value } : superjson.serialize(value)),
  deserialize: (value: unknown): unknown => superjson.deserialize(value as Parameters<typeof superjson.deserialize>[0], { inPlace: true }),
};

/**
 * Creates the tRPC client. With `batch`, calls made together share a request
 * (tRPC's batch link waits a timer tick, about 1 ms, to gather them), but
 * long-polling claims always go alone: a batch waits for its slowest call.
 * Without it every call leaves at once: the producer coalesces enqueues itself.
 * `longPollMs` is the longest wait a claim asks for: its request may take that
 * much longer than `requestTimeoutMs`.
 */
export function createTrpc(options: ConnectionOptions, batch: boolean, longPollMs = 0): { trpc: SkipqTrpc; transport: Transport } {
  assertServerUrl(options.url);
  const requestTimeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
  const transport = createTransport(options.url, {
    connections: options.connections,
    headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {},
    requestTimeoutMs,
  });
  const common = { url: options.url, transformer, fetch: transport.fetch } as const;
  const calls = batch
    ? splitLink({
        condition: (op) => op.path === 'worker.claim' || op.context.alone === true,
        true: splitLink({
          condition: (op) => op.path === 'worker.claim',
          true: jsonLink<AppRouter>({ ...common, fetch: transport.fetchWithin(longPollMs + requestTimeoutMs) }),
          false: jsonLink<AppRouter>(common),
        }),
        false: httpBatchLink({ ...common, maxItems: 50 }),
      })
    : jsonLink<AppRouter>(common);
  // Subscriptions (events.jobs) over SSE. Node 20 has no global EventSource:
  // the `eventsource` package's, whose fetch option carries the API key (a
  // browser's EventSource cannot send headers). Node's own fetch, not the
  // transport's: an event stream is one long response, not a pooled call.
  const authorization = options.apiKey ? `Bearer ${options.apiKey}` : undefined;
  const subscriptions = httpSubscriptionLink({
    url: options.url,
    transformer,
    EventSource,
    eventSourceOptions: authorization
      ? { fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, authorization } }) }
      : {},
  });
  const trpc = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        true: subscriptions,
        // jobs.waitFor long-polls up to LIMITS.maxWaitMs: alone, and allowed that much longer.
        false: splitLink({
          condition: (op) => op.path === 'jobs.waitFor',
          true: jsonLink<AppRouter>({ ...common, fetch: transport.fetchWithin(LIMITS.maxWaitMs + requestTimeoutMs) }),
          false: calls,
        }),
      }),
    ],
  });
  return { trpc, transport };
}
