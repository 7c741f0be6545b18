import { cpus, release, totalmem } from 'node:os';
import { Redis } from 'ioredis';
import { REDIS } from '../peers/bullmq.js';
import { serverSettings } from './postgres.js';

/** What the numbers were measured on. */
export interface MachineInfo {
  cpu: string;
  cores: number;
  memoryGiB: number;
  kernel: string;
  node: string;
  postgres: Record<string, string>;
  redis: string;
}

async function redisVersion(): Promise<string> {
  const redis = new Redis({ ...REDIS, lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    return /redis_version:(\S+)/.exec(await redis.info('server'))?.[1] ?? '?';
  } catch (error) {
    return `unreachable (${(error as Error).message})`;
  } finally {
    redis.disconnect();
  }
}

/** Reads the machine, PostgreSQL and Redis facts for the report. */
export async function machineInfo(): Promise<MachineInfo> {
  const list = cpus();
  return {
    cpu: list[0]?.model ?? '?',
    cores: list.length,
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    kernel: release(),
    node: process.version,
    postgres: await serverSettings(),
    redis: await redisVersion(),
  };
}
