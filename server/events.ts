import { randomUUID } from 'node:crypto';
import { tracked, type TrackedEnvelope } from '@trpc/server';
import { ERROR_CODES, type JobEvent, type JobEventKind, type JobStatus } from '../shared/index.js';
import { EVENTS_CHANNEL } from './channels.js';
import type { Db } from './db/pool.js';
import { QueueError, toQueueError, toTRPCError } from './errors.js';
import { eventsHorizon, eventsListen, eventsPrune, eventsPrunedThrough, eventsRead, eventsStart, type EventCursor, type EventFilter, type EventPage, type EventRow } from './queries/events.js';

/**
 * Live events (events.jobs): who subscribes on this server, and how the
 * event log reaches them.
 *
 *   move on any server ──trigger──▶ job_events row ──NOTIFY skipq_events ""──▶ every server
 *   on B: one reader reads each new page of job_events once ──▶ every joined
 *         subscriber (filtered in memory: ids, queues, types, the key's queues)
 *
 * One read per wake-up, whatever the number of subscribers: the reader keeps
 * the shared cursor (`head`) and the events of its last pages (the ring). A
 * subscriber that starts behind (resuming with lastEventId, or started while
 * the reader was elsewhere) catches up by its own reads, with its filters in
 * SQL, until its cursor is within the ring; then it joins and takes what it
 * lacks from the ring and the rest from the reader.
 *
 * Measured with `npx tsx bench/run.ts --only W3-SUB10 --systems skipq
 * --rounds 1` (10 subscribers of the bench queue, 10,000 jobs; this 2-core
 * machine 95-100% busy with other sessions, so one round each, alternated):
 * with a read per subscriber 912-1,148 jobs/s, 464-499 ms of server CPU per
 * 1,000 jobs, each subscriber 8,000-10,000 events behind 30,000 at the end;
 * with this reader (pings off, as before) 810 jobs/s, 623 ms, each
 * subscriber 12,259 events. The database reads fewer times, but the
 * subscribers keep up better, and streaming each event to each subscriber
 * (superjson, tRPC's SSE) is what costs this process its CPU, taken from the
 * worker on two cores. With tRPC's pings on, see server/trpc.ts.
 *
 * Backpressure: tRPC pulls each event from a subscriber's generator only when
 * its SSE response has room (node's res.write/drain), so a subscriber that
 * stops reading stops pulling. The reader never waits for one: it appends to
 * the subscriber's inbox, and an inbox already holding INBOX events detaches
 * its subscriber, which drops that page and, once it is read again, catches
 * up by its own reads from where its inbox ended. So a stalled subscriber
 * costs this server at most INBOX events (plus what its socket buffers) and
 * slows nobody; it loses nothing unless it stays stalled longer than the
 * log's retention (`retentionMs`), and then gets EVENTS_LOST.
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
  /** LISTEN (re)connected: notifications sent meanwhile are gone, so the reader and every catching-up subscriber read once. */
  onListening(): void;
  /** Subscribers on this server now. */
  readonly subscribers: number;
  /** What this room holds now (tests and metrics: memory stays bounded). */
  stats(): EventsRoomStats;
  /** Deletes events past the retention in bounded batches; answers how many went. */
  prune(): Promise<number>;
  /** Ends every subscription (they end with SHUTTING_DOWN, so clients reconnect elsewhere) and stops the timers. */
  close(): void;
}

/** What {@link EventsRoom.stats} answers. */
export interface EventsRoomStats {
  /** Subscribers fed by the shared reader. */
  joined: number;
  /** Subscribers catching up by their own reads (resuming, or detached for being slow). */
  catchingUp: number;
  /** Events held in memory: the ring plus every subscriber's inbox. */
  bufferedEvents: number;
  /** Statements the shared reader has run (a horizon and a page each). */
  sharedReads: number;
  /** Page reads subscribers have run on their own (catching up). */
  ownReads: number;
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
  /** How often the reader reads when no NOTIFY came (a lost LISTEN, a missed wake-up). Default 1000. */
  pollIntervalMs?: number;
  /** How often this server prunes the log (0: never; tests prune by hand). Default 10 000. */
  pruneIntervalMs?: number;
  log?: (message: string) => void;
}

