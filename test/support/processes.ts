import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const WORKER_SCRIPT = fileURLToPath(new URL('./workerProcess.ts', import.meta.url));
const SERVER_SCRIPT = fileURLToPath(new URL('../../server/main.ts', import.meta.url));

/** One JSON line a child printed (see workerProcess.ts). */
export type Line = { ev: string; t: number } & Record<string, unknown>;

/** A child process of a fault-injection test: its parsed stdout lines, its exit, and signals. */
export interface Child {
  proc: ChildProcess;
  pid: number;
  /** Parsed JSON lines, in order. */
  lines: Line[];
  /** stdout lines that were not JSON, and stderr (for failure messages). */
  text: string[];
  /** Resolves when the process has exited and all its output was read (never rejects). */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Resolves with the first line (already printed or to come) matching `match`; rejects after `timeoutMs` or on exit. */
  waitForLine(match: (line: Line) => boolean, timeoutMs?: number, what?: string): Promise<Line>;
  signal(sig: NodeJS.Signals): void;
}

const children = new Set<Child>();

/** Runs a TypeScript script of this repository in a child process. */
function start(args: string[], env: Record<string, string>, name: string): Child {
  // `node --import tsx` runs the script in this very process: a signal sent to
  // `pid` reaches the worker or server, not a wrapper (npx and the tsx CLI fork).
  return spawnProgram(process.execPath, ['--import', 'tsx', ...args], env, name);
}

/** Runs any program (e.g. a compiled Go example) as a {@link Child}: its JSON stdout lines parsed, its exit awaited, killed by {@link killChildren}. */
export function spawnProgram(command: string, args: string[], env: Record<string, string>, name: string): Child {
  const proc = spawn(command, args, {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: Line[] = [];
  const text: string[] = [];
  const listeners = new Set<() => void>();
  let exitInfo: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    // 'close' comes after 'exit' and after stdout ended: every line the process wrote has been read.
    proc.once('close', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
      for (const l of listeners) l();
    });
  });
  createInterface({ input: proc.stdout! }).on('line', (raw) => {
    try {
      const parsed = JSON.parse(raw) as Line;
      if (parsed && typeof parsed === 'object' && typeof parsed.ev === 'string') lines.push(parsed);
      else text.push(raw);
    } catch {
      text.push(raw);
    }
    for (const l of listeners) l();
  });
  createInterface({ input: proc.stderr! }).on('line', (raw) => text.push(`[stderr] ${raw}`));
  const child: Child = {
    proc,
    pid: proc.pid ?? -1,
    lines,
    text,
    exited,
    waitForLine(match, timeoutMs = 15_000, what = 'a line') {
      return new Promise<Line>((resolve, reject) => {
        let seen = 0;
        const check = (): void => {
          for (; seen < lines.length; seen++) {
            const line = lines[seen] as Line;
            if (match(line)) return finish(() => resolve(line));
          }
          if (exitInfo) finish(() => reject(new Error(`${name} exited (${JSON.stringify(exitInfo)}) before ${what}; output:\n${text.slice(-30).join('\n')}`)));
        };
        const timer = setTimeout(
          () => finish(() => reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what} from ${name}; output:\n${text.slice(-30).join('\n')}`))),
          timeoutMs,
        );
        const finish = (settle: () => void): void => {
          clearTimeout(timer);
          listeners.delete(check);
          settle();
        };
        listeners.add(check);
        check();
      });
    },
    signal(sig) {
      if (!exitInfo) proc.kill(sig);
    },
  };
  children.add(child);
  void exited.then(() => children.delete(child));
  return child;
}

/** Options of {@link spawnWorker}; see workerProcess.ts. */
export interface WorkerProcessOptions {
  url: string;
  workerId: string;
  concurrency?: number;
  /** The worker's prefetch (default: the worker's own). */
  prefetch?: number;
  leaseMs?: number;
  waitMs?: number;
  graceMs?: number;
  /** Added to every job's `ms`: makes this worker slower than the others. */
  extraMs?: number;
}

/** Starts a worker process; resolves once it printed `ready`. */
export async function spawnWorker(options: WorkerProcessOptions): Promise<Child> {
  const env: Record<string, string> = { SKIPQ_URL: options.url, WORKER_ID: options.workerId };
  if (options.concurrency !== undefined) env.CONCURRENCY = String(options.concurrency);
  if (options.prefetch !== undefined) env.PREFETCH = String(options.prefetch);
  if (options.leaseMs !== undefined) env.LEASE_MS = String(options.leaseMs);
  if (options.waitMs !== undefined) env.WAIT_MS = String(options.waitMs);
  if (options.graceMs !== undefined) env.GRACE_MS = String(options.graceMs);
  if (options.extraMs !== undefined) env.EXTRA_MS = String(options.extraMs);
  const child = start([WORKER_SCRIPT], env, `worker ${options.workerId}`);
  await child.waitForLine((l) => l.ev === 'ready', 20_000, 'ready');
  return child;
}

/** Starts `server/main.ts` on a free port; resolves with its tRPC URL once it printed "listening on". */
export async function spawnServer(env: Record<string, string>): Promise<Child & { url: string }> {
  const child = start([SERVER_SCRIPT], { PORT: '0', ...env }, 'server/main.ts');
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`server did not start in 20 s:\n${child.text.join('\n')}`)), 20_000);
    const look = (): void => {
      for (const line of child.text) {
        const m = /listening on (http:\/\/\S+\/trpc)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1] as string);
          return;
        }
      }
      setTimeout(look, 20);
    };
    void child.exited.then((info) => {
      clearTimeout(timer);
      reject(new Error(`server exited (${JSON.stringify(info)}) before listening:\n${child.text.join('\n')}`));
    });
    look();
  });
  return Object.assign(child, { url });
}

/** SIGKILLs every child still running (stopped ones too) and waits for them: call in afterEach/afterAll. */
export async function killChildren(): Promise<void> {
  const left = [...children];
  for (const c of left) c.signal('SIGKILL');
  await Promise.all(left.map((c) => c.exited));
}

/** Lines of `child` with event `ev`. */
export function linesOf(child: Child, ev: string): Line[] {
  return child.lines.filter((l) => l.ev === ev);
}

/** Ids of the jobs whose handler `child` began and (as far as its output shows) has not returned from. */
export function inHandler(child: Child): string[] {
  const returned = new Set(linesOf(child, 'handled').map((l) => l.id));
  return linesOf(child, 'exec').map((l) => l.id as string).filter((id) => !returned.has(id));
}
