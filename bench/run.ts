// npm run bench [-- --quick] [--only W1,W3] [--systems skipq,pgboss] [--rounds N] [--jobs N]
//                [--out FILE] [--cpu-prof DIR] [--verbose]
// Runs each workload against skipq and its peers, one workload and one system
// at a time, and prints the results table and issue 13's targets (stdout)
// with progress on stderr.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { buildForBench } from './lib/build.js';
import { REPO_ROOT, killAllChildren } from './lib/children.js';
import { machineInfo } from './lib/machine.js';
import { waitForQuiet } from './lib/quiet.js';
import { cellKey, renderProblems, renderReport, renderTable, renderTargets, type Cell, type RunResults } from './lib/report.js';
import { RoundTimeout, withRound } from './lib/round.js';
import { tuned } from './lib/tuning.js';
import { SYSTEM_NAMES, loadSystem, type SystemHost, type SystemName } from './systems.js';
import { ceiling } from './workloads/ceiling.js';
import { enqueueBatch, enqueueBatch4k, enqueueSingle } from './workloads/enqueue.js';
import { latency } from './workloads/latency.js';
import { mixed } from './workloads/mix.js';
import { process4k, processC10, processJobs, processKeyed, processLimited, processSubscribed, processSubscribedTen, processWithHistory } from './workloads/process.js';
import type { Sizes, Workload } from './workloads/types.js';

const WORKLOADS: Workload[] = [
  enqueueSingle, enqueueBatch, enqueueBatch4k,
  processJobs, process4k, processC10, processWithHistory, processLimited, processKeyed, processSubscribed, processSubscribedTen,
  latency, mixed, ceiling,
];
// MIX is the longest row (30 s per system and round, about 7 of the full run's minutes): BENCH_MIX_SECONDS shortens it.
const FULL: Sizes = { jobs: 10_000, latencyJobs: 300, finishedRows: 1_000_000, ceilingJobs: 50_000, mixSeconds: tuned('MIX_SECONDS', 30) };
const QUICK: Sizes = { jobs: 2_000, latencyJobs: 100, finishedRows: 100_000, ceilingJobs: 10_000, mixSeconds: 5 };
/** A round that takes longer is aborted and its cell marked TIMEOUT. */
const ROUND_LIMIT_MS = 120_000;

