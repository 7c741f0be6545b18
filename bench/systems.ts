import type { Round } from './lib/round.js';
import type { OrderDoc } from './payload.js';

/** The systems compared, in table order. */
export const SYSTEM_NAMES = ['skipq', 'graphile', 'pgboss', 'bullmq'] as const;
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** Every bench job carries its index; latency jobs also the wall-clock ms just before enqueue; 4 KiB jobs an order. */
export interface BenchPayload {
  n: number;
  t?: number;
  doc?: OrderDoc;
}

/** Where child processes find a system's store; plain JSON, handed over in BENCH_CONFIG. */
export interface Endpoint {
  system: SystemName;
  /** skipq: the server's tRPC endpoint. */
  url?: string;
  /** PostgreSQL systems: the round's own database. */
  databaseUrl?: string;
  /** BullMQ: the Redis database the round owns. */
  redis?: { host: string; port: number; db: number };
  /** Deployed for W4: a system whose fastest wake-up costs throughput turns it on only here. */
  latency?: boolean;
}

/** One system ready for a round. */
export interface Deployment {
  endpoint: Endpoint;
  /** skipq only: the server process, for its peak RSS. */
  serverPid?: number;
  /** The PostgreSQL database of this round, if any (for W3 with finished rows). */
  database?: string;
}

/** Options of {@link SystemHost.deploy}. */
export interface DeployOptions {
  /** Node flags for a server process (e.g. --cpu-prof). */
  serverNodeArgs?: string[];
  /** For W4 (see {@link Endpoint.latency}). */
  latency?: boolean;
}

/** Orchestrator side of a system: a fresh store (and server) per round, torn down by the round. */
export interface SystemHost {
  name: SystemName;
  /** For the table. */
  label: string;
  /** Package and version, e.g. "pg-boss 12.38.0". */
  version(): string;
  /** The settings used, for the report. */
  settings: string;
  deploy(round: Round, options?: DeployOptions): Promise<Deployment>;
}

/** Producer side, in a child process. */
export interface BenchProducer {
  /** One job, one call; resolves with the system's job id. */
  enqueue(payload: BenchPayload): Promise<string>;
  /** Many jobs with the system's batch call; ids in order. */
  enqueueMany(payloads: BenchPayload[]): Promise<string[]>;
  close(): Promise<void>;
}

/** Worker side, in a child process. */
export interface BenchWorker {
  /** Connects and begins taking jobs; the W3 clock starts just before this. */
  start(): Promise<void>;
  /** True once `expected` jobs are recorded as completed by the system itself (not just handled). */
  allCompleted(expected: number): Promise<boolean>;
  stop(): Promise<void>;
}

/** Called once per handler execution, first thing in the handler. */
export type Handle = (payload: BenchPayload, jobId: string) => void;

/** What a workload may change about a worker; everything else is the system's best settings. */
export interface WorkerOptions {
  /** Jobs in flight at once (W3-C10); each system maps it to its own knob, written in its settings. */
  concurrency?: number;
}

/** Child side of a system: its own client library, nothing else. */
export interface SystemDriver {
  producer(endpoint: Endpoint): Promise<BenchProducer>;
  worker(endpoint: Endpoint, handle: Handle, options?: WorkerOptions): Promise<BenchWorker>;
}

/** Loads a system's module: each child imports only its own system's library. */
export async function loadSystem(name: SystemName): Promise<{ host: SystemHost; driver: SystemDriver }> {
  switch (name) {
    case 'skipq':
      return import('./skipq.js');
    case 'graphile':
      return import('./peers/graphile.js');
    case 'pgboss':
      return import('./peers/pgboss.js');
    case 'bullmq':
      return import('./peers/bullmq.js');
  }
}
