import pg from 'pg';
import { INTERRUPT_CHANNEL, JOBS_CHANNEL, KEYS_CHANNEL } from './channels.js';
import type { ClaimParams } from './queries/claim.js';
import type { ClaimedRow } from './queries/row.js';

/** A waiting claim's parameters, for an enqueue that runs the claim for it (NotifyHub.reserve); `now` is the enqueuer's. */
export type HandoverClaim = Omit<ClaimParams, 'now'>;

/** A waiting claim an enqueue on this server claims for, in its own statement (NotifyHub.reserve). */
export interface Reservation {
  /** The waiting claim's parameters. */
  readonly claim: HandoverClaim;
  /**
   * Hands the jobs claimed for it to the waiting claim, which answers with
   * them. False when it stopped waiting meanwhile (timed out, interrupted, its
   * server closing): the caller releases the jobs. With no jobs the claim
   * waits on, or looks again if a wake-up passed it by while it was reserved.
   */
  deliver(rows: readonly ClaimedRow[]): boolean;
}

/** A registration for wake-ups, taken before looking for work so no wake-up between look and wait is lost. */
export interface WakeTicket {
  /** Resolves on a wake-up for one of the ticket's queues, after `timeoutMs`, or when the hub closes. */
  wait(timeoutMs: number, signal?: AbortSignal): Promise<void>;
  cancel(): void;
  /** True once the ticket's worker was interrupted (it is stopping): its claim should answer at once. */
  readonly interrupted: boolean;
  /** True once a wake-up reached the ticket (also before any wait): work may have arrived since it was taken. */
  readonly woken: boolean;
  /** Jobs an enqueue claimed for this ticket's claim while it waited (NotifyHub.reserve), or null. */
  readonly handed: readonly ClaimedRow[] | null;
}

/** Wakes waiting claims: from NOTIFY (other servers, SQL callers) and directly from this server's own enqueues. */
export interface NotifyHub {
  /**
   * Registers interest in `queues` (null: every queue) for the claim of
   * `workerId`. With `claim`, an enqueue may claim for it while it waits.
   */
  ticket(queues: readonly string[] | null, workerId?: string, claim?: HandoverClaim): WakeTicket;
  /** Wakes the waiters of these queues in this process. */
  wake(queues: Iterable<string>): void;
  /**
   * A claim waiting right now for jobs of `queue` and `type`, that `allow`s
   * its parameters, set aside for one enqueue's statement: no other enqueue
   * reserves it and wake-ups pass it by until `deliver`. Null: none waits.
   */
  reserve(queue: string, type: string, allow: (claim: HandoverClaim) => boolean): Reservation | null;
  /** Ends the waiting claims of a stopping worker, on every server (through NOTIFY). */
  interrupt(workerId: string): Promise<void>;
  /** Connects the LISTEN connection; reconnects by itself after. */
  start(): Promise<void>;
  /** Stops listening and releases every waiter. */
  close(): Promise<void>;
  /** Whether the LISTEN connection is up (waiters fall back to polling while it is not). */
  readonly listening: boolean;
}

/**
 * How long a waiting claim may outlast its wait (or its poll interval) while an
 * enqueue's statement claims for it: that statement takes milliseconds unless it
 * waits on a lock, and the clients allow a long-poll its wait plus their request
 * timeout (10 s by default).
 */
const HANDOVER_GRACE_MS = 1000;

interface Waiter {
  queues: ReadonlySet<string> | null;
  workerId: string | undefined;
  fire: () => void;
  fired: boolean;
  interrupted: boolean;
  /** Its claim, when an enqueue may claim for it. */
  claim: HandoverClaim | undefined;
  /** Inside wait(): its claim's statement is not running. */
  waiting: boolean;
  /** Set aside for an enqueue's statement (reserve), until deliver. */
  reserved: boolean;
  /** A wake-up that passed it by while reserved. */
  missedWake: boolean;
  /** Its wait's time ran out while reserved: it ends when the enqueue's statement answers it (deliver). */
  timeUp: boolean;
  handed: readonly ClaimedRow[] | null;
}

/** More channels for the hub's one LISTEN connection, and who hears them. */
export interface ExtraChannels {
  /** Channel name (a constant from channels.ts) -> what to do with a notification's payload. */
  channels?: Readonly<Record<string, (payload: string) => void>>;
  /** Called each time the LISTEN connection is (re)established: notifications sent meanwhile are gone. */
  onListening?: () => void;
}

