import { randomUUID } from 'node:crypto';
import { tracked, type TrackedEnvelope } from '@trpc/server';
import { ERROR_CODES, type JobEvent, type JobEventKind, type JobStatus } from '../shared/index.js';
import { EVENTS_CHANNEL } from './channels.js';
import type { Db } from './db/pool.js';
import { QueueError, toQueueError, toTRPCError } from './errors.js';
import { eventsHorizon, eventsListen, eventsPrune, eventsPrunedThrough, eventsRead, eventsStart, type EventCursor, type EventFilter, type EventRow } from './queries/events.js';

/**
 * Live events (events.jobs): who subscribes on this server, and how the
 * event log reaches them.
 *
 *   move on any server ──trigger──▶ job_events row ──NOTIFY skipq_events ""──▶ every server
 *   subscriber on B: reads job_events past its cursor (its own filters, in SQL)
 *
 * The log is written only while some server has a row in job_event_listeners
 * that is still live: this room refreshes its row while it holds a
 * subscriber, and lets it run out `resumeWindowMs` after the last one left
 * (a subscriber that reconnects within that window with its lastEventId loses
 * nothing). Nobody subscribing: no row is written, no NOTIFY sent.
 *
 * Cost of the triggers, measured in one sitting on a private database
 * (bench/eventsCost.ts 20000 5 1: claim + complete 20,000 jobs in batches of
 * 50 through skipq_claim and skipq_complete, one connection, 5 rounds, the
 * variants interleaved; on this 2-core machine while other sessions loaded
 * it, so round times swung 3x: the median batch is the steadier figure):
 *   triggers absent ........................ 16.16 ms a batch (3,095 jobs/s)
 *   present, nobody subscribes ............. 17.39 ms (+7.7 %)
 *   present, one listener (all logged) ..... 20.33 ms (+25.8 %; 60,000 events a round)
 *   rejected: row-level trigger, idle ...... 21.49 ms (+33 %)
 * A row-level trigger whose body returns at once unless a listener is live
 * pays a PL/pgSQL call per job and move; these statement-level ones pay one
 * per statement (per 50 jobs) plus the copy of each changed row into the
 * statement's transition tables. That copy is paid even while nobody
 * listens (and even by a disabled trigger): `npm run bench` W3 on a quiet
 * machine gave 10,717-12,915 jobs/s with the idle triggers against 13,178
 * with them dropped. So the triggers exist only while a listener row is live
 * (skipq_events_arm / skipq_events_disarm in the events migration).
 *
 * Ordering: one job's events arrive in the order they happened; events of
 * different jobs arrive in key order (see the migration). Delivery waits
 * until every writer of task_queue that could still commit an event below it
 * has ended: a long transaction around an enqueue delays events (never loses them).
 */
export interface EventsRoom {
  /**
   * Starts a subscription: registers this server as a listener (awaited, so
   * every move that starts after this resolves is logged) and checks the
   * cursor. Throws EVENTS_LOST when events after `lastEventId` are gone.
   */
  open(filter: EventFilter, lastEventId: string | null | undefined): Promise<Subscription>;
  /** The LISTEN channels this room hears, for the notify hub. */
  readonly channels: Readonly<Record<string, (payload: string) => void>>;
  /** LISTEN (re)connected: notifications sent meanwhile are gone, so every subscriber reads once. */
  onListening(): void;
  /** Subscribers on this server now. */
  readonly subscribers: number;
  /** Deletes events past the retention in bounded batches; answers how many went. */
  prune(): Promise<number>;
  /** Ends every subscription (they end with SHUTTING_DOWN, so clients reconnect elsewhere) and stops the timers. */
  close(): void;
}

/** One subscriber's stream. */
export interface Subscription {
  /** The events, each tracked by its key (tRPC sends it as the SSE id). Ends when `signal` aborts or the room closes. */
  events(signal: AbortSignal | undefined): AsyncGenerator<TrackedEnvelope<JobEvent>>;
}

