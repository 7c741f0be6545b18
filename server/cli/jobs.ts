import { Command, Option } from 'commander';
import { JOB_STATUSES, type JobStatus } from '../../shared/index.js';
import type { SkipqTrpc } from '../../client/trpc.js';
import { CliError, progress } from './errors.js';
import { printJson, withRemote, withRemoteOptions, type RemoteOptions } from './remote.js';

/** An integer option's value, or a usage error naming the option. */
function int(name: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isInteger(n)) throw new CliError(`${name} must be an integer, not ${JSON.stringify(value)}`, 2);
    return n;
  };
}

/** `skipq enqueue <type> <json>`. */
export function enqueueCommand(): Command {
  return withRemoteOptions(
    new Command('enqueue')
      .description('enqueue one job on a running server and print it')
      .argument('<type>', 'the job type')
      .argument('<json>', 'the payload, as JSON (e.g. \'{"chainId":"konzum"}\')')
      .option('--queue <name>', 'queue (default: the type\'s, else "default")')
      .option('--priority <0-10>', 'higher runs first', int('--priority'))
      .option('--delay <ms>', 'run no earlier than this many ms from now', int('--delay'))
      .option('--max-retries <n>', 'retries after a failure', int('--max-retries'))
      .option('--unique-key <key>', 'answer the live job of this queue and type holding this key instead of a duplicate'),
  ).action(async (type: string, json: string, opts: RemoteOptions & { queue?: string; priority?: number; delay?: number; maxRetries?: number; uniqueKey?: string }) => {
    let payload: unknown;
    try {
      payload = JSON.parse(json);
    } catch (error) {
      throw new CliError(`the payload is not JSON: ${(error as Error).message}`, 2);
    }
    const job = await withRemote(opts, (trpc) =>
      trpc.jobs.enqueue.mutate({
        type,
        payload,
        ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
        ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
        ...(opts.delay !== undefined ? { delayMs: opts.delay } : {}),
        ...(opts.maxRetries !== undefined ? { maxRetries: opts.maxRetries } : {}),
        ...(opts.uniqueKey !== undefined ? { uniqueKey: opts.uniqueKey } : {}),
      }),
    );
    printJson(job);
  });
}

/** Ids of the jobs a bulk retry covers: those given, else every failed (or `--status`) job matching the filters, page by page. */
async function selectJobs(trpc: SkipqTrpc, ids: string[], filter: { queue?: string; type?: string; status: JobStatus }): Promise<string[]> {
  if (ids.length > 0) return ids;
  const found: string[] = [];
  let cursor: string | undefined;
  do {
    const page = await trpc.jobs.list.query({ status: filter.status, limit: 500, ...(filter.queue ? { queue: filter.queue } : {}), ...(filter.type ? { type: filter.type } : {}), ...(cursor ? { cursor } : {}) });
    found.push(...page.jobs.map((j) => j.id));
    cursor = page.nextCursor ?? undefined;
    progress(`found ${found.length} ${filter.status} job${found.length === 1 ? '' : 's'}`);
  } while (cursor);
  return found;
}

/** Runs `move` on every id, printing progress; failures are counted and named, not fatal one by one. */
async function moveAll(ids: string[], verb: string, move: (id: string) => Promise<unknown>): Promise<void> {
  let done = 0;
  const failed: string[] = [];
  for (const [i, id] of ids.entries()) {
    try {
      await move(id);
      done++;
    } catch (error) {
      failed.push(`${id}: ${(error as Error).message}`);
    }
    if (ids.length > 1 && ((i + 1) % 100 === 0 || i + 1 === ids.length)) progress(`${verb} ${done} of ${ids.length}${failed.length ? `, ${failed.length} refused` : ''}`);
  }
  console.log(`${verb} ${done} job${done === 1 ? '' : 's'}`);
  if (failed.length > 0) {
    for (const line of failed.slice(0, 20)) console.error(`  ${line}`);
    throw new CliError(`${failed.length} of ${ids.length} job${ids.length === 1 ? '' : 's'} could not be ${verb}`);
  }
}

const statusOption = () => new Option('--status <status>', 'only jobs in this status').choices(JOB_STATUSES);

