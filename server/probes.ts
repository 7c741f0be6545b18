import { readdirSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type pg from 'pg';
import type { Authenticator } from './auth.js';
import { MIGRATIONS_DIR } from './db/migrate.js';
import type { SkipqLogger } from './logger.js';
import type { ServerMetrics } from './metrics.js';

/** Options of {@link createProbes}. */
export interface ProbesOptions {
  pool: pg.Pool;
  metrics: ServerMetrics;
  auth: Authenticator;
  logger: SkipqLogger;
  isClosing(): boolean;
}

// A probe answers within this, whatever the database does (the pool's own connect timeout is 5 s).
const READY_TIMEOUT_MS = 2000;

const READY_SQL = `
SELECT count(*)::int AS applied
FROM _prisma_migrations
WHERE finished_at IS NOT NULL
  AND rolled_back_at IS NULL
  AND migration_name = ANY($1::text[])`;

function text(res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8'): void {
  res.writeHead(status, { 'content-type': type, 'content-length': String(Buffer.byteLength(body)), 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * `GET /healthz` (the process is up), `GET /readyz` (the database answers and
 * every migration this build ships is applied) and `GET /metrics` (Prometheus
 * text). On the main port `/metrics` needs an admin key once keys exist (and
 * passes the same Host check as every call); on the separate metrics port it is open.
 */
export function createProbes(options: ProbesOptions): { serve(req: IncomingMessage, res: ServerResponse, guarded: boolean): boolean } {
  const migrations = readdirSync(MIGRATIONS_DIR, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name);

  const ready = async (): Promise<string | null> => {
    if (options.isClosing()) return 'shutting down';
    let timer: NodeJS.Timeout | undefined;
    try {
      const { rows } = await Promise.race([
        options.pool.query<{ applied: number }>(READY_SQL, [migrations]),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${READY_TIMEOUT_MS} ms`)), READY_TIMEOUT_MS);
        }),
      ]);
      const applied = rows[0]?.applied ?? 0;
      return applied === migrations.length ? null : `${migrations.length - applied} of ${migrations.length} migrations not applied`;
    } catch (error) {
      return `database unreachable: ${(error as Error).message}`;
    } finally {
      clearTimeout(timer);
    }
  };

  const metrics = async (req: IncomingMessage, res: ServerResponse, guarded: boolean): Promise<void> => {
    if (guarded) {
      const who = await options.auth.authenticate(req);
      if (!who.principal) return text(res, who.code === 'FORBIDDEN' ? 403 : 401, `${who.error ?? 'this endpoint needs an admin key'}\n`);
      if (who.principal.role !== 'admin') return text(res, 403, `/metrics needs a key with role "admin"; this key has role "${who.principal.role}"\n`);
    }
    text(res, 200, await options.metrics.scrape(), options.metrics.registry.contentType);
  };

  return {
    serve(req, res, guarded) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return false;
      const path = req.url?.split('?')[0];
      if (path === '/healthz') {
        text(res, 200, 'ok\n');
        return true;
      }
      if (path === '/readyz') {
        void ready().then((why) => text(res, why ? 503 : 200, `${why ?? 'ready'}\n`));
        return true;
      }
      if (path === '/metrics') {
        metrics(req, res, guarded).catch((error: unknown) => {
          options.logger.error({ err: error, path: '/metrics', status: 500 }, `metrics scrape failed: ${(error as Error).message}`);
          if (!res.headersSent) text(res, 500, 'metrics scrape failed (logged on the server)\n');
        });
        return true;
      }
      return false;
    },
  };
}
