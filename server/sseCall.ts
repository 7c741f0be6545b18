import type { IncomingMessage, ServerResponse } from 'node:http';
import { callTRPCProcedure, getTRPCErrorShape, isTrackedEnvelope, TRPCError } from '@trpc/server';
import type { QueueContext } from './context.js';
import { trpcErrorOf } from './errors.js';
import { appRouter } from './routers/_app.js';

/** The subscription served here; tRPC's adapter serves any other. */
const PATH = 'events.jobs';
const URL_PREFIX = `/trpc/${PATH}`;

// tRPC's SSE response headers (its sseHeaders), so proxies treat both alike.
const SSE_HEADERS = Object.freeze({
  'content-type': 'text/event-stream',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no',
  connection: 'keep-alive',
});

/** Options of {@link createSseCall}. */
export interface SseCallOptions {
  onError(error: TRPCError, path: string, ctx: QueueContext): void;
}

/**
 * `GET /trpc/events.jobs?input=...` (tRPC's httpSubscriptionLink), served
 * through the same router, middleware, validation and error formatter and
 * written in tRPC's own SSE wire format (its sseStreamProducer: `connected`,
 * `data:`/`id:` per tracked event, `ping`, `serialized-error`, `return`), but
 * straight to node's response: one string and one res.write per event.
 *
 * Why: tRPC's adapter sends each event through a ReadableStream, a
 * TransformStream that enqueues the `data:`, `id:` and blank lines as
 * separate chunks, a TextEncoderStream and a WritableStream onto the node
 * response, and its ping races every next event with a timer. With ten
 * subscribers (W3-SUB10) that machinery was most of what the server
 * allocated (sampling heap profile: the encoder's transform alone 13%, the
 * web streams' promises and queues most of the rest), and that garbage made
 * the server's peak: heap used 139 MiB at 254 MiB RSS, with about 26 MiB
 * live after a forced GC. Here a ping is one timer per stream, pushed back
 * by every event written. W3-SUB10, medians of 3 alternated rounds (built
 * server, loaded machine): peak RSS 232 -> 124 MiB, server CPU 459 -> 93 ms
 * per 1,000 jobs, 1,861 -> 5,365 jobs/s.
 *
 * Backpressure is kept: the next event is pulled from the subscription only
 * once the socket took the last one (res.write / 'drain'), as tRPC does.
 */
export function createSseCall(options: SseCallOptions): (req: IncomingMessage, res: ServerResponse, ctx: QueueContext) => boolean {
  const config = appRouter._def._config;
  const pingMs = config.sse?.ping?.enabled ? (config.sse.ping.intervalMs ?? 1000) : 0;
  const connected = `event: connected\ndata: ${JSON.stringify(config.sse?.client ?? {})}\n\n\n`;
  const serialize = (value: unknown): string => JSON.stringify(config.transformer.output.serialize(value));

  const errorEvent = (cause: unknown, ctx: QueueContext, input: unknown): string => {
    const error = trpcErrorOf(cause);
    options.onError(error, PATH, ctx);
    const shape = getTRPCErrorShape({ config, error, type: 'subscription', path: PATH, input, ctx });
    return `event: serialized-error\ndata: ${serialize(shape)}\n\n\n`;
  };

  const serve = async (res: ServerResponse, ctx: QueueContext, rawInput: unknown): Promise<void> => {
    const abort = new AbortController();
    let wakeWriter: (() => void) | undefined;
    res.on('close', () => {
      abort.abort();
      wakeWriter?.();
    });
    res.on('drain', () => wakeWriter?.());
    let input: unknown;
    let iterator: AsyncIterator<unknown> | undefined;
    let failure: string | undefined;
    try {
      const data = await callTRPCProcedure({
        router: appRouter,
        path: PATH,
        type: 'subscription',
        ctx,
        signal: abort.signal,
        batchIndex: 0,
        getRawInput: async () => (input = rawInput),
      });
      const iterable = data as AsyncIterable<unknown> | null | undefined;
      if (typeof iterable?.[Symbol.asyncIterator] !== 'function') {
        throw new TRPCError({ code: 'INTERNAL_SERVER_ERROR', message: `Subscription ${PATH} did not return an observable or a AsyncGenerator` });
      }
      iterator = iterable[Symbol.asyncIterator]();
    } catch (cause) {
      // As tRPC answers a subscription that failed to start: a stream that says so, not an HTTP error (an EventSource cannot read one).
      failure = errorEvent(cause, ctx, input);
    }
    if (res.destroyed) {
      await iterator?.return?.();
      return;
    }
    res.writeHead(200, SSE_HEADERS);
    res.write(connected);
    if (failure !== undefined || iterator === undefined) {
      res.end(failure);
      return;
    }
    // Pings only while nothing else is written; every event pushes the next one back.
    const ping = pingMs > 0 ? setInterval(() => res.write('event: ping\ndata: \n\n\n'), pingMs) : undefined;
    try {
      for (;;) {
        const step = await iterator.next();
        if (step.done || abort.signal.aborted) break;
        const value = step.value;
        const text = isTrackedEnvelope(value) ? `data: ${serialize(value[1])}\nid: ${value[0]}\n\n\n` : `data: ${serialize(value)}\n\n\n`;
        ping?.refresh();
        if (!res.write(text) && !abort.signal.aborted) await new Promise<void>((resolve) => (wakeWriter = resolve));
        wakeWriter = undefined;
        if (abort.signal.aborted) break;
      }
      if (!abort.signal.aborted) res.end('event: return\ndata: \n\n\n');
    } catch (cause) {
      if (!abort.signal.aborted) res.end(errorEvent(cause, ctx, input));
    } finally {
      clearInterval(ping);
      if (abort.signal.aborted) await iterator.return?.(undefined).catch(() => undefined);
    }
  };

  return (req, res, ctx) => {
    if (req.method !== 'GET' || !req.url?.startsWith(URL_PREFIX)) return false;
    const url = new URL(req.url, 'http://skipq');
    if (url.pathname !== URL_PREFIX) return false;
    // Only what httpSubscriptionLink sends (input); batches, connectionParams and anything else are the adapter's.
    for (const key of url.searchParams.keys()) if (key !== 'input') return false;
    const text = url.searchParams.get('input');
    let input: unknown;
    if (text !== null) {
      try {
        input = config.transformer.input.deserialize(JSON.parse(text));
      } catch {
        // The adapter says what is wrong with it.
        return false;
      }
    }
    // As tRPC does: a reconnecting EventSource's Last-Event-ID goes into the input.
    const lastEventId = req.headers['last-event-id'];
    if (typeof lastEventId === 'string' && lastEventId.length > 0) {
      input = input !== null && typeof input === 'object' && !Array.isArray(input) ? { ...input, lastEventId } : (input ?? { lastEventId });
    }
    void serve(res, ctx, input);
    return true;
  };
}