/** Options of {@link createEventsRoom}. */
export interface EventsRoomOptions {
  db: Db;
  /** How long events keep being logged after the last subscriber left (the resume window). Default 120 000. */
  resumeWindowMs?: number;
  /** How long logged events are kept (at least the resume window). Default 600 000. */
  retentionMs?: number;
  /** How often a subscriber reads when no NOTIFY came (a lost LISTEN, a missed wake-up). Default 1000. */
  pollIntervalMs?: number;
  /** How often this server prunes the log (0: never; tests prune by hand). Default 10 000. */
  pruneIntervalMs?: number;
  log?: (message: string) => void;
}

// Events read per statement.
const PAGE = 500;
// Pruning: rows per statement, statements per run (500,000 rows a run at most).
const PRUNE_BATCH = 5_000;
const PRUNE_BATCHES = 100;
// A subscriber whose read found events not yet deliverable (an older
// transaction still open) reads again after this long.
const HELD_RETRY_MS = 15;

const EVENT_ID = /^(\d{1,20}):(\d{1,19})$/;

/** `<tx>:<seq>`, the SSE id of an event. */
export const formatEventId = (c: EventCursor): string => `${c.tx}:${c.seq}`;

function parseEventId(id: string): EventCursor {
  const m = EVENT_ID.exec(id);
  if (!m) throw new QueueError(ERROR_CODES.INVALID_INPUT, `lastEventId ${JSON.stringify(id)} is not an event id from events.jobs (<tx>:<seq>)`);
  return { tx: m[1] as string, seq: m[2] as string };
}

const compare = (a: EventCursor, b: EventCursor): number => {
  const tx = BigInt(a.tx) - BigInt(b.tx);
  if (tx !== 0n) return tx < 0n ? -1 : 1;
  const seq = BigInt(a.seq) - BigInt(b.seq);
  return seq === 0n ? 0 : seq < 0n ? -1 : 1;
};

function toEvent(row: EventRow): JobEvent {
  return {
    id: row.job_id as string,
    type: row.task_type as string,
    queue: row.queue as string,
    // A status added after this version arrives as its own kind.
    kind: row.kind as JobEventKind,
    status: row.status as JobStatus,
    attempt: row.attempt ?? 0,
    ...(row.progress !== null && row.progress !== undefined ? { progress: row.progress } : {}),
    ...(row.error !== null ? { error: row.error } : {}),
    at: new Date(row.at as string),
  };
}

interface Waiter {
  woken: boolean;
  resolve: (() => void) | undefined;
}

