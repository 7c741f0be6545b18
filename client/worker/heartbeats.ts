import { LIMITS } from '../../shared/limits.js';
import type { HeartbeatAnswer } from '../../shared/index.js';
import { ALONE, type SkipqTrpc } from '../trpc.js';
import type { WorkerConfig } from './config.js';
import { checkJsonValue } from './jsonValue.js';
import { describeThrown } from './describeError.js';
import { ALONE_BYTES, isRefusedInput, REQUEST_BYTES } from './reporting.js';
import type { Progress, Run } from './run.js';
import type { WorkerEvent } from './types.js';

/** Extends the leases of running jobs every leaseMs/3 and carries their progress. */
export interface Heartbeats {
  start(): void;
  stop(): void;
}

/** What {@link createHeartbeats} needs. */
export interface HeartbeatDeps {
  trpc: SkipqTrpc;
  config: WorkerConfig;
  /** Runs holding a slot now (settled runs are gone: a job past its timeout is never heartbeated). */
  runs(): Iterable<Run>;
  abandon(id: string, reason: 'lease_lost' | 'cancelled'): void;
  emit(event: WorkerEvent): void;
}

/** Beats in flight at once: three beats span one lease. */
const MAX_BEATS_IN_FLIGHT = 3;

interface Beat {
  run: Run;
  /** The progress record sent, if any: cleared on delivery unless a newer value replaced it. */
  progress: Progress | undefined;
}

/** Today's server answers without `rejected`; the shared contract has it. */
type Answer = Pick<HeartbeatAnswer, 'lost' | 'cancelled'> & Partial<Pick<HeartbeatAnswer, 'rejected'>>;

/**
 * Creates the heartbeats. Each request stands on its own: one that fails
 * (server down, request timeout) abandons nothing, the next beat tries again
 * with the lease still running; only an answer naming a job lost or cancelled
 * gives it up. A beat that hangs does not hold back the next (another
 * connection may get through before the lease runs out), but at most a lease's
 * worth of beats are in flight: a server that answers nothing does not collect
 * a request every leaseMs/3 until each times out.
 */
export function createHeartbeats(deps: HeartbeatDeps): Heartbeats {
  const { trpc, config, runs, abandon, emit } = deps;
  let timer: NodeJS.Timeout | undefined;
  let beating = 0;

  const reject = (run: Run, error: string): void => {
    emit({ kind: 'progress_rejected', id: run.job.id, type: run.job.type, attempt: run.job.attempt, error });
  };

  /** The progress to send with this beat; re-checked here, as the handler may have changed the object since. */
  const progressOf = (run: Run): { record: Progress; bytes: number } | undefined => {
    const record = run.progress;
    if (!record?.dirty) return undefined;
    const check = checkJsonValue(record.value, config.maxResultBytes);
    if (check.ok) return { record, bytes: check.bytes };
    run.progress = undefined;
    reject(run, `progress changed after ctx.progress() into something that cannot be stored: ${check.message}`);
    return undefined;
  };

  const send = async (beats: Beat[], bytes: number): Promise<void> => {
    const jobs = beats.map(({ run, progress }) =>
      progress ? { id: run.job.id, attempt: run.job.attempt, progress: progress.value } : { id: run.job.id, attempt: run.job.attempt },
    );
    let answer: Answer;
    try {
      answer = await trpc.worker.heartbeat.mutate({ workerId: config.workerId, leaseMs: config.leaseMs, jobs }, bytes > ALONE_BYTES ? { context: ALONE } : undefined);
    } catch (error) {
      if (isRefusedInput(error)) return refused(beats, error);
      emit({ kind: 'error', error });
      return;
    }
    for (const { run, progress } of beats) if (progress && run.progress === progress) progress.dirty = false;
    if (answer.rejected?.length) {
      const byId = new Map(beats.map((b) => [b.run.job.id, b]));
      for (const { id, error } of answer.rejected) {
        const beat = byId.get(id);
        if (!beat) continue;
        // Not sent again: the server would refuse it again. Reported once, by
        // the beat that drops it (an overlapping beat may have carried it too).
        if (beat.run.progress !== beat.progress) continue;
        beat.run.progress = undefined;
        reject(beat.run, error);
      }
    }
    for (const id of answer.lost) abandon(id, 'lease_lost');
    for (const id of answer.cancelled) abandon(id, 'cancelled');
  };

  /**
   * The server refused the whole heartbeat for what it carried: a progress
   * value the worker's check let through (a server with a lower limit). The
   * halves go apart down to the one progress at fault, which is dropped; the
   * leases are extended all the same.
   */
  const refused = async (beats: Beat[], error: unknown): Promise<void> => {
    const carrying = beats.filter((b) => b.progress);
    if (carrying.length === 0) return emit({ kind: 'error', error });
    if (carrying.length === 1) {
      const [beat] = carrying as [Beat];
      if (beat.run.progress === beat.progress) {
        beat.run.progress = undefined;
        reject(beat.run, `the server refused the heartbeat carrying this progress: ${describeThrown(error)}`);
      }
      return send(beats.map((b) => (b === beat ? { run: b.run, progress: undefined } : b)), 0);
    }
    const half = beats.length >> 1;
    await send(beats.slice(0, half), REQUEST_BYTES);
    await send(beats.slice(half), REQUEST_BYTES);
  };

  const beat = async (): Promise<void> => {
    let chunk: Beat[] = [];
    let bytes = 0;
    for (const run of runs()) {
      if (run.settled) continue;
      const progress = progressOf(run);
      const size = (progress?.bytes ?? 0) + 100;
      if (chunk.length > 0 && (chunk.length >= LIMITS.workerBatch || bytes + size > REQUEST_BYTES)) {
        await send(chunk, bytes);
        chunk = [];
        bytes = 0;
      }
      chunk.push({ run, progress: progress?.record });
      bytes += size;
    }
    if (chunk.length > 0) await send(chunk, bytes);
  };

  return {
    start() {
      timer ??= setInterval(() => {
        if (beating >= MAX_BEATS_IN_FLIGHT) return;
        beating++;
        beat().finally(() => { beating--; });
      }, Math.max(50, Math.floor(config.leaseMs / 3)));
    },
    stop() {
      clearInterval(timer);
    },
  };
}
