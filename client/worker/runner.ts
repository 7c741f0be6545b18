import { FAILURE_CODES } from '../../shared/errors.js';
import { invalidPayloadMessage, issuesText } from '../../shared/issues.js';
import type { ClaimedJob } from '../../shared/index.js';
import { PermanentError } from '../errors.js';
import type { WorkerConfig } from './config.js';
import { describeThrown, truncateText } from './describeError.js';
import { checkJsonValue } from './jsonValue.js';
import type { Failure, Reporter } from './reporting.js';
import { abortRun, signalOf, type Run } from './run.js';
import type { ChildReader } from './children.js';
import type { StartReporter } from './starts.js';
import { endJobTrace, inJobTrace, NO_TELEMETRY, recordThrown, startJobTrace, telemetryNow, type Telemetry, type TracedOutcome } from './jobSpan.js';
import type { JobContext, WorkerEvent } from './types.js';

/** Runs claimed jobs, one slot each, and decides what each attempt reports. */
export interface Runner {
  /** Starts the job's handler in a slot. `claimedAt` (local ms) is when its timeoutMs began. */
  launch(job: ClaimedJob, claimedAt: number): void;
  /** The server says the job is no longer ours: abort its handler and free its slot at once. */
  abandon(id: string, reason: 'lease_lost' | 'cancelled' | 'not_found'): void;
  /** Aborts every run still holding a slot (stop() past its grace) and answers them, for release. */
  abandonAll(reason: Error): Run[];
  /** Runs holding a slot now. */
  runs(): Iterable<Run>;
  /** Slots taken. */
  readonly size: number;
  /** Resolves when no slot is taken. */
  whenIdle(): Promise<void>;
  /** A claim was answered: looks again whether OpenTelemetry is set up, for the attempts launched from now on. */
  refreshTelemetry(): void;
}

/** What {@link createRunner} needs. */
export interface RunnerDeps {
  config: WorkerConfig;
  reporter: Reporter;
  starts: StartReporter;
  emit(event: WorkerEvent): void;
  /** A slot was freed, its handler having had it for `ranMs`: the claim loop may start or claim the next. */
  onSlotFreed(ranMs: number): void;
  /** Reads a held job's children (ctx.children()). */
  children: ChildReader;
}

/** What became of one attempt on this worker. */
type Outcome = { kind: 'complete'; result: unknown; bytes: number } | { kind: 'fail'; failure: Failure } | { kind: 'abandoned'; reason: string };

const ABANDONED: Outcome = Object.freeze({ kind: 'abandoned', reason: 'worker_error' });
/** A handler that returned nothing: one outcome for all of them. */
const COMPLETE_EMPTY: Outcome = Object.freeze({ kind: 'complete', result: undefined, bytes: 0 });
const failWith = (code: Failure['code'], message: string, retry = false): Outcome => ({
  kind: 'fail',
  failure: { code, message: truncateText(message), retry },
});

/** Why a value cannot be stored, phrased after `result of "x"` or `progress of job y`. */
function problemText(check: { problem: 'not_json' | 'too_large' | 'too_deep'; message: string }): string {
  if (check.problem === 'too_large') return `is too large: ${check.message}`;
  if (check.problem === 'too_deep') return `is ${check.message}`;
  return `cannot be stored as JSON: ${check.message}`;
}

