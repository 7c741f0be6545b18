import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

/** The repository root: every child runs from here so `tsx` and the project's modules resolve. */
export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

// Libraries may print to stdout too; only lines with this prefix are protocol.
const PREFIX = '@@bench ';
const TAIL_LINES = 40;

/** A protocol message: what happened (`event`) plus any JSON fields. */
export type Message = { event: string } & Record<string, unknown>;

/** Child side: sends one protocol message to the orchestrator. */
export function send(message: Message): void {
  process.stdout.write(`${PREFIX}${JSON.stringify(message)}\n`);
}

/**
 * Child side: exits once everything written to stdout has reached the pipe.
 * stdout to a pipe is asynchronous, so process.exit() right after a large
 * message (MIX's 30,000 latencies, about 1 MB) would cut it short.
 */
export function exitWhenFlushed(code = 0): void {
  process.stdout.write('', () => process.exit(code));
}

/** Child side: the JSON config the orchestrator passed in BENCH_CONFIG. */
export function readConfig<T>(): T {
  const raw = process.env.BENCH_CONFIG;
  if (!raw) throw new Error('BENCH_CONFIG is not set: this script is started by bench/run.ts');
  return JSON.parse(raw) as T;
}

/** Options of {@link spawnChild}. */
export interface SpawnOptions {
  /** For messages: "skipq server", "pgboss worker". */
  name: string;
  /** Script path relative to the repository root (.js runs on plain node, .ts through tsx). */
  script: string;
  args?: string[];
  /** Extra node flags, e.g. --cpu-prof. */
  nodeArgs?: string[];
  env?: Record<string, string>;
  /** Handed to the child as BENCH_CONFIG. */
  config?: unknown;
  /** Mirror the child's output to our stderr. */
  verbose?: boolean;
}

/** A running child process and its protocol messages. */
export interface Child {
  readonly name: string;
  readonly pid: number;
  /** Resolves with the exit code (null when killed by a signal). */
  readonly exited: Promise<number | null>;
  /** Waits for the next message with this event; rejects if the child exits first or `signal` aborts. */
  next(event: string, signal?: AbortSignal): Promise<Message>;
  /** The last lines the child printed that were not protocol, for error messages. */
  tail(): string;
  /** SIGTERM, then SIGKILL to its process group after `graceMs`. */
  stop(graceMs?: number): Promise<void>;
}

/**
 * Starts `node <script>` as its own process group: plain node for JavaScript
 * (the built package and bench scripts, see lib/build.ts), `node --import tsx`
 * for TypeScript. Never `npx tsx`: npx and the tsx CLI would add two wrapper
 * processes, and the pid we read /proc/<pid>/status of must be the real one.
 */
export function spawnChild(options: SpawnOptions): Child {
  const loader = options.script.endsWith('.ts') ? ['--import', 'tsx'] : [];
  const proc = spawn(process.execPath, [...(options.nodeArgs ?? []), ...loader, options.script, ...(options.args ?? [])], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      ...options.env,
      ...(options.config !== undefined ? { BENCH_CONFIG: JSON.stringify(options.config) } : {}),
    },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  if (proc.pid === undefined) throw new Error(`${options.name}: could not start ${options.script}`);
  const pid = proc.pid;
  live.add(pid);
  const lines: string[] = [];
  const inbox: Message[] = [];
  const waiters = new Set<() => void>();
  let exitCode: number | null | undefined;
  const keep = (line: string): void => {
    lines.push(line);
    if (lines.length > TAIL_LINES) lines.shift();
    if (options.verbose) process.stderr.write(`  [${options.name}] ${line}\n`);
  };
  createInterface({ input: proc.stdout }).on('line', (line) => {
    if (!line.startsWith(PREFIX)) return keep(line);
    let message: Message;
    try {
      message = JSON.parse(line.slice(PREFIX.length)) as Message;
    } catch (error) {
      // A cut message (a child that exited mid-write) fails that round, not the whole run.
      message = { event: 'error', message: `unreadable protocol message (${line.length} characters): ${(error as Error).message}` };
    }
    inbox.push(message);
    for (const wake of [...waiters]) wake();
  });
  createInterface({ input: proc.stderr }).on('line', keep);
  const exited = new Promise<number | null>((resolve) => {
    proc.on('exit', (code) => {
      exitCode = code;
      live.delete(pid);
      // Let the last stdout lines arrive before waiters decide the child died silent.
      setTimeout(() => {
        for (const wake of [...waiters]) wake();
        resolve(code);
      }, 50);
    });
  });
  const tail = (): string => lines.slice(-12).join('\n');

  return {
    name: options.name,
    pid,
    exited,
    tail,
    next(event, signal) {
      return new Promise<Message>((resolve, reject) => {
        const check = (): void => {
          const index = inbox.findIndex((m) => m.event === event || m.event === 'error');
          if (index >= 0) {
            const [message] = inbox.splice(index, 1) as [Message];
            done();
            if (message.event === 'error') reject(new Error(`${options.name}: ${String(message.message)}`));
            else resolve(message);
          } else if (signal?.aborted) {
            done();
            reject(signal.reason);
          } else if (exitCode !== undefined) {
            done();
            reject(new Error(`${options.name} exited (code ${exitCode}) before "${event}":\n${tail()}`));
          }
        };
        const done = (): void => {
          waiters.delete(check);
          signal?.removeEventListener('abort', check);
        };
        waiters.add(check);
        signal?.addEventListener('abort', check);
        check();
      });
    },
    async stop(graceMs = 5000) {
      if (exitCode !== undefined) return;
      killGroup(pid, 'SIGTERM');
      const timer = setTimeout(() => killGroup(pid, 'SIGKILL'), graceMs);
      await exited;
      clearTimeout(timer);
      // Anything the child left in its group (it has none by design) goes too.
      killGroup(pid, 'SIGKILL');
    },
  };
}

// Process groups we started and have not seen exit: ended on Ctrl-C or a crash.
const live = new Set<number>();

function killGroup(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pid, signal);
  } catch {
    // Already gone.
  }
}

/** Ends every child this process started and that is still running (by its process group id). */
export function killAllChildren(): void {
  for (const pid of live) killGroup(pid, 'SIGKILL');
}