const NOTES = [
  'Every process is separate: the skipq server (the package\'s bin as built by `npm run build`, `node dist/server/main.js --jobs bench/.build/jobs.js`, fresh database, SKIPQ_RETENTION_DAYS=0), each producer and each worker run as child processes; skipq producers and workers use the public clients over HTTP, imported from the built package (dist/client). Every child runs plain node on JavaScript, as a user runs the package: the bench builds dist/ and its own producer, worker and registry scripts (bench/lib/build.ts) before the first round, for every system alike; none runs through tsx, whose loader alone added about 38 MiB to each process (the idle server 123-127 MiB under `node --import tsx` against 86 MiB built). Peers run their producer and worker in separate processes on a fresh database (Redis db flushed for BullMQ) per round.',
  'W1: 16 concurrent `enqueue` calls in one process until all jobs are in (skipq coalesces concurrent calls on the client; graphile `addJob`, pg-boss `send`, BullMQ `add`). W2: sequential calls of 500 (`enqueueMany`, `addJobs`, `insert`, `addBulk`). Time: first call to last answer.',
  'W2-4K: W2 with every job carrying a ~4 KiB JSON order (bench/payload.ts: customer, address, 23 line items; 4,100-4,120 bytes as JSON), the same document for every system, built fresh per job (so no client can send a batch\'s repeats by reference) and before the clock starts. skipq\'s registry declares the order field by field in zod (bench/jobs.ts), so skipq validates it at enqueue and again in the worker; the peers validate nothing.',
  'W1/W2 exactly-once check: after the timed part, the system\'s own worker drains the jobs (untimed); its peak RSS is the worker row, while the server row is the server\'s peak at the end of the timed part (before the drain).',
  'W3: jobs pre-enqueued in batches of 500 (untimed), then one worker process; time from just before the worker is started (connections included) until the system has recorded the last job as completed (skipq/BullMQ: completion acknowledged; graphile-worker: no job rows left; pg-boss: all rows completed).',
  'W3-4K: W3 over jobs carrying W2-4K\'s order; each handler reads doc.orderId and checks it is its own job\'s (a missing or wrong document marks the cell INVALID). W3-C10: W3 with 10 jobs in flight: skipq createWorker concurrency 10, graphile-worker concurrency 10 (its local queue of 500 unchanged), pg-boss batchSize 10 x localConcurrency 1 (one fetch of 10, completed together; 10 loops of batchSize 1 would each wait pg-boss\'s 0.5 s poll after every job), BullMQ Worker concurrency 10.',
  'W3 with finished rows: the same on skipq after one INSERT ... SELECT generate_series of completed rows into task_queue, then VACUUM ANALYZE and CHECKPOINT (the steady state autovacuum reaches; the load\'s own checkpoint stays out of the timed part).',
  'W4: the worker sits idle 1 s, then one producer enqueues one job every 10 ms, one call at a time; latency = handler start minus the time taken just before the enqueue call, both from the machine\'s monotonic clock (process.hrtime: sub-ms, one origin for every process on the machine). The first 20 jobs are a warm-up, sent the same way and left out of the figures (for every system): on a fresh deployment they measure first-time code compilation, and with 300 jobs p99 is the third worst.',
  'MIX: the worker is started and waiting, then one producer offers single `enqueue` calls open-loop at a fixed rate (job i leaves at start + i / rate whether or not earlier calls have answered; skipq\'s client coalesces the calls in flight as in W1) for 30 s (5 s with --quick; BENCH_MIX_SECONDS sets it). Window: first call to last answer. jobs/s run = jobs whose handler had begun by the end of the window / window; backlog = jobs offered minus jobs begun by then (what a steady system holds is about rate x latency); enqueue → start as in W4, over every job. The rest drains untimed for the exactly-once check. Systems are deployed as for W1-W3, not W4 (pg-boss without NOTIFY: a fetch loop that came back short waits its 0.5 s poll).',
  'Memory rows: VmHWM (the kernel\'s high-water mark) of the worker process as it finishes, and of the skipq server process at the end of the timed part; peers have no server process (their store is PostgreSQL or Redis).',
  'Exactly once: every handler counts executions per job index n; a job never run, run twice, or a job id count that differs marks the cell INVALID (listed above the notes when it happens).',
  'W3 with one queue-level subscriber (W3-SUB): the same as W3 with a `queue.subscribe({ queues: [\'default\'] })` reading every event over SSE in the orchestrator process, started (registration awaited) before the worker; the row is checked by the completions in the event log and the events the subscriber counted. W3-SUB10: the same with ten such subscribers.',
  'W5: pgbench on a bare table shaped like task_queue (partial index on pending rows, fillfactor 80): each transaction claims 50 rows with FOR UPDATE SKIP LOCKED and completes them in the same UPDATE; jobs/s = tps x rows completed / transactions. It is PostgreSQL\'s ceiling for W3\'s work with no queue system, HTTP or worker in the way.',
  'CPU rows (W3, W3-4K, W3-C10): CPU time of the worker process (and of the skipq server) from worker start to last completion, per 1,000 jobs; "machine CPU busy" is all cores over the same window (100% = both cores), so what the listed processes do not use is mostly PostgreSQL (or Redis).',
  'Before each round the bench waits up to 45 s for the machine to be under 20% busy with other work (2 cores are easily disturbed); it says so on stderr when it had to wait or measured anyway.',
  'Ratio: skipq median / best peer median; above 1 is better for jobs/s, below 1 is better for latency, memory and CPU. The Targets table holds issue 13\'s targets (lib/targets.ts), each as a ratio of medians from the same run with "met" or "not met"; memory targets take the worst valid round of any workload skipq ran.',
];

function parseOptions() {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      only: { type: 'string' },
      systems: { type: 'string' },
      rounds: { type: 'string' },
      jobs: { type: 'string' },
      out: { type: 'string' },
      'cpu-prof': { type: 'string' },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(`npm run bench -- [--quick] [--only ${WORKLOADS.map((w) => w.id).join(',')}] [--systems ${SYSTEM_NAMES.join(',')}] [--rounds N] [--jobs N] [--out FILE] [--cpu-prof DIR] [--verbose]\n`);
    process.exit(0);
  }
  const only = values.only?.split(',').map((s) => s.trim().toUpperCase()).filter(Boolean);
  const workloads = only ? WORKLOADS.filter((w) => only.includes(w.id.toUpperCase())) : WORKLOADS;
  if (workloads.length === 0) throw new Error(`--only ${values.only} matches no workload (${WORKLOADS.map((w) => w.id).join(', ')})`);
  const systems = (values.systems?.split(',').map((s) => s.trim()) ?? [...SYSTEM_NAMES]) as SystemName[];
  for (const s of systems) if (!SYSTEM_NAMES.includes(s)) throw new Error(`unknown system "${s}" (${SYSTEM_NAMES.join(', ')})`);
  const sizes = { ...(values.quick ? QUICK : FULL) };
  if (values.jobs) sizes.jobs = Number(values.jobs);
  const rounds = values.rounds ? Number(values.rounds) : values.quick ? 1 : 3;
  // A partial or quick run must not overwrite the full results.
  const full = !values.quick && !values.only && !values.systems && !values.rounds && !values.jobs;
  const out = values.out ?? (full ? join(REPO_ROOT, 'bench', 'RESULTS.md') : undefined);
  const cpuProf = values['cpu-prof'] ? ['--cpu-prof', '--cpu-prof-dir', values['cpu-prof']] : undefined;
  return { workloads, systems, sizes, rounds, out, cpuProf, verbose: values.verbose };
}

