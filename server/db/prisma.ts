import { PrismaPg } from '@prisma/adapter-pg';
import type pg from 'pg';
import { PrismaClient } from './generated/client.js';

/** Prisma Client over the server's own pool: admin reads with dynamic filters use it; the hot path stays raw SQL. */
export function createPrisma(pool: pg.Pool): PrismaClient {
  return new PrismaClient({ adapter: new PrismaPg(pool) });
}

export type { PrismaClient };