/** Creates the room. Nothing is written to the database until the first subscriber. */
export function createEventsRoom(options: EventsRoomOptions): EventsRoom {
  const { db } = options;
  const log = options.log ?? (() => {});
  const serverId = randomUUID();
  const resumeWindowMs = options.resumeWindowMs ?? 120_000;
  const retentionMs = Math.max(options.retentionMs ?? 600_000, resumeWindowMs);
  const pollIntervalMs = options.pollIntervalMs ?? 1000;
  // The listener row is refreshed well before it would run out.
  const refreshMs = Math.max(50, Math.floor(resumeWindowMs / 3));
  const waiters = new Set<Waiter>();
  const closing = new AbortController();
  let subscribers = 0;
  let registered: Promise<void> | undefined;
  let registeredAt = 0;
  let refresher: NodeJS.Timeout | undefined;

  const wakeAll = (): void => {
    for (const w of waiters) {
      w.woken = true;
      const resolve = w.resolve;
      w.resolve = undefined;
      resolve?.();
    }
  };

  const register = (): Promise<void> => {
    const fresh = registered && Date.now() - registeredAt < refreshMs;
    if (fresh) return registered as Promise<void>;
    registeredAt = Date.now();
    const attempt = eventsListen(db, { serverId, liveMs: resumeWindowMs }).then(() => undefined);
    registered = attempt;
    attempt.catch(() => {
      if (registered === attempt) registered = undefined;
    });
    return attempt;
  };

  const startRefreshing = (): void => {
    if (refresher) return;
    refresher = setInterval(() => {
      if (subscribers === 0) {
        // The row runs out by itself, resumeWindowMs after the last refresh.
        clearInterval(refresher);
        refresher = undefined;
        return;
      }
      registeredAt = 0;
      register().catch((error: unknown) => log(`events: refreshing the listener row failed (${(error as Error).message}); retrying`));
    }, refreshMs);
    refresher.unref();
  };

  const pruneOnce = async (): Promise<number> => {
    let total = 0;
    for (let i = 0; i < PRUNE_BATCHES; i++) {
      const n = await eventsPrune(db, { keepMs: retentionMs, limit: PRUNE_BATCH });
      total += n;
      if (n < PRUNE_BATCH) break;
    }
    return total;
  };
  const pruneIntervalMs = options.pruneIntervalMs ?? 10_000;
  const pruner =
    pruneIntervalMs > 0
      ? setInterval(() => {
          pruneOnce().catch((error: unknown) => log(`events: pruning failed (${(error as Error).message})`));
        }, pruneIntervalMs).unref()
      : undefined;

  const lost = (message: string): QueueError => new QueueError(ERROR_CODES.EVENTS_LOST, message);

  return {
    get subscribers() {
      return subscribers;
    },
    channels: {
      [EVENTS_CHANNEL]: () => wakeAll(),
    },
    onListening: wakeAll,
    prune: pruneOnce,

    async open(filter, lastEventId) {
      if (closing.signal.aborted) throw new QueueError(ERROR_CODES.SHUTTING_DOWN, 'the server is shutting down');
      const resume = lastEventId ? parseEventId(lastEventId) : null;
      // Counted only once its stream runs (a stream that never starts never
      // ends either); the registration below holds for refreshMs meanwhile.
      await register();
      let cursor: EventCursor;
      if (resume) {
        const pruned = await eventsPrunedThrough(db);
        if (compare(resume, pruned) < 0) {
          throw lost(`events after ${lastEventId} were pruned (the log keeps ${retentionMs} ms); re-read the jobs and subscribe without lastEventId`);
        }
        cursor = resume;
      } else {
        cursor = await eventsStart(db);
      }

      return {
        async *events(signal) {
          const waiter: Waiter = { woken: false, resolve: undefined };
          waiters.add(waiter);
          subscribers++;
          startRefreshing();
          const stop = (): void => {
            waiter.woken = true;
            waiter.resolve?.();
          };
          signal?.addEventListener('abort', stop, { once: true });
          closing.signal.addEventListener('abort', stop, { once: true });
          try {
            while (!signal?.aborted) {
              if (closing.signal.aborted) throw toTRPCError(new QueueError(ERROR_CODES.SHUTTING_DOWN, 'the server is shutting down; reconnect with lastEventId'));
              waiter.woken = false;
              let page;
              try {
                const horizon = await eventsHorizon(db);
                page = await eventsRead(db, { after: cursor, horizon, filter, limit: PAGE });
              } catch (error) {
                const domain = toQueueError(error);
                throw domain ? toTRPCError(domain) : error;
              }
              for (const row of page.events) {
                const key = { tx: row.tx, seq: row.seq };
                if (row.kind === 'gap') {
                  throw toTRPCError(lost(`events after ${formatEventId(cursor)} may be missing: no server listened for longer than the resume window (${resumeWindowMs} ms); re-read the jobs and subscribe without lastEventId`));
                }
                cursor = key;
                yield tracked(formatEventId(key), toEvent(row));
              }
              if (page.last) cursor = page.last;
              if (page.scanned >= PAGE) continue;
              if (waiter.woken) continue;
              await new Promise<void>((resolve) => {
                const timer = setTimeout(done, page.held ? HELD_RETRY_MS : pollIntervalMs);
                function done(): void {
                  clearTimeout(timer);
                  waiter.resolve = undefined;
                  resolve();
                }
                waiter.resolve = done;
              });
            }
          } finally {
            waiters.delete(waiter);
            signal?.removeEventListener('abort', stop);
            closing.signal.removeEventListener('abort', stop);
            subscribers--;
          }
        },
      };
    },

    close() {
      closing.abort();
      clearInterval(refresher);
      clearInterval(pruner);
      wakeAll();
    },
  };
}