async function main(): Promise<void> {
  const options = parseOptions();
  const started = new Date();
  const log = (message: string): void => void process.stderr.write(`${message}\n`);
  // Children run the package as built (dist/) and the bench's scripts built to JavaScript, on plain node.
  await buildForBench(log);
  const hosts: SystemHost[] = [];
  for (const name of SYSTEM_NAMES) if (options.systems.includes(name)) hosts.push((await loadSystem(name)).host);
  const machine = await machineInfo();
  log(`bench: ${machine.cpu}, ${machine.cores} cores; ${machine.postgres.version}; Redis ${machine.redis}`);
  log(`bench: ${options.rounds} round(s), ${options.sizes.jobs} jobs; workloads ${options.workloads.map((w) => w.id).join(' ')}; systems ${hosts.map((h) => h.name).join(' ')}`);

  const cells = new Map<string, Cell>();
  for (const workload of options.workloads) {
    const targets: Array<SystemHost | undefined> =
      workload.scope === 'database' ? [undefined] : hosts.filter((h) => workload.scope === 'all' || h.name === 'skipq');
    log(`\n${workload.title(options.sizes)}`);
    // Rounds interleave systems, so a slow drift of the machine hits every system alike.
    for (let r = 1; r <= options.rounds; r++) {
      for (const system of targets) {
        const name = system?.name ?? 'postgres';
        const key = cellKey(workload.id, name);
        const cell = cells.get(key) ?? { rounds: [], failures: [] };
        cells.set(key, cell);
        await waitForQuiet({ log });
        const began = Date.now();
        const prefix = `  ${workload.id} ${name} round ${r}/${options.rounds}`;
        try {
          const m = await withRound(ROUND_LIMIT_MS, options.verbose, (round) =>
            workload.run({
              round,
              system,
              sizes: options.sizes,
              profileArgs: options.cpuProf,
              log: (msg) => log(`${prefix}: ${msg}`),
            }),
          );
          cell.rounds.push(m);
          const shown = Object.entries(m.values).map(([k, v]) => `${k} ${v >= 100 ? Math.round(v) : v.toFixed(2)}`).join(', ');
          log(`${prefix}: ${shown}${m.problems.length ? `  INVALID: ${m.problems.join('; ')}` : ''} (${((Date.now() - began) / 1000).toFixed(1)} s)`);
        } catch (error) {
          const why = error instanceof RoundTimeout ? `TIMEOUT: ${error.message}` : `ERROR: ${(error as Error).stack ?? error}`;
          cell.failures.push(`round ${r}: ${why}`.replace(/^round \d+: (TIMEOUT|ERROR)/, `$1 in round ${r}`));
          log(`${prefix}: ${why}`);
        }
      }
    }
  }

  const results: RunResults = { workloads: options.workloads, systems: hosts, sizes: options.sizes, rounds: options.rounds, cells };
  process.stdout.write(`\n${renderTable(results)}\n\n${renderTargets(results)}\n`);
  const problems = renderProblems(results);
  if (problems.length > 0) process.stdout.write(`\n${problems.map((p) => `- ${p}`).join('\n')}\n`);
  process.stdout.write(`\n${hosts.map((h) => `${h.label}: ${h.version()}. ${h.settings}`).join('\n')}\n`);
  if (options.out) {
    const minutes = (Date.now() - started.getTime()) / 60_000;
    const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
    writeFileSync(options.out, renderReport(results, machine, { command, startedAt: started, minutes, notes: NOTES }));
    log(`\nwrote ${options.out}`);
  } else {
    log('\n(quick or partial run: RESULTS.md left as it was; pass --out FILE to write one)');
  }
}

// Ctrl-C: end the children we started (each by its process group), then leave.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.on(signal, () => {
    killAllChildren();
    process.exit(130);
  });
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    killAllChildren();
    process.stderr.write(`bench: ${(error as Error).stack ?? error}\n`);
    process.exit(1);
  },
);
