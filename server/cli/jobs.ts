import { Command, Option } from 'commander';
import { JOB_STATUSES, LIMITS, type BulkMoveAnswer, type JobStatus } from '../../shared/index.js';
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

/** A date option's value (ISO 8601, e.g. 2026-12-01T00:00:00Z), or a usage error naming the option. */
function date(name: string): (value: string) => Date {
  return (value) => {
    const d = new Date(value);
    if (Number.isNaN(d.getTime())) throw new CliError(`${name} must be a date such as 2026-12-01T00:00:00Z, not ${JSON.stringify(value)}`, 2);
    return d;
  };
}

/** The filter options every bulk and list command shares (jobs.list / jobs.retryMany / jobs.cancelMany `filter`). */
interface FilterOptions {
  queue?: string;
  type?: string;
  errorContains?: string;
  finishedAfter?: Date;
  finishedBefore?: Date;
}

/** Adds the {@link FilterOptions} to `command`. */
function withFilterOptions(command: Command, scope = ''): Command {
  return command
    .option('--queue <name>', `${scope}only this queue`)
    .option('--type <type>', `${scope}only this type`)
    .option('--error-contains <text>', `${scope}only jobs whose last error contains this text (case-insensitive; % and _ are literal)`)
    .option('--finished-after <date>', `${scope}only jobs finished at or after this time (ISO 8601)`, date('--finished-after'))
    .option('--finished-before <date>', `${scope}only jobs finished before this time (ISO 8601)`, date('--finished-before'));
}

/** The filter as the API takes it. */
function filterOf(opts: FilterOptions): { queue?: string; type?: string; errorContains?: string; finishedAfter?: Date; finishedBefore?: Date } {
  return {
    ...(opts.queue !== undefined ? { queue: opts.queue } : {}),
    ...(opts.type !== undefined ? { type: opts.type } : {}),
    ...(opts.errorContains !== undefined ? { errorContains: opts.errorContains } : {}),
    ...(opts.finishedAfter !== undefined ? { finishedAfter: opts.finishedAfter } : {}),
    ...(opts.finishedBefore !== undefined ? { finishedBefore: opts.finishedBefore } : {}),
  };
}

/** Options of a bulk move by filter. */
interface BulkOptions extends FilterOptions {
  limit?: number;
  dryRun?: boolean;
}

/** The bulk move's limit: required with a filter, so no command moves an unbounded set by accident. */
function bulkLimit(opts: BulkOptions, verb: string): number {
  if (opts.limit === undefined) throw new CliError(`without ids, ${verb} moves the jobs matching the filters: give --limit N (at most ${LIMITS.bulkLimit}); --dry-run counts them first`, 2);
  return opts.limit;
}

/** Prints a bulk move's answer. */
function printBulk(answer: BulkMoveAnswer, verb: string): void {
  const more = answer.more ? ' (more match beyond --limit)' : '';
  if (answer.dryRun) console.log(`would ${verb} ${answer.matched} job${answer.matched === 1 ? '' : 's'}${more}`);
  else console.log(`${verb === 'retry' ? 'retried' : 'cancelled'} ${answer.moved} job${answer.moved === 1 ? '' : 's'}${answer.skipped ? `, skipped ${answer.skipped} that changed meanwhile` : ''}${more}`);
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
    withFilterOptions(jobs.command('list').description('list jobs, newest first (--status failed: the dead letters)'))
      .addOption(statusOption())
      .option('--limit <n>', 'at most this many', int('--limit'), 50)
      .option('--json', 'print the job views as JSON'),
  ).action(async (opts: RemoteOptions & FilterOptions & { status?: JobStatus; limit: number; json?: boolean }) => {
    const page = await withRemote(opts, (trpc) => trpc.jobs.list.query({ limit: opts.limit, ...filterOf(opts), ...(opts.status ? { status: opts.status } : {}) }));
    if (opts.json) return printJson(page);
    if (page.jobs.length === 0) console.log('no jobs');
    for (const j of page.jobs) console.log(`${j.id}  ${j.status.padEnd(10)}  ${j.queue}/${j.type}  attempt ${j.attempt}${j.error ? `  ${j.error.slice(0, 80)}` : ''}`);
  });
  withRemoteOptions(jobs.command('get').description('print one job: status, payload, result, error').argument('<id>', 'job id')).action(
    async (id: string, opts: RemoteOptions) => printJson(await withRemote(opts, (trpc) => trpc.jobs.get.query({ id }))),
  );
  withRemoteOptions(
    withFilterOptions(
      jobs
        .command('retry')
        .description('re-queue failed or cancelled jobs: those given, else those matching the filters, at most --limit (admin key)')
        .argument('[ids...]', 'job ids; none: the jobs matching the filters'),
      'without ids: ',
    )
      .option('--failed', 'without ids: failed jobs, the dead letters (the default)')
      .addOption(statusOption().choices(['failed', 'cancelled']))
      .option('--limit <n>', `without ids: move at most this many (required, at most ${LIMITS.bulkLimit})`, int('--limit'))
      .option('--dry-run', 'without ids: count the matching jobs and move none'),
  ).action(async (ids: string[], opts: RemoteOptions & BulkOptions & { failed?: boolean; status?: 'failed' | 'cancelled' }) => {
    if (ids.length > 0) return withRemote(opts, (trpc) => moveAll(ids, 'retried', (id) => trpc.jobs.retry.mutate({ id })));
    if (opts.failed && opts.status && opts.status !== 'failed') throw new CliError('give --failed or --status cancelled, not both', 2);
    const limit = bulkLimit(opts, 'retry');
    const filter = { ...filterOf(opts), status: opts.status ?? 'failed' };
    printBulk(await withRemote(opts, (trpc) => trpc.jobs.retryMany.mutate({ filter, limit, dryRun: opts.dryRun === true })), 'retry');
  });
  withRemoteOptions(jobs.command('explain').description('why a job is or is not being claimed: runnable, and each reason').argument('<id>', 'job id')).action(
    async (id: string, opts: RemoteOptions) => printJson(await withRemote(opts, (trpc) => trpc.jobs.explain.query({ id }))),
  );
  withRemoteOptions(
    withFilterOptions(
      jobs
        .command('cancel')
        .description('cancel pending or running jobs: those given, else those matching the filters, at most --limit (admin key)')
        .argument('[ids...]', 'job ids; none: the jobs matching the filters'),
      'without ids: ',
    )
      .addOption(new Option('--status <status>', 'without ids: only jobs in this status (default: pending, claimed and processing)').choices(['pending', 'claimed', 'processing']))
      .option('--limit <n>', `without ids: move at most this many (required, at most ${LIMITS.bulkLimit})`, int('--limit'))
      .option('--dry-run', 'without ids: count the matching jobs and move none'),
  ).action(async (ids: string[], opts: RemoteOptions & BulkOptions & { status?: 'pending' | 'claimed' | 'processing' }) => {
    if (ids.length > 0) return withRemote(opts, (trpc) => moveAll(ids, 'cancelled', (id) => trpc.jobs.cancel.mutate({ id })));
    const limit = bulkLimit(opts, 'cancel');
    const filter = { ...filterOf(opts), ...(opts.status ? { status: opts.status } : {}) };
    printBulk(await withRemote(opts, (trpc) => trpc.jobs.cancelMany.mutate({ filter, limit, dryRun: opts.dryRun === true })), 'cancel');
  });
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