/** What the attempt's span and duration histogram are told (client/worker/jobSpan.ts). */
function tracedOf(outcome: Outcome): TracedOutcome {
  if (outcome.kind === 'fail') return { kind: 'fail', code: outcome.failure.code, message: outcome.failure.message };
  return outcome.kind === 'complete' ? { kind: 'complete' } : outcome;
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';

/** Creates the runner of a worker. */
export function createRunner(deps: RunnerDeps): Runner {
  const { config, reporter, starts, emit, onSlotFreed, children } = deps;
  const running = new Map<string, Run>();
  let idleWaiters: Array<() => void> = [];
  let telemetry: Telemetry = NO_TELEMETRY;

  /**
   * Frees the run's slot and reports its outcome, once: whichever comes first of
   * the handler returning, its timeout, or the job being abandoned. A handler
   * that ignores its signal keeps running, but no longer holds a slot, and what
   * it returns later is ignored.
   */
  const settle = (run: Run, outcome: Outcome): void => {
    if (run.settled) return;
    run.settled = true;
    clearTimeout(run.timer);
    running.delete(run.job.id);
    starts.forget(run);
    if (run.trace) endJobTrace(run.trace, run.job, tracedOf(outcome));
    // The slot frees when the handler returns, not when the server has the
    // result: the next claim can leave (carrying this completion) at once.
    onSlotFreed(Date.now() - run.launchedAt);
    if (running.size === 0 && idleWaiters.length > 0) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
    if (outcome.kind === 'complete') reporter.complete(run, outcome.result, outcome.bytes);
    else if (outcome.kind === 'fail') reporter.fail(run, outcome.failure);
  };

  const timeOut = (run: Run): void => {
    const { job } = run;
    const message = `attempt ${job.attempt} of job ${job.id} ran past its timeout of ${job.timeoutMs} ms`;
    abortRun(run, new DOMException(message, 'TimeoutError'));
    settle(run, failWith(FAILURE_CODES.TIMEOUT, `TimeoutError: ${message}`, true));
  };

  const contextOf = (run: Run): JobContext => {
    const { job } = run;
    return {
      id: job.id,
      type: job.type,
      queue: job.queue,
      attempt: job.attempt,
      retryCount: job.retryCount,
      maxRetries: job.maxRetries,
      get signal() {
        return signalOf(run);
      },
      progress(value) {
        // Checked here, synchronously, so the handler learns of a bad value at
        // the line that made it; a bad value sent on would make the server
        // refuse the heartbeat of every job on this worker.
        const check = value === undefined
          ? ({ ok: false, problem: 'not_json', message: 'undefined is not JSON' } as const)
          : checkJsonValue(value, config.maxResultBytes);
        if (!check.ok) {
          const text = `progress of job ${job.id} ${problemText(check)}`;
          throw check.problem === 'not_json' ? new TypeError(text) : new RangeError(text);
        }
        if (run.settled) return;
        run.progress = { value, dirty: true };
      },
      // Typed by the registry where the worker's Handlers are (ChildResult); the reader parsed each result.
      // A method, not an arrow: an arrow property is wrapped in a naming helper per job by tsx/esbuild's keepNames.
      children() {
        return children(job, signalOf(run)) as ReturnType<JobContext['children']>;
      },
    };
  };

  /** What the handler's return value becomes: checked against the result schema, then as JSON. */
  const resultOutcome = (job: ClaimedJob, returned: unknown): Outcome => {
    const def = config.registry[job.type];
    let result = returned;
    if (def?.result) {
      const checked = def.result.safeParse(result);
      // A retry runs the same code on the same payload: it would fail the same way.
      if (!checked.success) {
        return failWith(FAILURE_CODES.INVALID_RESULT, `result of "${job.type}" fails the result schema: ${issuesText(checked.error.issues, '(result)')}`);
      }
      result = checked.data;
    }
    if (result === undefined) return COMPLETE_EMPTY;
    const check = checkJsonValue(result, config.maxResultBytes);
    if (!check.ok) return failWith(FAILURE_CODES.INVALID_RESULT, `result of "${job.type}" ${problemText(check)}`);
    return { kind: 'complete', result, bytes: check.bytes };
  };

  /** The handler returned (or its promise resolved): the result decides the outcome. */
  const returned = (run: Run, value: unknown): void => {
    if (!run.settled) settle(run, resultOutcome(run.job, value));
  };

  /** The handler threw (or its promise rejected). */
  const threw = (run: Run, error: unknown): void => {
    if (run.settled) return;
    recordThrown(run.trace, error);
    settle(run, {
      kind: 'fail',
      failure: { code: FAILURE_CODES.HANDLER_ERROR, message: describeThrown(error), retry: !(error instanceof PermanentError) },
    });
  };

  /** Only a bug of the worker itself throws here: free the slot, say so (launch() does the same). */
  const broken = (run: Run, error: unknown): void => {
    emit({ kind: 'error', error });
    settle(run, ABANDONED);
  };

  /** Runs an ending of the run where a throw would otherwise be a rejection nobody handles. */
  const guarded = (run: Run, end: (run: Run, value: unknown) => void, value: unknown): void => {
    try {
      end(run, value);
    } catch (error) {
      broken(run, error);
    }
  };

  const execute = (run: Run): void => {
    const { job } = run;
    run.trace = startJobTrace(job, config.workerId, telemetry);
    const def = config.registry[job.type];
    const handler = config.handlers[job.type];
    if (!def || !handler) return settle(run, failWith(FAILURE_CODES.NO_HANDLER, `this worker has no handler for "${job.type}"`));
    // The payload came from the database: unknown until the registry's schema says otherwise.
    const parsed = def.payload.safeParse(job.payload);
    // The handler gets the schema's copy (zod builds a new object at every
    // level); the one parsed from the wire is not read again, but the run
    // held it until the completion was acknowledged: two copies of every
    // payload in flight. Let go of it: with 4 KiB payloads and 1,000 in
    // flight the worker's peak RSS, median of 5 alternated rounds on a loaded
    // machine, went from 242 to 198 MiB (W2-4K drain) and 234 to 203 (W3-4K).
    if (parsed.success) job.payload = undefined;
    if (!parsed.success) {
      // The server's words for the same mistake at enqueue; not retried (failWith): the payload will not change.
      return settle(run, failWith(FAILURE_CODES.INVALID_PAYLOAD, invalidPayloadMessage(job.type, parsed.error.issues)));
    }
    if (run.deadlineAt !== null) {
      const left = run.deadlineAt - Date.now();
      if (left <= 0) return timeOut(run);
      run.timer = setTimeout(() => timeOut(run), left);
    }
    let value: unknown;
    try {
      const span = run.trace?.span;
      value = span ? inJobTrace(span, () => handler(parsed.data, contextOf(run))) : handler(parsed.data, contextOf(run));
      if (isThenable(value)) {
        // Its start is reported (late, with others) only if it is still running then.
        starts.add(run);
        value.then(
          (v) => guarded(run, returned, v),
          (error: unknown) => guarded(run, threw, error),
        );
        return;
      }
    } catch (error) {
      return threw(run, error);
    }
    // A handler that returns a value (not a promise) ends its attempt in this
    // same turn: no promise, no microtask and no start to report of its own.
    // With the other per-job cuts (jobSpan.ts, reporting.ts, trpc.ts): W3's worker CPU 26.9 -> 18.9 ms per 1,000 jobs.
    returned(run, value);
  };

  return {
    launch(job, claimedAt) {
      const run: Run = {
        job,
        deadlineAt: job.timeoutMs === null || job.timeoutMs === undefined ? null : claimedAt + job.timeoutMs,
        launchedAt: Date.now(),
        controller: undefined,
        abortReason: undefined,
        progress: undefined,
        settled: false,
        timer: undefined,
        trace: undefined,
      };
      running.set(job.id, run);
      try {
        execute(run);
      } catch (error) {
        broken(run, error);
      }
    },
    abandon(id, reason) {
      const run = running.get(id);
      if (!run) return;
      abortRun(run, new Error(reason === 'cancelled' ? `job ${id} was cancelled` : `lease on job ${id} was lost`));
      settle(run, { kind: 'abandoned', reason });
      emit({ kind: 'lost', id, reason });
    },
    abandonAll(reason) {
      const left = [...running.values()];
      for (const run of left) {
        abortRun(run, reason);
        settle(run, { kind: 'abandoned', reason: 'worker_stopped' });
      }
      return left;
    },
    runs: () => running.values(),
    get size() {
      return running.size;
    },
    whenIdle() {
      if (running.size === 0) return Promise.resolve();
      return new Promise((resolve) => idleWaiters.push(resolve));
    },
    refreshTelemetry() {
      telemetry = telemetryNow();
    },
  };
}
