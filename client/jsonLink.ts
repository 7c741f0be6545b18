import { TRPCClientError, type TRPCLink } from '@trpc/client';
import type { AnyTRPCRouter } from '@trpc/server';
import { observable } from '@trpc/server/observable';

/** A tRPC transformer with one side for inputs and answers (as skipq's, client/trpc.ts). */
interface Transformer {
  serialize(value: unknown): unknown;
  deserialize(value: unknown): unknown;
}

/** Options of {@link jsonLink}. */
export interface JsonLinkOptions {
  /** The server's tRPC endpoint. */
  url: string;
  fetch: typeof globalThis.fetch;
  transformer: Transformer;
}

/** tRPC's message for an answer that is not a tRPC response. */
class TransformResultError extends Error {
  constructor() {
    super('Unable to transform response from server');
  }
}

const isObject = (value: unknown): value is Record<string, unknown> => !!value && !Array.isArray(value) && typeof value === 'object';

/**
 * A terminating link that sends each call in an HTTP request of its own, with
 * a JSON input: tRPC's `httpLink` for the inputs skipq's clients send (never
 * FormData or binary), with the same requests, answers and errors (a
 * `TRPCClientError` with `meta.response` and `meta.responseJSON`). Queries go
 * as GET with `?input=`, mutations as a POST body.
 *
 * Why not httpLink: it asks `input instanceof FormData` of every call, and in
 * Node 20 the first read of the `FormData` global loads Node's bundled undici.
 * Measured on this machine: 19-29 ms of a client's first call (a producer's
 * first enqueue 51-57 ms, 24-37 with FormData already loaded), paid by every
 * worker and producer process at its start. httpBatchLink does not check, and
 * stays tRPC's.
 */
export function jsonLink<TRouter extends AnyTRPCRouter>(options: JsonLinkOptions): TRPCLink<TRouter> {
  const base = options.url.replace(/\/$/, '');
  const { transformer } = options;
  // As tRPC's transformResult: an answer the transformer cannot read is not a tRPC response.
  const read = (value: unknown): unknown => {
    try {
      return transformer.deserialize(value);
    } catch {
      throw new TransformResultError();
    }
  };
  return () =>
    ({ op }) =>
      observable((observer) => {
        const { path, input, type } = op;
        if (type === 'subscription') throw new Error('Subscriptions are unsupported by jsonLink: use httpSubscriptionLink');
        // Serialized first: a payload whose toJSON throws fails the call through the observer, as in httpLink, with nothing left on the caller's signal.
        let body: string | undefined;
        try {
          const serialized = transformer.serialize(input);
          body = serialized === undefined ? undefined : JSON.stringify(serialized);
        } catch (cause) {
          observer.error(TRPCClientError.from(cause as Error));
          return () => {};
        }
        // As httpLink: the request ends when the caller's signal aborts or the call is unsubscribed.
        const ac = new AbortController();
        const abort = (): void => ac.abort();
        if (op.signal?.aborted) ac.abort();
        else op.signal?.addEventListener('abort', abort, { once: true });
        const cleanup = (): void => op.signal?.removeEventListener('abort', abort);

        const request: RequestInit =
          type === 'query'
            ? { method: 'GET', signal: ac.signal }
            : { method: 'POST', signal: ac.signal, body, headers: { 'content-type': 'application/json' } };
        const url = type === 'query' && body !== undefined ? `${base}/${path}?input=${encodeURIComponent(body)}` : `${base}/${path}`;
        // As httpLink: set once the answer's JSON is read (a failed request or a body that is not JSON has none).
        let meta: { response: Response; responseJSON: unknown } | undefined;
        let done = false;
        options
          .fetch(url, request)
          .then(async (response) => {
            const json: unknown = await response.json();
            meta = { response, responseJSON: json };
            done = true;
            if (!isObject(json)) throw new TransformResultError();
            if ('error' in json) {
              const error = read(json.error);
              if (!isObject(error) || typeof error.code !== 'number') throw new TransformResultError();
              observer.error(TRPCClientError.from({ ...json, error }, { meta }));
              return;
            }
            const result = json.result;
            if (!isObject(result)) throw new TransformResultError();
            observer.next({ context: meta, result: { ...result, type: 'data', data: read(result.data) } });
            observer.complete();
          })
          .catch((cause: unknown) => {
            done = true;
            observer.error(TRPCClientError.from(cause as Error, { meta }));
          });
        return () => {
          if (!done) ac.abort();
          cleanup();
        };
      });
}
