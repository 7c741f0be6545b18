import { Command } from 'commander';
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isJobRegistry, type JobRegistry } from '../../shared/index.js';
import { CliError, progress } from './errors.js';
import { connect, withRemoteOptions, type RemoteOptions } from './remote.js';

/** What `skipq worker <module>` needs from the module: the registry and a handler per type it runs. */
interface WorkerModule {
  jobs: JobRegistry;
  handlers: Record<string, (payload: unknown, ctx: unknown) => unknown>;
}

/** Loads `jobs` and `handlers` from a module's named exports, or from its default export `{ jobs, handlers }`. */
async function loadWorkerModule(modulePath: string): Promise<WorkerModule> {
  // A file that exists is loaded as a file (examples/jobs.ts too); anything else as a package name.
  const specifier = existsSync(resolve(modulePath)) ? pathToFileURL(resolve(modulePath)).href : modulePath;
  let mod: Record<string, unknown>;
  try {
    mod = (await import(specifier)) as Record<string, unknown>;
  } catch (error) {
    throw new CliError(`cannot load ${modulePath}: ${(error as Error).message}`);
  }
  const source = (mod.handlers ? mod : (mod.default ?? {})) as Partial<WorkerModule>;
  if (!isJobRegistry(source.jobs)) throw new CliError(`${modulePath} exports no job registry: export "jobs" (made by defineJobs) and "handlers", or a default { jobs, handlers }`, 2);
  if (!source.handlers || typeof source.handlers !== 'object') throw new CliError(`${modulePath} exports no "handlers" object (a function per job type)`, 2);
  const unknown = Object.keys(source.handlers).filter((type) => !(type in (source.jobs as JobRegistry)));
  if (unknown.length > 0) throw new CliError(`${modulePath}: handlers for types its registry does not define: ${unknown.join(', ')}`, 2);
  return source as WorkerModule;
}

/** `skipq worker <module>`: runs the module's handlers until SIGINT/SIGTERM (which lets running jobs finish). */
export function workerCommand(): Command {
  return withRemoteOptions(
    new Command('worker')
      .description('run the handlers a module exports (jobs + handlers) against a running server')
      .argument('<module>', 'module exporting "jobs" (defineJobs) and "handlers", or a default { jobs, handlers }')
      .option('--concurrency <n>', 'jobs run at once', (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 1) throw new CliError(`--concurrency must be a positive integer, not ${JSON.stringify(v)}`, 2);
        return n;
      }, 10)
      .option('--queues <a,b>', 'only claim from these queues')
      .option('--grace <ms>', 'on stop, how long running jobs may finish before they are handed back', (v) => Number(v), 10_000),
  ).action(async (modulePath: string, opts: RemoteOptions & { concurrency: number; queues?: string; grace: number }) => {
    const { jobs, handlers } = await loadWorkerModule(modulePath);
    // Checks the URL (a usage error) before the worker starts claiming.
    await (await connect(opts)).close();
    const { createWorker } = await import('../../client/worker.js');
    const worker = createWorker({
      url: opts.url,
      ...(opts.apiKey ? { apiKey: opts.apiKey } : {}),
      jobs,
      handlers: handlers as never,
      concurrency: opts.concurrency,
      graceMs: opts.grace,
      ...(opts.queues ? { queues: opts.queues.split(',').map((q) => q.trim()).filter(Boolean) } : {}),
      onEvent(event) {
        if (event.kind === 'completed') console.log(`completed ${event.id}`);
        else if (event.kind === 'failed') console.log(`failed ${event.id}: ${event.error}${event.willRetry ? ' (will retry)' : ''}`);
        else if (event.kind === 'error') progress(`worker error: ${(event.error as Error)?.message ?? String(event.error)}`);
      },
    });
    worker.start();
    progress(`worker ${worker.workerId} running ${Object.keys(handlers).join(', ')} (concurrency ${opts.concurrency}) against ${opts.url}`);
    let stopping = false;
    const stop = (signal: string): void => {
      if (stopping) return;
      stopping = true;
      progress(`${signal}: finishing running jobs (up to ${opts.grace} ms), then stopping`);
      void worker.stop().then(({ undelivered }) => {
        if (undelivered.length > 0) progress(`${undelivered.length} report(s) could not be delivered; those jobs run again once their lease ends`);
        process.exit(0);
      });
    };
    for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, () => stop(signal));
  });
}
