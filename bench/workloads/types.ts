import type { Round } from '../lib/round.js';
import type { SystemHost } from '../systems.js';

/** Workload ids, in table order (`--only W3,W3-1M` selects by id). */
export type WorkloadId = 'W1' | 'W2' | 'W2-4K' | 'W3' | 'W3-4K' | 'W3-C10' | 'W3-1M' | 'W3-C100' | 'W3-K1000' | 'W3-SUB' | 'W3-SUB10' | 'W4' | 'MIX' | 'W5';

/** How many jobs each workload uses (the full run, or --quick). */
export interface Sizes {
  jobs: number;
  latencyJobs: number;
  finishedRows: number;
  ceilingJobs: number;
  /** How long MIX offers its load. */
  mixSeconds: number;
}

/** One table row a workload fills. */
export interface Metric {
  key: string;
  label: string;
  /** Which way is better, for the ratio. */
  better: 'higher' | 'lower';
  /** False for rows only skipq has or that are context, not a contest (server memory, machine load). */
  compare?: boolean;
}

/** One round of one workload on one system. */
export interface Measurement {
  values: Record<string, number>;
  /** Why the round cannot be trusted (a job lost or run twice, a failed call); empty when valid. */
  problems: string[];
}

/** What a round of a workload gets. */
export interface RunContext {
  round: Round;
  /** Undefined for W5, which measures PostgreSQL alone. */
  system?: SystemHost;
  sizes: Sizes;
  /** Node flags (--cpu-prof) for the skipq server and the worker process of W3. */
  profileArgs?: string[];
  log(message: string): void;
}

/** A workload: what it measures and how one round runs. */
export interface Workload {
  id: WorkloadId;
  title(sizes: Sizes): string;
  metrics: Metric[];
  /** all: every selected system; skipq: skipq only; database: PostgreSQL alone (no system). */
  scope: 'all' | 'skipq' | 'database';
  run(ctx: RunContext): Promise<Measurement>;
}
