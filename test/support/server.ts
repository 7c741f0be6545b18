import { createTRPCClient, httpLink } from '@trpc/client';
import superjson from 'superjson';
import type { JobRegistry } from '../../shared/index.js';
import { createQueueServer, type QueueServer, type QueueServerOptions } from '../../server/app.js';
import type { AppRouter } from '../../server/routers/_app.js';
import { silentLogger } from '../../server/logger.js';
import { createTestDb, type TestDb } from './db.js';

/** A real skipq server on a free port over its own database, with a plain tRPC client. */
export interface TestServer {
  server: QueueServer;
  db: TestDb;
  url: string;
  trpc: ReturnType<typeof createTRPCClient<AppRouter>>;
  stop(): Promise<void>;
}

/** Starts a server for a test file. Maintenance is off unless asked for, so tests drive sweeps themselves. */
export async function startTestServer(options: Partial<QueueServerOptions> & { jobs?: JobRegistry } = {}): Promise<TestServer> {
  const db = await createTestDb();
  const server = await createQueueServer({ databaseUrl: db.url, port: 0, ...(options.log ? {} : { logger: silentLogger }), maintenance: false, pollIntervalMs: 100, ...options });
  const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: server.url, transformer: superjson })] });
  return {
    server,
    db,
    url: server.url,
    trpc,
    async stop() {
      await server.close();
      await db.drop();
    },
  };
}