// Events read per statement.
const PAGE = 500;
// Events of the reader's last pages kept for subscribers that join (all of
// them, unfiltered): a subscriber whose own reads got within this many events
// of the head joins without another read.
const RING = 2 * PAGE;
// Events a joined subscriber may hold that tRPC has not pulled yet; one more
// detaches it (see the top of this file). Two pages: a subscriber that keeps
// up with its socket never comes near it, and 1,000 events are about 0.5 MB.
const INBOX = 2 * PAGE;
// Pruning: rows per statement, statements per run (500,000 rows a run at most).
const PRUNE_BATCH = 5_000;
const PRUNE_BATCHES = 100;
// A read that found events not yet deliverable (an older transaction still
// open) is followed by another after this long.
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

const later = (a: EventCursor, b: EventCursor): EventCursor => (compare(a, b) >= 0 ? a : b);

/**
 * The cursor after a read from `before`: its last key, or, when it read
 * everything deliverable (fewer than PAGE), the horizon itself: every event
 * keyed below it was scanned (seq starts at 1, so (horizon, 0) precedes them
 * all). Without this a reader that scanned nothing never moved, and one that
 * had to reach another's cursor across a stretch without events never could.
 */
function advance(before: EventCursor, page: EventPage, horizon: string): EventCursor {
  const last = page.last ? later(page.last, before) : before;
  return page.scanned < PAGE ? later(last, { tx: horizon, seq: '0' }) : last;
}

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

/** Something that sleeps until woken (or until a timer runs out). */
interface Sleeper {
  woken: boolean;
  resolve: (() => void) | undefined;
}

function wake(s: Sleeper): void {
  s.woken = true;
  const resolve = s.resolve;
  s.resolve = undefined;
  resolve?.();
}

/** Sleeps until woken, or `ms` (null: no timer). Returns at once when woken meanwhile. */
function sleep(s: Sleeper, ms: number | null): Promise<void> {
  if (s.woken) return Promise.resolve();
  return new Promise<void>((resolve) => {
    const timer = ms === null ? undefined : setTimeout(done, ms);
    function done(): void {
      clearTimeout(timer);
      s.resolve = undefined;
      resolve();
    }
    s.resolve = done;
  });
}

/** One subscriber, as the reader sees it. */
interface Member extends Sleeper {
  readonly filter: EventFilter;
  readonly ids: ReadonlySet<string> | null;
  readonly queues: ReadonlySet<string> | null;
  readonly types: ReadonlySet<string> | null;
  /** Every matching event up to here is in the inbox or sent. */
  cursor: EventCursor;
  /** Fed by the reader; false: catching up by its own reads. */
  joined: boolean;
  /** Its own last read reached the end of what was deliverable (it may join). */
  caughtUp: boolean;
  /** Events matched but not yet pulled by tRPC, in key order. */
  inbox: EventRow[];
}

const matches = (m: Member, row: EventRow): boolean =>
  row.kind === 'gap' ||
  ((m.ids === null || m.ids.has(row.job_id as string)) && (m.queues === null || m.queues.has(row.queue as string)) && (m.types === null || m.types.has(row.task_type as string)));