/** `skipq jobs list|get|retry|cancel`. */
export function jobsCommand(): Command {
  const jobs = new Command('jobs').description('inspect and move jobs on a running server');
  withRemoteOptions(
    jobs
      .command('list')
      .description('list jobs, newest first')
      .option('--queue <name>', 'only this queue')
      .option('--type <type>', 'only this type')
      .addOption(statusOption())
      .option('--limit <n>', 'at most this many', int('--limit'), 50)
      .option('--json', 'print the job views as JSON'),
  ).action(async (opts: RemoteOptions & { queue?: string; type?: string; status?: JobStatus; limit: number; json?: boolean }) => {
    const page = await withRemote(opts, (trpc) =>
      trpc.jobs.list.query({ limit: opts.limit, ...(opts.queue ? { queue: opts.queue } : {}), ...(opts.type ? { type: opts.type } : {}), ...(opts.status ? { status: opts.status } : {}) }),
    );
    if (opts.json) return printJson(page);
    if (page.jobs.length === 0) console.log('no jobs');
    for (const j of page.jobs) console.log(`${j.id}  ${j.status.padEnd(10)}  ${j.queue}/${j.type}  attempt ${j.attempt}${j.error ? `  ${j.error.slice(0, 80)}` : ''}`);
  });
  withRemoteOptions(jobs.command('get').description('print one job: status, payload, result, error').argument('<id>', 'job id')).action(
    async (id: string, opts: RemoteOptions) => printJson(await withRemote(opts, (trpc) => trpc.jobs.get.query({ id }))),
  );
  withRemoteOptions(
    jobs
      .command('retry')
      .description('re-queue failed or cancelled jobs: those given, else every failed one (admin key)')
      .argument('[ids...]', 'job ids; none: every job matching the filters')
      .option('--queue <name>', 'without ids: only this queue')
      .option('--type <type>', 'without ids: only this type')
      .addOption(statusOption().choices(['failed', 'cancelled']).default('failed')),
  ).action(async (ids: string[], opts: RemoteOptions & { queue?: string; type?: string; status: JobStatus }) => {
    await withRemote(opts, async (trpc) => {
      const chosen = await selectJobs(trpc, ids, opts);
      await moveAll(chosen, 'retried', (id) => trpc.jobs.retry.mutate({ id }));
    });
  });
  withRemoteOptions(jobs.command('explain').description('why a job is or is not being claimed: runnable, and each reason').argument('<id>', 'job id')).action(
    async (id: string, opts: RemoteOptions) => printJson(await withRemote(opts, (trpc) => trpc.jobs.explain.query({ id }))),
  );
  withRemoteOptions(jobs.command('cancel').description('cancel pending or running jobs').argument('<ids...>', 'job ids')).action(
    async (ids: string[], opts: RemoteOptions) => {
      await withRemote(opts, (trpc) => moveAll(ids, 'cancelled', (id) => trpc.jobs.cancel.mutate({ id })));
    },
  );
  return jobs;
}

type Counts = Awaited<ReturnType<SkipqTrpc['queues']['stats']['query']>>['counts'];

/** Per queue: its counts by status. */
function byQueue(counts: Counts): Map<string, Record<string, number>> {
  const queues = new Map<string, Record<string, number>>();
  for (const c of counts) {
    const row = queues.get(c.queue) ?? {};
    row[c.status] = (row[c.status] ?? 0) + c.count;
    queues.set(c.queue, row);
  }
  return queues;
}

/** `skipq queues list|pause|resume`. */
export function queuesCommand(): Command {
  const queues = new Command('queues').description('queues on a running server');
  withRemoteOptions(queues.command('list').description('list the queues that hold jobs, with counts by status (admin key)').option('--json', 'print JSON')).action(
    async (opts: RemoteOptions & { json?: boolean }) => {
      const { counts } = await withRemote(opts, (trpc) => trpc.queues.stats.query({}));
      const rows = byQueue(counts);
      if (opts.json) return printJson(Object.fromEntries(rows));
      if (rows.size === 0) console.log('no queues hold jobs');
      for (const [name, c] of [...rows].sort(([a], [b]) => a.localeCompare(b))) {
        console.log(`${name}  ${JOB_STATUSES.map((s) => `${s} ${c[s] ?? 0}`).join('  ')}`);
      }
    },
  );
  for (const move of ['pause', 'resume'] as const) {
    withRemoteOptions(
      queues
        .command(move)
        .description(move === 'pause' ? 'stop claims from a queue; enqueues still go in (admin key)' : 'let claims take a paused queue\'s jobs again (admin key)')
        .argument('<queue>', 'queue name'),
    ).action(async (queue: string, opts: RemoteOptions) => {
      const settings = await withRemote(opts, (trpc) => trpc.queues[move].mutate({ queue }));
      console.log(`${settings.name}: ${settings.paused ? 'paused' : 'running'}`);
    });
  }
  return queues;
}

/** `skipq stats`. */
export function statsCommand(): Command {
  return withRemoteOptions(new Command('stats').description('job counts per queue, type and status (admin key)').option('--json', 'print JSON')).action(
    async (opts: RemoteOptions & { json?: boolean }) => {
      const stats = await withRemote(opts, (trpc) => trpc.queues.stats.query({}));
      if (opts.json) return printJson(stats);
      if (stats.counts.length === 0) console.log('no jobs');
      for (const c of stats.counts) console.log(`${c.queue}  ${c.type}  ${c.status.padEnd(10)}  ${c.count}`);
    },
  );
}