/** Creates the hub. `connectionString` is used for one dedicated LISTEN connection. */
export function createNotifyHub(
  pool: pg.Pool,
  connectionString: string,
  log: (message: string) => void = () => {},
  onKeysChanged: () => void = () => {},
  extra: ExtraChannels = {},
): NotifyHub {
  const extraChannels = extra.channels ?? {};
  const waiters = new Set<Waiter>();
  let client: pg.Client | undefined;
  let listening = false;
  let closed = false;
  let retryMs = 100;
  let reconnectTimer: NodeJS.Timeout | undefined;

  const wakeAll = (): void => {
    for (const w of waiters) w.fire();
  };

  // A reserved waiter is being claimed for: the enqueue's statement answers it.
  const wakeOne = (w: Waiter): void => {
    if (w.reserved) w.missedWake = true;
    else w.fire();
  };

  const wake = (queues: Iterable<string>): void => {
    if (waiters.size === 0) return;
    const names = new Set(queues);
    for (const w of waiters) {
      if (w.queues === null) wakeOne(w);
      else for (const q of names) if (w.queues.has(q)) { wakeOne(w); break; }
    }
  };

  const reserve = (queue: string, type: string, allow: (claim: HandoverClaim) => boolean): Reservation | null => {
    for (const w of waiters) {
      const claim = w.claim;
      if (!claim || !w.waiting || w.reserved || w.fired) continue;
      if (w.queues !== null && !w.queues.has(queue)) continue;
      if (claim.types !== null && !claim.types.includes(type)) continue;
      if (!allow(claim)) continue;
      w.reserved = true;
      w.missedWake = false;
      return {
        claim,
        deliver(rows) {
          w.reserved = false;
          if (rows.length === 0) {
            if (w.missedWake || w.timeUp) w.fire();
            return true;
          }
          if (w.fired || !w.waiting) return false;
          w.handed = rows;
          w.fire();
          return true;
        },
      };
    }
    return null;
  };

  const interruptLocal = (workerId: string): void => {
    for (const w of waiters) {
      if (w.workerId === workerId) {
        w.interrupted = true;
        w.fire();
      }
    }
  };

  const connect = async (): Promise<void> => {
    const c = new pg.Client({ connectionString, application_name: 'skipq-listen', connectionTimeoutMillis: 5000 });
    c.on('notification', (msg) => {
      if (msg.channel === JOBS_CHANNEL) wake([msg.payload ?? '']);
      else if (msg.channel === INTERRUPT_CHANNEL) interruptLocal(msg.payload ?? '');
      else if (msg.channel === KEYS_CHANNEL) onKeysChanged();
      else extraChannels[msg.channel]?.(msg.payload ?? '');
    });
    const lost = (): void => {
      if (client !== c) return;
      client = undefined;
      listening = false;
      c.removeAllListeners('notification');
      c.end().catch(() => {});
      if (!closed) {
        log(`LISTEN connection lost; reconnecting (claims poll meanwhile)`);
        scheduleReconnect();
      }
    };
    c.on('error', lost);
    c.on('end', lost);
    await c.connect();
    // Channel names are constants (channels.ts), never values from a caller.
    const names = [JOBS_CHANNEL, INTERRUPT_CHANNEL, KEYS_CHANNEL, ...Object.keys(extraChannels)];
    await c.query(names.map((n) => `LISTEN ${n}`).join('; '));
    if (closed) {
      await c.end();
      return;
    }
    client = c;
    listening = true;
    retryMs = 100;
    // Notifications sent while we were away are gone; let every waiter look once.
    wakeAll();
    onKeysChanged();
    extra.onListening?.();
  };

  const scheduleReconnect = (): void => {
    if (closed || reconnectTimer) return;
    reconnectTimer = setTimeout(() => {
      reconnectTimer = undefined;
      connect().catch(() => {
        retryMs = Math.min(retryMs * 2, 5000);
        scheduleReconnect();
      });
    }, retryMs);
    reconnectTimer.unref();
  };

  return {
    get listening() {
      return listening;
    },
    ticket(queues, workerId, claim) {
      let resolveWait: (() => void) | undefined;
      const waiter: Waiter = {
        queues: queues ? new Set(queues) : null,
        workerId,
        fired: false,
        interrupted: false,
        claim,
        waiting: false,
        reserved: false,
        missedWake: false,
        timeUp: false,
        handed: null,
        fire() {
          waiter.fired = true;
          waiters.delete(waiter);
          resolveWait?.();
        },
      };
      if (closed) waiter.fired = true;
      else waiters.add(waiter);
      return {
        wait(timeoutMs, signal) {
          if (waiter.fired || timeoutMs <= 0 || signal?.aborted) {
            waiters.delete(waiter);
            return Promise.resolve();
          }
          return new Promise<void>((resolve) => {
            const done = (): void => {
              clearTimeout(timer);
              signal?.removeEventListener('abort', done);
              waiters.delete(waiter);
              waiter.waiting = false;
              resolve();
            };
            waiter.waiting = true;
            waiter.timeUp = false;
            // A reserved waiter's time is up once the enqueue's statement has answered it
            // (deliver), or HANDOVER_GRACE_MS later: ended meanwhile by its poll interval or
            // its waitMs, the jobs the statement claimed for it were handed back at once, an
            // attempt used by nobody (test/handover.test.ts; it made test/attempts.test.ts
            // flaky). The caller going away (signal) still ends it at once.
            let timer = setTimeout(() => {
              if (!waiter.reserved) return done();
              waiter.timeUp = true;
              timer = setTimeout(done, HANDOVER_GRACE_MS);
            }, timeoutMs);
            signal?.addEventListener('abort', done, { once: true });
            resolveWait = done;
          });
        },
        cancel() {
          waiters.delete(waiter);
        },
        get interrupted() {
          return waiter.interrupted;
        },
        get woken() {
          return waiter.fired && !closed;
        },
        get handed() {
          return waiter.handed;
        },
      };
    },
    wake,
    reserve,
    async interrupt(workerId) {
      interruptLocal(workerId);
      await pool.query('SELECT pg_notify($1, $2)', [INTERRUPT_CHANNEL, workerId]);
    },
    async start() {
      try {
        await connect();
      } catch (error) {
        log(`LISTEN connection failed (${(error as Error).message}); claims poll until it is back`);
        scheduleReconnect();
      }
    },
    async close() {
      closed = true;
      clearTimeout(reconnectTimer);
      wakeAll();
      const c = client;
      client = undefined;
      listening = false;
      if (c) await c.end().catch(() => {});
    },
  };
}
