import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import pg from 'pg';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker, defineJobs } from '../client/index.js';
import { createQueueServer } from '../server/app.js';
import { createProgram } from '../server/cli/program.js';
import { freePort } from '../server/db/embedded.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const MAIN = join(ROOT, 'server/main.ts');
const WORKER_MODULE = join(ROOT, 'test/support/cliWorkerModule.ts');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A `skipq` process: its output so far, and its exit code once it ends. */
interface Run {
  pid: number;
  out: () => string;
  exited: Promise<number | null>;
  kill(signal?: NodeJS.Signals): void;
}
const running = new Set<Run>();

/** Starts `skipq <args>` with `env` over this process's environment minus DATABASE_URL (the embedded database is what is tested). */
function skipq(args: string[], env: Record<string, string> = {}): Run {
  const base = { ...process.env };
  delete base.DATABASE_URL;
  delete base.SKIPQ_URL;
  delete base.SKIPQ_API_KEY;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { cwd: ROOT, env: { ...base, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr.on('data', (c: Buffer) => (out += c.toString()));
  const run: Run = {
    pid: child.pid ?? -1,
    out: () => out,
    exited: new Promise((resolve) => child.once('close', (code) => resolve(code))),
    kill: (signal = 'SIGKILL') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
  running.add(run);
  void run.exited.then(() => running.delete(run));
  return run;
}

/** Runs `skipq <args>` to its end. */
async function skipqDone(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string }> {
  const run = skipq(args, env);
  const code = await run.exited;
  return { code, out: run.out() };
}

/** Resolves once `run` printed a line matching `pattern`; answers the match. */
/**
 * The server record of `dir` once it names `pid` (any pid when omitted): serve
 * writes it right after the server logs its "listening on" line.
 */
async function serverRecord(dir: string, pid?: number, timeoutMs = 10_000): Promise<Record<string, unknown>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const record = JSON.parse(readFileSync(join(dir, 'server.json'), 'utf8')) as Record<string, unknown>;
      if (pid === undefined || record.pid === pid) return record;
    } catch {
      // Not written yet (or being written).
    }
    if (Date.now() > deadline) throw new Error(`server.json in ${dir} did not name pid ${pid ?? '(any)'} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

async function waitForOutput(run: Run, pattern: RegExp, timeoutMs = 30_000): Promise<RegExpExecArray> {
  const deadline = Date.now() + timeoutMs;
  let exitedWith: number | null | undefined;
  void run.exited.then((code) => (exitedWith = code));
  for (;;) {
    const m = pattern.exec(run.out());
    if (m) return m;
    if (exitedWith !== undefined) throw new Error(`exited (${exitedWith}) before ${pattern}:\n${run.out()}`);
    if (Date.now() > deadline) throw new Error(`no ${pattern} within ${timeoutMs} ms:\n${run.out()}`);
    await sleep(50);
  }
}

async function waitUntil(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

/** Pids of postgres processes whose command line names `dir`. */
function postgresOf(dir: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0');
      if (cmdline[0]?.endsWith('postgres') && cmdline.some((a) => a.startsWith(dir))) pids.push(Number(entry));
    } catch {
      // Gone meanwhile.
    }
  }
  return pids;
}

async function tempDataDir(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'skipq-cli-'));
  // The embedded PostgreSQL runs as its own OS user when we are root.
  await chmod(dir, 0o755);
  return dir;
}

/** Every command of `program`, nested ones too, with its path (`['jobs', 'list']`). */
function allCommands(command: Command, path: string[] = []): Array<{ path: string[]; command: Command }> {
  return command.commands.flatMap((c) => [{ path: [...path, c.name()], command: c }, ...allCommands(c, [...path, c.name()])]);
}

afterAll(async () => {
  for (const r of running) r.kill();
  await Promise.all([...running].map((r) => r.exited));
});

describe('skipq --help', () => {
  it('prints help for the program (a real process, exit 0) and for every command', async () => {
    const { code, out } = await skipqDone(['--help']);
    expect(code, out).toBe(0);
    for (const name of ['serve', 'migrate', 'worker', 'enqueue', 'jobs', 'queues', 'stats', 'keys', 'db']) expect(out).toMatch(new RegExp(`^  ${name}\\b`, 'm'));
    expect(out).toMatch(/SKIPQ_URL/);
    // Every command, in process: --help prints its usage and exits 0.
    const program = createProgram();
    const commands = allCommands(program);
    expect(commands.map((c) => c.path.join(' '))).toEqual(
      expect.arrayContaining(['serve', 'migrate', 'worker', 'enqueue', 'jobs list', 'jobs get', 'jobs retry', 'jobs cancel', 'queues list', 'stats', 'keys create', 'keys list', 'keys revoke', 'db url']),
    );
    for (const { path } of commands) {
      if (path.at(-1) === 'help') continue;
      const fresh = createProgram();
      let printed = '';
      for (const c of [fresh, ...allCommands(fresh).map((x) => x.command)]) c.exitOverride().configureOutput({ writeOut: (s) => (printed += s), writeErr: (s) => (printed += s) });
      const thrown = await fresh.parseAsync(['node', 'skipq', ...path, '--help']).then(() => null, (e: unknown) => e);
      expect(thrown, path.join(' ')).toBeInstanceOf(CommanderError);
      expect((thrown as CommanderError).exitCode, path.join(' ')).toBe(0);
      expect(printed, path.join(' ')).toContain(`Usage: skipq ${path.join(' ')}`);
    }
  });

  it('an unknown command or a missing argument fails with a message and exit code 2 or 1, never silently', async () => {
    const [unknown, missing] = await Promise.all([skipqDone(['nonsense']), skipqDone(['keys', 'revoke'])]);
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/unknown command "nonsense"/);
    expect(missing.code).toBe(2);
    expect(missing.out).toMatch(/revoke needs a key id .* or --all/);
  });

  it("commander's own refusals (unknown option, missing argument, a value not among the choices) are one [skipq] line and exit 2 too", async () => {
    const [option, argument, choice, help, port] = await Promise.all([
      skipqDone(['jobs', 'list', '--bogus']),
      skipqDone(['enqueue']),
      skipqDone(['keys', 'create', '--role', 'nope']),
      skipqDone(['jobs', '--help']),
      skipqDone(['--port', 'abc']),
    ]);
    // A serve flag names itself, not the environment variable it stands for.
    expect(port.code, port.out).toBe(2);
    expect(port.out).toMatch(/^\[skipq\] option '--port <n>' argument 'abc' is invalid\. an integer from 0 to 65535 was expected/m);
    expect(port.out).not.toMatch(/environment/);
    expect(option.code, option.out).toBe(2);
    expect(option.out).toMatch(/^\[skipq\] unknown option '--bogus'/m);
    expect(argument.code, argument.out).toBe(2);
    expect(argument.out).toMatch(/^\[skipq\] missing required argument 'type'/m);
    expect(choice.code, choice.out).toBe(2);
    expect(choice.out).toMatch(/^\[skipq\] option '--role <role>' argument 'nope' is invalid/m);
    expect(`${option.out}${argument.out}${choice.out}`).not.toMatch(/^error: /m);
    expect(help.code, help.out).toBe(0);
    expect(help.out).toContain('Usage: skipq jobs');
  });
});

describe('client URLs are checked before anything is sent', () => {
  const jobs = defineJobs({ note: { payload: z.unknown() } });
  it.each([
    ['127.0.0.1:3000/trpc', /is not an absolute URL: it needs http:\/\/ or https:\/\//],
    ['localhost:3000', /is not an absolute URL|uses localhost/],
    ['http://127.0.0.1:3000', /does not end in \/trpc .* did you mean http:\/\/127\.0\.0\.1:3000\/trpc\?/],
    ['http://127.0.0.1:3000/trpc/', /does not end in \/trpc .* did you mean http:\/\/127\.0\.0\.1:3000\/trpc\?/],
    ['ftp://127.0.0.1/trpc', /uses ftp: only http and https/],
  ])('%s', (url, message) => {
    expect(() => createQueueClient({ url, jobs })).toThrow(TypeError);
    expect(() => createQueueClient({ url, jobs })).toThrow(message);
    expect(() => createWorker({ url, jobs, handlers: { note: () => null } })).toThrow(message);
  });

  it('the CLI says the same and exits 2', async () => {
    const { code, out } = await skipqDone(['stats', '--url', 'http://127.0.0.1:3000']);
    expect(code).toBe(2);
    expect(out).toMatch(/does not end in \/trpc/);
  });
});

describe('serve on the embedded database, and commands beside it', () => {
  let dataDir: string;
  let server: Run;
  let url: string;
  let env: Record<string, string>;
  beforeAll(async () => {
    dataDir = await tempDataDir();
    env = { SKIPQ_DATA_DIR: dataDir };
    server = skipq(['serve', '--port', '0'], env);
    url = (await waitForOutput(server, /listening on (http:\/\/\S+\/trpc)/))[1] as string;
  });
  afterAll(async () => {
    server?.kill('SIGTERM');
    await server?.exited;
    for (const pid of postgresOf(dataDir)) process.kill(pid, 'SIGKILL');
    await rm(dataDir, { recursive: true, force: true });
  });

  it('prints a full psql-able URL of the embedded database and records the server in server.json', async () => {
    const dbUrl = (await waitForOutput(server, /embedded PostgreSQL at (postgresql:\/\/postgres:postgres@127\.0\.0\.1:\d+\/skipq)/))[1] as string;
    const record = await serverRecord(dataDir, server.pid);
    expect(record).toMatchObject({ pid: server.pid, url, databaseUrl: dbUrl });
    expect(readFileSync(join(dataDir, 'pg.port'), 'utf8').trim()).toBe(new URL(dbUrl).port);
  });

  it('a second serve on the same data directory fails clearly, and the first keeps serving', async () => {
    const second = await skipqDone(['serve', '--port', '0'], env);
    expect(second.code).not.toBe(0);
    expect(second.out).toMatch(new RegExp(`a skipq server \\(pid ${server.pid}\\) already runs on data directory ${dataDir}`));
    const res = await fetch(`${url}/health`);
    expect(res.status).toBe(200);
  });

  it('db url prints a URL that pg connects to', async () => {
    const { code, out } = await skipqDone(['db', 'url'], env);
    expect(code, out).toBe(0);
    const dbUrl = out.trim().split('\n').at(-1) as string;
    const client = new pg.Client({ connectionString: dbUrl });
    await client.connect();
    try {
      expect((await client.query('SELECT count(*)::int AS n FROM task_queue')).rows[0]).toMatchObject({ n: expect.any(Number) });
    } finally {
      await client.end();
    }
  });

  it('migrate and keys create work through the running server\'s database; keys revoke --all gives keyless loopback back', async () => {
    const migrated = await skipqDone(['migrate'], env);
    expect(migrated.code, migrated.out).toBe(0);
    expect(migrated.out).toMatch(/using the embedded database of the server running on .* \(pid \d+\)/);
    expect(migrated.out).toMatch(/migrations applied: none; already applied: \d+/);

    const created = await skipqDone(['keys', 'create', '--role', 'admin', '--name', 'cli test'], env);
    expect(created.code, created.out).toBe(0);
    const key = /secret \(shown once\): (skq_\S+)/.exec(created.out)?.[1] as string;
    expect(key).toBeDefined();
    // Keys now count: a call without one is refused, one with the key passes.
    const keylessStats = async () => (await fetch(`${url}/queues.stats?input=${encodeURIComponent('{"json":{}}')}`)).status;
    await waitUntil(async () => (await keylessStats()) === 401, 10_000, 'keys to be required');
    const [keyed, refused] = await Promise.all([skipqDone(['stats', '--api-key', key], { SKIPQ_URL: url }), skipqDone(['stats'], { SKIPQ_URL: url })]);
    expect(keyed.code, keyed.out).toBe(0);
    expect(refused.code).toBe(1);
    expect(refused.out).toMatch(/this server needs an API key.*UNAUTHORIZED, HTTP 401/);

    const revoked = await skipqDone(['keys', 'revoke', '--all'], env);
    expect(revoked.code, revoked.out).toBe(0);
    expect(revoked.out).toMatch(/revoked 1 active key and removed 1 key record/);
    await waitUntil(async () => (await keylessStats()) === 200, 10_000, 'keyless loopback');
    const none = await skipqDone(['keys', 'list'], env);
    expect(none.out).toMatch(/no API keys: a server on loopback answers calls without one/);
  });

  it('enqueue, jobs get, stats and queues list against the running server; worker <module> processes the job', async () => {
    const enqueued = await skipqDone(['enqueue', 'double', '{"n":21}', '--queue', 'cli', '--url', url]);
    expect(enqueued.code, enqueued.out).toBe(0);
    const job = JSON.parse(enqueued.out.slice(enqueued.out.indexOf('{'))) as { id: string; status: string };
    expect(job.status).toBe('pending');
    const [got, stats] = await Promise.all([skipqDone(['jobs', 'get', job.id], { SKIPQ_URL: url }), skipqDone(['stats'], { SKIPQ_URL: url })]);
    expect(JSON.parse(got.out.slice(got.out.indexOf('{')))).toMatchObject({ id: job.id, type: 'double', queue: 'cli', payload: { n: 21 } });
    expect(stats.out).toMatch(/cli {2}double {2}pending {4,}1/);

    const worker = skipq(['worker', WORKER_MODULE, '--concurrency', '2', '--url', url]);
    try {
      await waitForOutput(worker, new RegExp(`completed ${job.id}`));
    } finally {
      worker.kill('SIGTERM');
      expect(await worker.exited).toBe(0);
    }
    const [done, queues] = await Promise.all([skipqDone(['jobs', 'get', job.id, '--url', url]), skipqDone(['queues', 'list', '--url', url])]);
    expect(JSON.parse(done.out.slice(done.out.indexOf('{')))).toMatchObject({ status: 'completed', result: { doubled: 42 } });
    expect(queues.out).toMatch(/^cli {2}pending 0 .* completed 1/m);
  });

  it('queues pause and resume stop and restart claims; jobs explain says why a job waits', async () => {
    const paused = await skipqDone(['queues', 'pause', 'cli-paused', '--url', url]);
    expect(paused.code, paused.out).toBe(0);
    expect(paused.out).toMatch(/cli-paused: paused/);
    const enqueued = await skipqDone(['enqueue', 'double', '{"n":1}', '--queue', 'cli-paused', '--url', url]);
    const job = JSON.parse(enqueued.out.slice(enqueued.out.indexOf('{'))) as { id: string };
    const why = await skipqDone(['jobs', 'explain', job.id, '--url', url]);
    expect(why.code, why.out).toBe(0);
    const explained = JSON.parse(why.out.slice(why.out.indexOf('{'))) as { runnable: boolean; reasons: Array<{ code: string }> };
    expect(explained.runnable).toBe(false);
    expect(explained.reasons.map((r) => r.code)).toContain('QUEUE_PAUSED');
    const resumed = await skipqDone(['queues', 'resume', 'cli-paused', '--url', url]);
    expect(resumed.out).toMatch(/cli-paused: running/);
    const after = await skipqDone(['jobs', 'explain', job.id, '--url', url]);
    const again = JSON.parse(after.out.slice(after.out.indexOf('{'))) as { runnable: boolean };
    expect(again.runnable).toBe(true);
    const missing = await skipqDone(['queues', 'pause', '--url', url]);
    expect(missing.code).not.toBe(0);
  });

  it('a port already in use fails the start at once and leaves nothing running', async () => {
    const other = await tempDataDir();
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((resolve) => blocker.listen(port, '127.0.0.1', resolve));
    try {
      const { code, out } = await skipqDone(['serve', '--port', String(port)], { SKIPQ_DATA_DIR: other });
      expect(code).toBe(1);
      expect(out).toMatch(new RegExp(`port ${port} on 127\\.0\\.0\\.1 is in use`));
      expect(postgresOf(other)).toEqual([]);
      expect(existsSync(join(other, 'server.json'))).toBe(false);
    } finally {
      blocker.close();
      await rm(other, { recursive: true, force: true });
    }
  });

  it('a start that fails after its embedded database started stops that database again', async () => {
    const other = await tempDataDir();
    try {
      // No keys, and not loopback: refused after the database started and migrated.
      await expect(createQueueServer({ dataDir: other, host: '0.0.0.0', port: 0, log: () => {} })).rejects.toThrow(/refusing to listen on 0\.0\.0\.0 without API keys/);
      expect(postgresOf(other)).toEqual([]);
      expect(existsSync(join(other, 'pg', 'postmaster.pid'))).toBe(false);
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  // Last: it stops the shared server.
  it('a clean stop removes server.json and the postgres; the next start reuses the port, and ignores a stale record', async () => {
    const dbPort = readFileSync(join(dataDir, 'pg.port'), 'utf8').trim();
    server.kill('SIGTERM');
    expect(await server.exited).toBe(0);
    expect(existsSync(join(dataDir, 'server.json'))).toBe(false);
    expect(postgresOf(dataDir)).toEqual([]);
    // Stopped: db url still says where it will be.
    const stopped = await skipqDone(['db', 'url'], env);
    expect(stopped.code).toBe(0);
    expect(stopped.out).toMatch(/embedded database is stopped/);
    expect(stopped.out).toContain(`postgresql://postgres:postgres@127.0.0.1:${dbPort}/skipq`);
    // A record left by a killed server (dead pid) is ignored.
    await writeFile(join(dataDir, 'server.json'), JSON.stringify({ pid: 2 ** 22 + 17, url: 'http://127.0.0.1:1/trpc', databaseUrl: 'postgresql://x@127.0.0.1:1/skipq', startedAt: '' }));
    server = skipq(['serve', '--port', '0'], env);
    await waitForOutput(server, new RegExp(`embedded PostgreSQL at postgresql://postgres:postgres@127\\.0\\.0\\.1:${dbPort}/skipq`));
    url = (await waitForOutput(server, /listening on (http:\/\/\S+\/trpc)/))[1] as string;
    expect(await serverRecord(dataDir, server.pid)).toMatchObject({ pid: server.pid, url });
  });
});
