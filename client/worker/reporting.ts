import { createBatcher } from '../../shared/batcher.js';
import { FAILURE_CODES } from '../../shared/errors.js';
import { LIMITS } from '../../shared/limits.js';
import { backoffDelayMs, DEFAULT_BACKOFF } from '../../shared/registry.js';
import type {
  BatchWaiter,
  ClaimedJob,
  CompleteAnswer,
  CompleteOutcome,
  FailureCode,
} from '../../shared/index.js';
import { TRPCClientError } from '@trpc/client';
import { errorCodeOf, isTransient } from '../errors.js';
import { describeThrown } from './describeError.js';
import { ALONE, plainJson, type SkipqTrpc } from '../trpc.js';
import type { WorkerConfig } from './config.js';
import { deliver, type DeliveryWindow } from './deliveryWindow.js';
import type { Run } from './run.js';
import type { UndeliveredReport, WorkerEvent } from './types.js';

/**
 * Values one request may carry (results, progress), in bytes of JSON: a
 * quarter of the server's default 16 MiB body limit, so that a request tRPC's
 * batch link merges with a few others still fits. A batch over it is split.
 */
export const REQUEST_BYTES = 4 * 1024 * 1024;
/** A request carrying more than this goes in an HTTP request of its own, not merged with others. */
export const ALONE_BYTES = 256 * 1024;
/** Undelivered reports kept for stop()'s answer. */
const MAX_UNDELIVERED = 10_000;

/** How an attempt failed, as the worker reports it. */
export interface Failure {
  message: string;
  code: FailureCode;
  retry: boolean;
}

/** What becomes of a completion's answer: settled by the reporter. */
interface CompletionOwner {
  answered(job: ClaimedJob, answer: CompleteAnswer | CompleteOutcome): void;
  refused(job: ClaimedJob, error: unknown): void;
}

/**
 * A completion on its way: what is sent, what the worker keeps about it, and
 * (as the completer's waiter, its own item) who gets its answer. One object
 * with a prototype's methods where there were a promise, its reaction, two
 * closures and an entry in a Set per job, while GC took 16% of the worker's
 * busy time in a W3 drain of 10,000 no-op jobs (--cpu-prof).
 */
class Completion implements BatchWaiter<Completion, CompleteAnswer | CompleteOutcome> {
  constructor(
    readonly wire: { id: string; attempt: number; result?: unknown },
    /** Upper bound of the result's JSON size. */
    readonly bytes: number,
    readonly job: ClaimedJob,
    /** The wire is plain JSON (no result, or a string, boolean, null or number other than -0): no superjson walk needed. */
    readonly plain: boolean,
    private readonly owner: CompletionOwner,
  ) {}
  get item(): Completion {
    return this;
  }
  resolve(answer: CompleteAnswer | CompleteOutcome): void {
    this.owner.answered(this.job, answer);
  }
  reject(error: unknown): void {
    this.owner.refused(this.job, error);
  }
}

/** True for a result JSON text carries as superjson would (superjson marks -0, undefined, Dates, and walks objects). */
const isPlainScalar = (value: unknown): boolean =>
  value === null || typeof value === 'string' || typeof value === 'boolean' || (typeof value === 'number' && !Object.is(value, -0));

/** Completions taken to ride with a claim; the claim settles them with its `completed` answer. */
export interface FoldedCompletions {
  wires: Array<Completion['wire']>;
  /** Every wire is plain JSON (see trpc.ts plainJson). */
  plain: boolean;
  settle(outcomes: readonly CompleteOutcome[]): void;
  requeue(): void;
}

/** Sends what became of each attempt: completions in batches, failures one call each, releases at stop. */
export interface Reporter {
  complete(run: Run, result: unknown, bytes: number): void;
  fail(run: Run, failure: Failure): void;
  /** Hands unfinished or never-started jobs back to pending (one try: a release that fails leaves the job to its lease). */
  release(jobs: readonly ClaimedJob[]): Promise<void>;
  /** Completions waiting to be sent, for the claim about to leave; empty when they would make it too large. */
  takeForClaim(): FoldedCompletions;
  /** Resolves when every report made so far has been delivered or given up on. */
  settled(): Promise<void>;
  /** Reports given up on, oldest first. */
  readonly undelivered: readonly UndeliveredReport[];
  /**
   * Jobs whose outcome (completion, failure, release) is on its way in a
   * request of its own: the server still counts them as this worker's until
   * it lands, so the claim loop counts them as held. Completions that ride
   * with a claim are not among them (the claim's statement ends them first).
   */
  readonly onTheWire: number;
}

/** What {@link createReporter} needs. */
export interface ReporterDeps {
  trpc: SkipqTrpc;
  config: WorkerConfig;
  window: DeliveryWindow;
  emit(event: WorkerEvent): void;
  /** A report sent on its own landed (or was given up on): onTheWire went down. */
  landed(): void;
}

