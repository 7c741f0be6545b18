// Issue 13's targets, each read off one run: the ratio skipq reaches and
// whether it meets the target. Only data in, no report code, so the report
// (lib/report.ts) renders it and nothing here imports the report.
import { formatFigure as num } from './format.js';

/** A cell's median of one metric, or undefined when it was not run or is not valid. */
export type Lookup = (workload: string, system: string, key: string) => number | undefined;
/** Every valid round value of one metric in one cell (for the worst case over rounds). */
export type RoundsLookup = (workload: string, system: string, key: string) => number[];

/** One target's outcome. */
export interface TargetResult {
  target: string;
  /** What skipq measured, formatted. */
  skipq: string;
  /** What it is compared with, formatted (a peer's median, or a limit). */
  against: string;
  ratio: number | undefined;
  verdict: 'met' | 'not met' | 'not measured';
}

interface Relative {
  target: string;
  workload: string;
  key: string;
  unit: string;
  /** The systems whose best median is the reference (higher is best for jobs/s, lower for ms). */
  peers: Array<{ workload: string; system: string; label: string }>;
  /** ratio = skipq / reference; met when ratio >= goal (jobs/s) or <= goal (latency). */
  goal: number;
  better: 'higher' | 'lower';
}

const graphile = (workload: string) => [{ workload, system: 'graphile', label: 'graphile-worker' }];
const postgresPeers = (workload: string) => [...graphile(workload), { workload, system: 'pgboss', label: 'pg-boss' }];

/** Issue 13, "Targets": ratios measured side by side in one run. */
const RELATIVE: Relative[] = [
  { target: 'W3 ≥ 1.0× graphile-worker (stretch 1.2×)', workload: 'W3', key: 'rate', unit: 'jobs/s', peers: graphile('W3'), goal: 1.0, better: 'higher' },
  { target: 'W3 ≥ 70% of the raw SQL ceiling (W5)', workload: 'W3', key: 'rate', unit: 'jobs/s', peers: [{ workload: 'W5', system: 'postgres', label: 'W5' }], goal: 0.7, better: 'higher' },
  { target: 'W3-C10 ≥ 1.5× graphile-worker', workload: 'W3-C10', key: 'rate', unit: 'jobs/s', peers: graphile('W3-C10'), goal: 1.5, better: 'higher' },
  { target: 'W2 ≥ 1.0× the best PostgreSQL peer', workload: 'W2', key: 'rate', unit: 'jobs/s', peers: postgresPeers('W2'), goal: 1.0, better: 'higher' },
  { target: 'W2-4K ≥ 1.0× graphile-worker', workload: 'W2-4K', key: 'rate', unit: 'jobs/s', peers: graphile('W2-4K'), goal: 1.0, better: 'higher' },
  { target: "W4 p50 ≤ graphile-worker's", workload: 'W4', key: 'p50', unit: 'ms', peers: graphile('W4'), goal: 1.0, better: 'lower' },
  { target: "W4 p99 ≤ graphile-worker's", workload: 'W4', key: 'p99', unit: 'ms', peers: graphile('W4'), goal: 1.0, better: 'lower' },
  { target: 'W1 ≥ 3× the best PostgreSQL peer', workload: 'W1', key: 'rate', unit: 'jobs/s', peers: postgresPeers('W1'), goal: 3.0, better: 'higher' },
  { target: 'W1 ≥ 0.5× BullMQ (Redis)', workload: 'W1', key: 'rate', unit: 'jobs/s', peers: [{ workload: 'W1', system: 'bullmq', label: 'BullMQ' }], goal: 0.5, better: 'higher' },
];

/** Memory limits: the worst round of any workload skipq ran. */
const LIMITS = [
  { target: 'server peak RSS ≤ 200 MiB in every workload', key: 'serverRss', limitMiB: 200 },
  { target: 'worker peak RSS ≤ 150 MiB in every workload', key: 'workerRss', limitMiB: 150 },
];


/** Every target against the run's cells; `workloads` are the ids that ran (memory is judged over those). */
export function evaluateTargets(median: Lookup, rounds: RoundsLookup, workloads: string[]): TargetResult[] {
  const out: TargetResult[] = [];
  for (const t of RELATIVE) {
    const skipq = median(t.workload, 'skipq', t.key);
    let best: { value: number; label: string } | undefined;
    for (const p of t.peers) {
      const value = median(p.workload, p.system, t.key);
      if (value === undefined) continue;
      if (!best || (t.better === 'higher' ? value > best.value : value < best.value)) best = { value, label: p.label };
    }
    const ratio = skipq !== undefined && best ? skipq / best.value : undefined;
    out.push({
      target: t.target,
      skipq: skipq === undefined ? '—' : `${num(skipq)} ${t.unit}`,
      against: best ? `${best.label} ${num(best.value)} ${t.unit}` : '—',
      ratio,
      verdict: ratio === undefined ? 'not measured' : (t.better === 'higher' ? ratio >= t.goal : ratio <= t.goal) ? 'met' : 'not met',
    });
  }
  for (const l of LIMITS) {
    let worst: { value: number; workload: string } | undefined;
    for (const w of workloads) {
      for (const v of rounds(w, 'skipq', l.key)) if (!worst || v > worst.value) worst = { value: v, workload: w };
    }
    const ratio = worst ? worst.value / l.limitMiB : undefined;
    out.push({
      target: l.target,
      skipq: worst ? `${num(worst.value)} MiB (worst round, ${worst.workload})` : '—',
      against: `limit ${l.limitMiB} MiB`,
      ratio,
      verdict: ratio === undefined ? 'not measured' : ratio <= 1 ? 'met' : 'not met',
    });
  }
  return out;
}