const ALL: EventFilter = Object.freeze({ ids: null, queues: null, types: null });

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
  const members = new Set<Member>();
  const closing = new AbortController();
  let registered: Promise<void> | undefined;
  let registeredAt = 0;
  let refresher: NodeJS.Timeout | undefined;
  let sharedReads = 0;
  let ownReads = 0;

  // The shared reader: `head` is its cursor (null while it is not running),
  // `ring` the events of its last pages, every event in (ringFrom, head].
  const reader: Sleeper = { woken: false, resolve: undefined };
  let readerRunning = false;
  let head: EventCursor | null = null;
  let ringFrom: EventCursor | null = null;
  let ring: EventRow[] = [];

  const someJoined = (): boolean => {
    for (const m of members) if (m.joined) return true;
    return false;
  };

  const wakeAll = (): void => {
    wake(reader);
    for (const m of members) if (!m.joined) wake(m);
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
      if (members.size === 0) {
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

  /** Hands one page of the reader to every joined member; a member whose inbox is full is detached. */
  const fanOut = (page: EventPage, horizon: string): void => {
    // The page starts after `head`: only a member that joined ahead of it (a
    // new one, at its own start) compares keys; the rest take every match.
    // Comparing every key for every member cost 4 BigInt parses an event each.
    const ahead = new Set<Member>();
    for (const m of members) if (m.joined && compare(m.cursor, head as EventCursor) > 0) ahead.add(m);
    for (const row of page.events) {
      const key = { tx: row.tx, seq: row.seq };
      ring.push(row);
      for (const m of members) {
        if (!m.joined || !matches(m, row)) continue;
        if (ahead.size > 0 && ahead.has(m)) {
          if (compare(key, m.cursor) <= 0) continue;
          ahead.delete(m);
        }
        if (m.inbox.length >= INBOX) {
          // Slow: it reads the rest itself once tRPC pulls again; its cursor stays at its last event.
          m.joined = false;
          m.caughtUp = false;
          continue;
        }
        m.inbox.push(row);
        m.cursor = key;
      }
    }
    head = advance(head as EventCursor, page, horizon);
    if (ring.length > RING) {
      const dropped = ring.splice(0, ring.length - RING);
      const last = dropped[dropped.length - 1] as EventRow;
      ringFrom = { tx: last.tx, seq: last.seq };
    }
    for (const m of members) {
      if (m.joined && head) m.cursor = later(m.cursor, head);
      // Joined ones have news; catching-up ones may now join.
      wake(m);
    }
  };

  /** Joins `m` when its cursor is within the ring: it takes the ring's events past its cursor. */
  const tryJoin = (m: Member): boolean => {
    if (head === null || ringFrom === null || compare(m.cursor, ringFrom) < 0) return false;
    for (const row of ring) {
      const key = { tx: row.tx, seq: row.seq };
      if (compare(key, m.cursor) > 0 && matches(m, row)) {
        m.inbox.push(row);
        m.cursor = key;
      }
    }
    m.cursor = later(m.cursor, head);
    m.joined = true;
    wake(reader);
    return true;
  };

  /** Reads while anyone subscribes: one horizon and one page a wake-up, for all of them. */
  const runReader = async (): Promise<void> => {
    readerRunning = true;
    try {
      while (members.size > 0 && !closing.signal.aborted) {
        reader.woken = false;
        let page: EventPage;
        let horizon: string;
        try {
          if (head === null) {
            head = await eventsStart(db);
            ringFrom = head;
            ring = [];
            for (const m of members) wake(m);
          }
          // Nobody to feed (every subscriber is catching up on its own, e.g.
          // all slower than the events): no read until one joins (tryJoin wakes it).
          if (!someJoined()) {
            await sleep(reader, null);
            continue;
          }
          horizon = await eventsHorizon(db);
          page = await eventsRead(db, { after: head, horizon, filter: ALL, limit: PAGE });
          sharedReads++;
        } catch (error) {
          // Its members catch up by their own reads, which fail (to their clients) if the database stays away.
          log(`events: the shared read failed (${(error as Error).message}); subscribers read on their own meanwhile`);
          for (const m of members) {
            m.joined = false;
            m.caughtUp = false;
            wake(m);
          }
          head = null;
          await sleep(reader, pollIntervalMs);
          continue;
        }
        fanOut(page, horizon);
        if (page.scanned >= PAGE) continue;
        await sleep(reader, page.held ? HELD_RETRY_MS : pollIntervalMs);
      }
    } finally {
      readerRunning = false;
      head = null;
      ringFrom = null;
      ring = [];
    }
  };

  const ensureReader = (): void => {
    if (readerRunning) wake(reader);
    else {
      // Not expected (database errors are caught inside); its members then read on their own.
      runReader().catch((error: unknown) => {
        log(`events: the shared reader stopped (${(error as Error).message}); subscribers read on their own until the next one starts it`);
        for (const m of members) {
          m.joined = false;
          m.caughtUp = false;
          wake(m);
        }
      });
    }
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
  const prunedLost = (after: EventCursor): QueueError =>
    lost(`events after ${formatEventId(after)} were pruned (the log keeps ${retentionMs} ms); re-read the jobs and subscribe without lastEventId`);

  /** One page of `m`'s own read (its filters in SQL), into its inbox; EVENTS_LOST when pruning passed its cursor. */
  const readOwn = async (m: Member): Promise<void> => {
    const before = m.cursor;
    const horizon = await eventsHorizon(db);
    const page = await eventsRead(db, { after: before, horizon, filter: m.filter, limit: PAGE });
    ownReads++;
    // A subscriber that stopped reading for longer than the log keeps its events.
    if (compare(await eventsPrunedThrough(db), before) > 0) throw prunedLost(before);
    m.inbox.push(...page.events);
    m.cursor = advance(before, page, horizon);
    m.caughtUp = page.scanned < PAGE;
  };

  return {
    get subscribers() {
      return members.size;
    },
    channels: {
      [EVENTS_CHANNEL]: () => wakeAll(),
    },
    onListening: wakeAll,
    prune: pruneOnce,
    stats() {
      let joined = 0;
      let bufferedEvents = ring.length;
      for (const m of members) {
        if (m.joined) joined++;
        bufferedEvents += m.inbox.length;
      }
      return { joined, catchingUp: members.size - joined, bufferedEvents, sharedReads, ownReads };
    },

    async open(filter, lastEventId) {
      if (closing.signal.aborted) throw new QueueError(ERROR_CODES.SHUTTING_DOWN, 'the server is shutting down');
      const resume = lastEventId ? parseEventId(lastEventId) : null;
      // Counted only once its stream runs (a stream that never starts never
      // ends either); the registration below holds for refreshMs meanwhile.
      await register();
      let cursor: EventCursor;
      if (resume) {
        if (compare(resume, await eventsPrunedThrough(db)) < 0) throw prunedLost(resume);
        cursor = resume;
      } else {
        cursor = await eventsStart(db);
      }

      return {
        async *events(signal) {
          const m: Member = {
            woken: false,
            resolve: undefined,
            filter,
            ids: filter.ids ? new Set(filter.ids) : null,
            queues: filter.queues ? new Set(filter.queues) : null,
            types: filter.types ? new Set(filter.types) : null,
            cursor,
            joined: false,
            // A new subscription starts at the present: it may join at once.
            caughtUp: resume === null,
            inbox: [],
          };
          members.add(m);
          startRefreshing();
          ensureReader();
          // close() wakes every member itself.
          const stop = (): void => wake(m);
          signal?.addEventListener('abort', stop, { once: true });
          try {
            while (!signal?.aborted) {
              if (closing.signal.aborted) throw toTRPCError(new QueueError(ERROR_CODES.SHUTTING_DOWN, 'the server is shutting down; reconnect with lastEventId'));
              const row = m.inbox.shift();
              if (row) {
                if (row.kind === 'gap') {
                  throw toTRPCError(lost(`events before ${formatEventId(row)} may be missing: no server listened for longer than the resume window (${resumeWindowMs} ms); re-read the jobs and subscribe without lastEventId`));
                }
                yield tracked(formatEventId(row), toEvent(row));
                continue;
              }
              m.woken = false;
              if (m.joined) {
                await sleep(m, null);
                continue;
              }
              if (m.caughtUp) {
                if (tryJoin(m)) continue;
                // The reader is (re)starting: it wakes every member when it has a head; past the poll interval, read alone.
                if (head === null) {
                  await sleep(m, pollIntervalMs);
                  if (m.woken) continue;
                }
              }
              // Behind the ring: read on its own, at once.
              try {
                await readOwn(m);
              } catch (error) {
                const domain = toQueueError(error);
                throw domain ? toTRPCError(domain) : error;
              }
            }
          } finally {
            members.delete(m);
            // The reader stops when the last one left (it may be sleeping for want of a joined one).
            wake(reader);
            signal?.removeEventListener('abort', stop);
          }
        },
      };
    },

    close() {
      closing.abort();
      clearInterval(refresher);
      clearInterval(pruner);
      wakeAll();
      for (const m of members) wake(m);
    },
  };
}