type LostReason = 'lease_lost' | 'cancelled' | 'not_found';

function lostReasonOf(error: unknown): LostReason | undefined {
  const code = errorCodeOf(error);
  if (code === 'LEASE_LOST') return 'lease_lost';
  if (code === 'JOB_CANCELLED') return 'cancelled';
  if (code === 'JOB_NOT_FOUND') return 'not_found';
  return undefined;
}

const asError = (error: unknown): Error => (error instanceof Error ? error : new Error(String(error)));

/**
 * True when the server refused the request for what it carried (HTTP 400 or
 * 413): something the worker's own checks let through, e.g. a server whose
 * maxPayloadBytes is below the worker's maxResultBytes. Retrying the same
 * request cannot help; sending its items apart finds the one at fault.
 */
export function isRefusedInput(error: unknown): boolean {
  if (!(error instanceof TRPCClientError)) return false;
  const status = (error.data as { httpStatus?: number } | undefined)?.httpStatus;
  return status === 400 || status === 413;
}

/** A completion the server refused on its own (see isRefusedInput): its job fails with INVALID_RESULT instead. */
class ResultRefusedError extends Error {
  override readonly name = 'ResultRefusedError';
  constructor(readonly refusal: unknown) {
    super('the server refused this result');
  }
}

/** The input, marked as plain JSON when it is (trpc.ts plainJson). */
const plainIf = <T extends object>(plain: boolean, input: T): T => (plain ? plainJson(input) : input);

/** Splits completions into groups of at most REQUEST_BYTES (an item larger than that goes alone). */
function byBytes(items: readonly Completion[]): Array<{ items: Completion[]; bytes: number; start: number }> {
  const groups: Array<{ items: Completion[]; bytes: number; start: number }> = [];
  let current = { items: [] as Completion[], bytes: 0, start: 0 };
  items.forEach((item, i) => {
    if (current.items.length > 0 && current.bytes + item.bytes > REQUEST_BYTES) {
      groups.push(current);
      current = { items: [], bytes: 0, start: i };
    }
    current.items.push(item);
    current.bytes += item.bytes;
  });
  if (current.items.length > 0) groups.push(current);
  return groups;
}

