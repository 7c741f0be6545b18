import { randomUUID } from 'node:crypto';
import { LIMITS } from '../shared/index.js';
import { DONE_CHANNEL, WAITING_CHANNEL } from './channels.js';
import type { Db } from './db/pool.js';

/**
 * Who waits for which job to finish (`jobs.waitFor`), and how a finishing
 * move reaches them.
 *
 * The finishing moves (complete, fail for good, cancel, the rescuer's final
 * fail) call {@link JobWaiters.finished} with the ids they moved. A waiter on
 * this server is woken directly. A waiter on another server is reached by a
 * NOTIFY on `skipq_done` carrying job ids, sent only for jobs that somebody
 * announced (`skipq_waiting`) they wait for:
 *
 *   waitFor on B ──NOTIFY skipq_waiting "B:<id>"──▶ every server remembers <id>
 *   complete on A: A knows <id> is waited for ──NOTIFY skipq_done "<id>,..."──▶ B re-reads
 *
 * Hot-path cost (completions run at 20-30k jobs/s): when nobody waits
 * anywhere, `finished()` is one size check per batch and nothing is sent
 * (bench/waiters.ts: 0.4 ns of CPU per finished id); with waiters, two Map
 * lookups per finished id (about 95 ns with 1,000 jobs awaited elsewhere:
 * 2.4 ms of CPU a second at 25k completions/s), and one `pg_notify`
 * statement (after the move's commit, outside it, not awaited by the
 * worker's call) per batch that holds a waited job. Each waiter costs one
 * `skipq_waiting` NOTIFY per long-poll (at most one per LIMITS.maxWaitMs). Rejected: a NOTIFY per batch from inside the
 * move functions (every completion batch would pay it, and a NOTIFY in each
 * commit serialises commits: measured on this machine it halves insert
 * throughput), and a waiters table read by every completion (a second
 * statement per batch, waited for or not).
 *
 * What the announcements cannot cover: a server that (re)connected its LISTEN
 * after a waiter's announcement, a completion committed while the
 * announcement was still on its way, and the unfenced SQL API
 * (`complete_task` from psql or Go). Each waiter also re-reads its job every
 * `pollIntervalMs`, so those are found within one poll: bounded, like claims.
 */
export interface JobWaiters {
  /**
   * Registers interest in a job before its first read (so a finish between
   * the read and the wait is not lost) and tells the other servers.
   */
  watch(id: string): Promise<JobWatch>;
  /** The ids a finishing move of this server just moved into completed, failed or cancelled. */
  finished(ids: Iterable<string>): void;
  /** The LISTEN channels this room hears, for the notify hub. */
  readonly channels: Readonly<Record<string, (payload: string) => void>>;
  /** LISTEN (re)connected: notifications sent meanwhile are gone, so every waiter looks once. */
  onListening(): void;
  /** Releases every waiter and stops the pruning timer. */
  close(): void;
}

/** One waiter's registration; re-armed after each wake-up until cancelled. */
export interface JobWatch {
  /** Resolves on a wake-up (one that came since the last wait counts), after `timeoutMs`, or on abort. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  cancel(): void;
}

interface Waiter {
  woken: boolean;
  resolve: (() => void) | undefined;
}

// A remote announcement is remembered this long: one waitFor long-poll at most
// (LIMITS.maxWaitMs), plus slack for clock and delivery; each long-poll of a
// longer client wait announces again.
const REMEMBER_MS = LIMITS.maxWaitMs + 5_000;
// Ids per skipq_done NOTIFY: a UUID and a comma are 37 bytes, a payload must stay under 8000.
const IDS_PER_NOTIFY = 200;

/** Creates the room. `db` sends the NOTIFYs (announcements and done). */
export function createJobWaiters(db: Db, log: (message: string) => void = () => {}): JobWaiters {
  const serverId = randomUUID();
  const local = new Map<string, Set<Waiter>>();
  // Job ids other servers wait for -> until when (ms since epoch).
  const remote = new Map<string, number>();
  let closed = false;

  const fire = (waiter: Waiter): void => {
    waiter.woken = true;
    const resolve = waiter.resolve;
    waiter.resolve = undefined;
    resolve?.();
  };
  const wakeLocal = (id: string): void => {
    const set = local.get(id);
    if (set) for (const w of set) fire(w);
  };

  const prune = setInterval(() => {
    const now = Date.now();
    for (const [id, until] of remote) if (until < now) remote.delete(id);
  }, 10_000);
  prune.unref();

  const notifyDone = (ids: string[]): void => {
    for (let i = 0; i < ids.length; i += IDS_PER_NOTIFY) {
      db.query('SELECT pg_notify($1, $2)', [DONE_CHANNEL, ids.slice(i, i + IDS_PER_NOTIFY).join(',')]).catch((error: unknown) =>
        log(`skipq_done NOTIFY failed (remote waiters fall back to polling): ${(error as Error).message}`),
      );
    }
  };

  return {
    async watch(id) {
      const waiter: Waiter = { woken: closed, resolve: undefined };
      let set = local.get(id);
      if (!set) local.set(id, (set = new Set()));
      set.add(waiter);
      const cancel = (): void => {
        const s = local.get(id);
        s?.delete(waiter);
        if (s?.size === 0) local.delete(id);
        fire(waiter);
      };
      try {
        // Awaited, so the announcement is committed before the waiter's first read.
        await db.query('SELECT pg_notify($1, $2)', [WAITING_CHANNEL, `${serverId}:${id}`]);
      } catch (error) {
        log(`skipq_waiting NOTIFY failed (this waiter polls): ${(error as Error).message}`);
      }
      return {
        wait(timeoutMs, signal) {
          if (waiter.woken || closed || timeoutMs <= 0 || signal?.aborted) {
            waiter.woken = false;
            return Promise.resolve();
          }
          return new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              signal?.removeEventListener('abort', done);
              waiter.resolve = undefined;
              waiter.woken = false;
              resolve();
            };
            const timer = setTimeout(done, timeoutMs);
            signal?.addEventListener('abort', done, { once: true });
            waiter.resolve = done;
          });
        },
        cancel,
      };
    },

    finished(ids) {
      // The hot path when nobody waits: nothing else runs.
      if (local.size === 0 && remote.size === 0) return;
      let tell: string[] | undefined;
      for (const id of ids) {
        wakeLocal(id);
        if (remote.delete(id)) (tell ??= []).push(id);
      }
      if (tell) notifyDone(tell);
    },

    channels: {
      [WAITING_CHANNEL]: (payload) => {
        const at = payload.indexOf(':');
        if (at < 0 || payload.slice(0, at) === serverId) return;
        remote.set(payload.slice(at + 1), Date.now() + REMEMBER_MS);
      },
      [DONE_CHANNEL]: (payload) => {
        if (local.size === 0) return;
        for (const id of payload.split(',')) wakeLocal(id);
      },
    },

    onListening() {
      for (const set of local.values()) for (const w of set) fire(w);
    },

    close() {
      closed = true;
      clearInterval(prune);
      for (const set of local.values()) for (const w of set) fire(w);
    },
  };
}
