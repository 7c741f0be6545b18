import { createTRPCClient, httpBatchLink, httpLink, splitLink, type TRPCClient } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../server/routers/_app.js';
import { createTransport, type Transport } from './transport.js';

/** Connection options shared by the producer client and the worker. */
export interface ConnectionOptions {
  /** The server's tRPC endpoint, e.g. `http://127.0.0.1:3000/trpc`. */
  url: string;
  /** API key, sent as `Authorization: Bearer <key>`. */
  apiKey?: string;
  /** Keep-alive connections to the server. Default 16. */
  connections?: number;
}

/** The typed tRPC client of a skipq server. */
export type SkipqTrpc = TRPCClient<AppRouter>;

/**
 * Creates the tRPC client. With `batch`, calls made together share a request
 * (tRPC's batch link waits a timer tick, about 1 ms, to gather them), but
 * long-polling claims always go alone: a batch waits for its slowest call.
 * Without it every call leaves at once: the producer coalesces enqueues itself.
 */
export function createTrpc(options: ConnectionOptions, batch: boolean): { trpc: SkipqTrpc; transport: Transport } {
  const transport = createTransport(options.url, {
    connections: options.connections,
    headers: options.apiKey ? { authorization: `Bearer ${options.apiKey}` } : {},
  });
  const common = { url: options.url, transformer: superjson, fetch: transport.fetch } as const;
  const trpc = createTRPCClient<AppRouter>({
    links: [
      batch
        ? splitLink({
            condition: (op) => op.path === 'worker.claim',
            true: httpLink(common),
            false: httpBatchLink({ ...common, maxItems: 50 }),
          })
        : httpLink(common),
    ],
  });
  return { trpc, transport };
}