/** Creates the reporter of a worker. */
export function createReporter(deps: ReporterDeps): Reporter {
  const { trpc, config, window, emit, landed } = deps;
  const { workerId } = config;
  const inFlight = new Set<Promise<void>>();
  const undelivered: UndeliveredReport[] = [];
  let onTheWire = 0;

  const track = (promise: Promise<void>): void => {
    inFlight.add(promise);
    void promise.finally(() => inFlight.delete(promise));
  };

  const giveUp = (job: ClaimedJob, kind: UndeliveredReport['kind'], error: unknown): void => {
    undelivered.push({ id: job.id, attempt: job.attempt, kind });
    if (undelivered.length > MAX_UNDELIVERED) undelivered.shift();
    emit({ kind: 'error', error });
  };

  const requestOptions = (alone: boolean) => {
    const signal = window.requestSignal();
    return alone ? { context: ALONE, ...(signal ? { signal } : {}) } : signal ? { signal } : undefined;
  };

  const completer = createBatcher<Completion, CompleteAnswer | CompleteOutcome>({
    maxBatch: LIMITS.workerBatch,
    maxInFlight: 2,
    // A millisecond's grace lets the claim loop, which runs on the next turn,
    // take these completions along with its claim instead of a request of their own.
    delayMs: 1,
    async send(items) {
      const answers: Array<CompleteAnswer | Error> = new Array(items.length);
      const groups = byBytes(items);
      onTheWire += items.length;
      try {
        // Each group stands on its own: one that cannot be delivered fails only its items.
        await Promise.all(
          groups.map(async (group) => {
            const results = await sendGroup(group.items, groups.length > 1 || group.bytes > ALONE_BYTES);
            results.forEach((r, i) => { answers[group.start + i] = r; });
          }),
        );
      } finally {
        onTheWire -= items.length;
        landed();
      }
      return answers;
    },
  });

  /**
   * Sends one group of completions. If the server refuses the request for its
   * content, the halves go apart (each in a request of its own), down to the
   * one item at fault: a refusal costs log2(n) extra requests, never the batch.
   */
  async function sendGroup(items: Completion[], alone: boolean): Promise<Array<CompleteAnswer | Error>> {
    try {
      // A repeated completion of the same attempt is answered "completed"
      // without a second write, so retrying after a lost reply is safe.
      const { results } = await deliver(window, () =>
        trpc.worker.completeMany.mutate(plainIf(items.every((c) => c.plain), { workerId, jobs: items.map((c) => c.wire) }), requestOptions(alone)),
      );
      return results as CompleteAnswer[];
    } catch (error) {
      if (!isRefusedInput(error) || window.retriesOver) return items.map(() => asError(error));
      if (items.length === 1) return [new ResultRefusedError(error)];
      const half = items.length >> 1;
      const [first, second] = await Promise.all([sendGroup(items.slice(0, half), true), sendGroup(items.slice(half), true)]);
      return [...first, ...second];
    }
  }

  const sendFail = async (job: ClaimedJob, failure: Failure): Promise<void> => {
    const policy = config.registry[job.type]?.backoff ?? DEFAULT_BACKOFF;
    const input = {
      workerId,
      id: job.id,
      attempt: job.attempt,
      error: failure.message,
      code: failure.code,
      retry: failure.retry,
      retryDelayMs: backoffDelayMs(policy, job.retryCount),
    };
    let answer: { status: string };
    try {
      answer = await deliver(window, () => trpc.worker.fail.mutate(input, requestOptions(false)));
    } catch (error) {
      const lost = lostReasonOf(error);
      if (lost) return emit({ kind: 'lost', id: job.id, reason: lost });
      // tRPC's batch link sends the failures of a moment in one HTTP request, and
      // a request the server refuses as a whole (too large, unreadable) fails
      // every call in it. Alone, this failure stands or falls by itself.
      if (isTransient(error) || window.retriesOver) return giveUp(job, 'fail', error);
      try {
        answer = await trpc.worker.fail.mutate(input, requestOptions(true));
      } catch (aloneError) {
        const lostAlone = lostReasonOf(aloneError);
        if (lostAlone) return emit({ kind: 'lost', id: job.id, reason: lostAlone });
        return giveUp(job, 'fail', aloneError);
      }
    }
    emit({ kind: 'failed', id: job.id, type: job.type, attempt: job.attempt, error: failure.message, code: failure.code, willRetry: answer.status === 'pending' });
  };

  const onCompleted = (job: ClaimedJob, answer: CompleteAnswer | CompleteOutcome): void => {
    const outcome = typeof answer === 'string' ? answer : answer.outcome;
    if (outcome === 'completed') emit({ kind: 'completed', id: job.id, type: job.type, attempt: job.attempt });
    else if (outcome === 'failed') {
      // The server refused the result and failed the job for good: nothing to retry.
      const error = (typeof answer === 'string' ? undefined : answer.error) ?? 'the server refused the result';
      emit({ kind: 'failed', id: job.id, type: job.type, attempt: job.attempt, error, code: FAILURE_CODES.INVALID_RESULT, willRetry: false });
    } else emit({ kind: 'lost', id: job.id, reason: outcome });
  };

  const owner: CompletionOwner = {
    answered: onCompleted,
    refused(job, error) {
      if (error instanceof ResultRefusedError) {
        track(sendFail(job, { code: FAILURE_CODES.INVALID_RESULT, message: `the server refused the result: ${describeThrown(error.refusal)}`, retry: false }));
      } else giveUp(job, 'complete', error);
    },
  };

  return {
    complete(run, result, bytes) {
      const { job } = run;
      const wire = result === undefined ? { id: job.id, attempt: job.attempt } : { id: job.id, attempt: job.attempt, result };
      completer.enqueue(new Completion(wire, bytes, job, result === undefined || isPlainScalar(result), owner));
    },
    fail(run, failure) {
      onTheWire++;
      track(sendFail(run.job, failure).finally(() => { onTheWire--; landed(); }));
    },
    async release(jobs) {
      onTheWire += jobs.length;
      for (let i = 0; i < jobs.length; i += LIMITS.workerBatch) {
        const chunk = jobs.slice(i, i + LIMITS.workerBatch);
        try {
          await trpc.worker.release.mutate({ workerId, jobs: chunk.map((j) => ({ id: j.id, attempt: j.attempt })) }, requestOptions(false));
        } catch (error) {
          for (const j of chunk) undelivered.push({ id: j.id, attempt: j.attempt, kind: 'release' });
          emit({ kind: 'error', error });
        } finally {
          onTheWire -= chunk.length;
          landed();
        }
      }
    },
    takeForClaim() {
      const taken = completer.takeQueued();
      let bytes = 0;
      for (const c of taken.items) bytes += c.bytes;
      if (bytes > REQUEST_BYTES) {
        // Too much to ride with a claim: the completer sends them in groups of its own.
        taken.requeue();
        return { wires: [], plain: true, settle() {}, requeue() {} };
      }
      return {
        wires: taken.items.map((c) => c.wire),
        plain: taken.items.every((c) => c.plain),
        settle: (outcomes) => taken.settle(outcomes as CompleteOutcome[]),
        requeue: () => taken.requeue(),
      };
    },
    async settled() {
      // A completion the server refuses becomes a failure report (tracked) as its batch lands.
      for (;;) {
        while (inFlight.size > 0) await Promise.all([...inFlight]);
        await completer.drain();
        if (inFlight.size === 0) return;
      }
    },
    get undelivered() {
      return undelivered;
    },
    get onTheWire() {
      return onTheWire;
    },
  };
}
