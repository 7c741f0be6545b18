import { z } from 'zod';
import { LIMITS } from '../shared/index.js';

const int = (min: number, max: number) => z.coerce.number().int().min(min).max(max);

/** Environment variables the server reads, with their defaults. README's configuration table lists the same. */
const envSchema = z.object({
  DATABASE_URL: z.string().min(1).optional(),
  PORT: int(0, 65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  SKIPQ_DATA_DIR: z.string().min(1).default('.data'),
  SKIPQ_JOBS: z.string().min(1).optional(),
  SKIPQ_PG_POOL_SIZE: int(2, 500).default(10),
  SKIPQ_MAX_BODY_BYTES: int(1024, 1024 * 1024 * 1024).default(16 * 1024 * 1024),
  // Unset: SKIPQ_MAX_BODY_BYTES.
  SKIPQ_MAX_INFLIGHT_BODY_BYTES: int(1024, 16 * 1024 * 1024 * 1024).optional(),
  SKIPQ_MAX_PAYLOAD_BYTES: int(16, 256 * 1024 * 1024).default(LIMITS.defaultPayloadBytes),
  SKIPQ_POLL_INTERVAL_MS: int(10, 60_000).default(1000),
  SKIPQ_RESCUE_INTERVAL_MS: int(50, 3_600_000).default(5000),
  SKIPQ_CRON_INTERVAL_MS: int(50, 60_000).default(1000),
  // Days completed/cancelled and failed jobs are kept (0: forever); a queue's own setting wins.
  SKIPQ_RETENTION_DAYS: int(0, 36_500).default(7),
  SKIPQ_FAILED_RETENTION_DAYS: int(0, 36_500).default(30),
  SKIPQ_STARTUP_TIMEOUT_MS: int(0, 3_600_000).default(60_000),
  SKIPQ_REQUIRE_AUTH: z.enum(['0', '1', 'true', 'false']).default('0').transform((v) => v === '1' || v === 'true'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  SKIPQ_DASHBOARD_PAYLOADS: z.enum(['0', '1', 'true', 'false']).default('1').transform((v) => v === '1' || v === 'true'),
});

/** The server's settings, frozen after they are read. */
export type ServerEnv = Readonly<z.infer<typeof envSchema>>;

/** Reads and validates the environment; throws with every bad variable named. */
export function readEnv(env: NodeJS.ProcessEnv = process.env): ServerEnv {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new Error(`invalid environment:\n${lines.join('\n')}`);
  }
  return Object.freeze(parsed.data);
}

// 0, or 50..600000 ms; unset or empty: the default.
const ssePingSchema = z.union([
  z.literal('').or(z.undefined()).transform(() => 10_000),
  z.coerce.number().int().max(600_000).refine((ms) => ms === 0 || ms >= 50),
]);

/**
 * SKIPQ_SSE_PING_MS: how often an idle events.jobs stream carries an SSE
 * ping; 0 turns pings off; unset or empty: 10 000. Not in readEnv's schema:
 * tRPC reads its `sse` options once, from the one initTRPC, so
 * server/trpc.ts reads this when it loads, for the whole process. Same
 * message shape as readEnv's.
 */
export function readSsePingMs(env: NodeJS.ProcessEnv = process.env): number {
  const parsed = ssePingSchema.safeParse(env.SKIPQ_SSE_PING_MS);
  if (!parsed.success) {
    throw new Error(`invalid environment:\n  SKIPQ_SSE_PING_MS: 0 (no pings) or an integer from 50 to 600000 was expected, got ${JSON.stringify(env.SKIPQ_SSE_PING_MS)}`);
  }
  return parsed.data;
}
