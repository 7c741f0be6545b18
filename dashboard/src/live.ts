import { useEffect, useRef, useState } from 'preact/hooks';
import type { JobEvent } from '../../shared/events.js';
import { api, report, type Failure } from './api.js';
import { createStore } from './store.js';

/**
 * LIVE UPDATES: the one place that decides when what is on screen is read
 * again. Every page reads through {@link useLive} (or the shared queue
 * readings in stats.ts, which use {@link onChange}); none keeps a timer of its own.
 *
 * The source is the events subscription (`events.jobs` over SSE): each event
 * names its queue and job, so a job page reads again only when its job moved.
 * Events are gathered for COALESCE_MS and told as one change, so a worker
 * finishing thousands of jobs a second costs a few readings a second, not one
 * per job. A POLL_MS tick runs beside it: while the subscription is not
 * connected (connecting, refused, a server without events) every reader takes
 * the tick, as before events existed; while it is connected, only readers of
 * what job events do not carry (schedules, worker heartbeats: `poll: true`)
 * take it. And after RESYNC_MS without an event every reader reads once: a
 * queue's settings changed from another tab, rows removed by retention.
 */
export const POLL_MS = 1500;
/** After this long without an event, read everything once (see above). Far longer than a test's wait, so a test proves that events drive the pages. */
export const RESYNC_MS = 60_000;
// Gathers a burst of events into one change: 4 readings a second at most.
const COALESCE_MS = 250;

/** What drives the pages now: `events` (the subscription is connected), or `polling` with why. */
export type SourceState = { mode: 'off' } | { mode: 'connecting' } | { mode: 'events' } | { mode: 'polling'; reason: string };

/** The state of the source, for the pages to say how they stay current. */
export const source = createStore<SourceState>({ mode: 'off' });

/** What may have changed. Empty lists or none: anything (a timer knows nothing more). */
export interface Change {
  queues?: readonly string[];
  jobs?: readonly string[];
  /** The POLL_MS tick: see {@link takesChange}. */
  tick?: boolean;
}

/** Whether a reader takes a change: every change but the tick while events flow, unless it reads what events do not carry (`poll`). */
export function takesChange(change: Change, poll = false): boolean {
  return !change.tick || poll || source.get().mode !== 'events';
}

/** What a reading is about: a queue, or some jobs. */
export interface About {
  queue?: string;
  jobs?: readonly string[];
}

/** Whether a change may concern a reader that watches `about` (a queue or some jobs); a reader that names nothing is concerned by everything. */
export function concerns(change: Change, about: About = {}): boolean {
  if (about.jobs !== undefined && change.jobs?.length && !change.jobs.some((j) => about.jobs?.includes(j))) return false;
  if (about.queue !== undefined && change.queues?.length && !change.queues.includes(about.queue)) return false;
  return true;
}

type Listener = (change: Change) => void;
const listeners = new Set<Listener>();
const eventListeners = new Set<(event: JobEvent) => void>();
let stopSource: (() => void) | null = null;

/** Calls `listener` with every job event while the source runs (stats.ts counts finished jobs from them). */
export function onJobEvent(listener: (event: JobEvent) => void): () => void {
  eventListeners.add(listener);
  return () => eventListeners.delete(listener);
}

/** THE SOURCE OF CHANGES: the events subscription, with timers as described above. */
function startSource(notify: (change: Change) => void): () => void {
  const visible = () => document.visibilityState !== 'hidden';
  let gathered: { queues: Set<string>; jobs: Set<string> } | null = null;
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let resyncTimer: ReturnType<typeof setTimeout> | undefined;
  // Hidden tab: nothing is read; back in view, everything is read once.
  let missed = false;

  const tell = (change: Change) => {
    if (!visible()) {
      missed = true;
      return;
    }
    notify(change);
  };
  /** Restarts the quiet-spell timer: RESYNC_MS after the last event, while events flow. */
  const rearmResync = () => {
    clearTimeout(resyncTimer);
    if (source.get().mode !== 'events') return;
    resyncTimer = setTimeout(() => {
      tell({});
      rearmResync();
    }, RESYNC_MS);
  };
  const flush = () => {
    flushTimer = undefined;
    if (!gathered) return;
    const { queues, jobs } = gathered;
    gathered = null;
    tell({ queues: [...queues], jobs: [...jobs] });
    rearmResync();
  };
  const setMode = (next: SourceState) => {
    const was = source.get().mode;
    source.set(next);
    if (next.mode === was) return;
    // Events back after a gap: what moved meanwhile is read once.
    if (next.mode === 'events') tell({});
    rearmResync();
  };
  const poll = setInterval(() => {
    if (visible()) notify({ tick: true });
  }, POLL_MS);

  setMode({ mode: 'connecting' });
  const subscription = api.events.jobs.subscribe(
    {},
    {
      onStarted: () => setMode({ mode: 'events' }),
      onConnectionStateChange: (state) => {
        if (state.state === 'pending') setMode({ mode: 'events' });
        // The stream cannot be reached (or dropped): poll until the link's own reconnect succeeds.
        else if (state.state === 'connecting' && (state.error || source.get().mode === 'events'))
          setMode({ mode: 'polling', reason: state.error ? `no events stream: ${state.error.message}` : 'reconnecting to the events stream' });
      },
      onData: ({ data: event }) => {
        for (const l of [...eventListeners]) l(event);
        gathered ??= { queues: new Set(), jobs: new Set() };
        gathered.queues.add(event.queue);
        gathered.jobs.add(event.id);
        flushTimer ??= setTimeout(flush, COALESCE_MS);
      },
      // The server refused the subscription (a key without access, a server without events): poll instead.
      onError: (error) => setMode({ mode: 'polling', reason: report(error).message }),
    },
  );
  const onVisible = () => {
    if (visible() && missed) {
      missed = false;
      notify({});
    }
  };
  document.addEventListener('visibilitychange', onVisible);
  return () => {
    subscription.unsubscribe();
    clearInterval(poll);
    clearTimeout(resyncTimer);
    clearTimeout(flushTimer);
    document.removeEventListener('visibilitychange', onVisible);
    source.set({ mode: 'off' });
  };
}

/** Calls `listener` whenever live data may have changed, until the returned function is called. The source runs while anyone listens. */
export function onChange(listener: Listener): () => void {
  listeners.add(listener);
  stopSource ??= startSource((change) => {
    for (const l of [...listeners]) l(change);
  });
  return () => {
    listeners.delete(listener);
    if (listeners.size === 0) {
      stopSource?.();
      stopSource = null;
    }
  };
}

/** A reading on screen: the last answer, or why the last read failed. */
export interface Live<T> {
  data: T | null;
  failure: Failure | null;
  updatedAt: Date | null;
  /** Reads again now (after an action), answering once the new reading is in. */
  reload(): Promise<void>;
}

/** Options of {@link useLive}. */
export interface LiveOptions<T> {
  /** Read again on every change (true), never (false), or while this says so of the last answer. Default true. */
  live?: boolean | ((data: T) => boolean);
  /** Read on every POLL_MS tick even while events flow (or while this says so of the last answer): for what job events do not carry (schedules, heartbeats). Default false. */
  poll?: boolean | ((data: T | null) => boolean);
  /** What the reading is about (or a function of the last answer, null before the first), so a change that names other queues or jobs is skipped. */
  about?: About | ((data: T | null) => About);
}

/**
 * Reads `read()` on mount and whenever `key` changes, then again on each
 * change while live. One read at a time; an answer for an older key is dropped.
 */
export function useLive<T>(key: string, read: () => Promise<T>, options: LiveOptions<T> = {}): Live<T> {
  const [state, setState] = useState<{ key: string; data: T | null; failure: Failure | null; updatedAt: Date | null }>({ key, data: null, failure: null, updatedAt: null });
  // What the callbacks below read: the latest props and state, not those of the render that made them.
  const latest = useRef({ key, read, options, state, inFlight: null as { key: string; promise: Promise<void> } | null });
  Object.assign(latest.current, { key, read, options, state });

  const load = (): Promise<void> => {
    const l = latest.current;
    if (l.inFlight?.key === l.key) return l.inFlight.promise;
    return start();
  };
  // After an action: a reading that began before it may not show it, so wait for that one and read again.
  const reload = (): Promise<void> => {
    const pending = latest.current.inFlight;
    return pending ? pending.promise.then(start) : start();
  };
  const start = (): Promise<void> => {
    const l = latest.current;
    const forKey = l.key;
    const promise = l
      .read()
      .then(
        (data) => {
          if (latest.current.key === forKey) setState({ key: forKey, data, failure: null, updatedAt: new Date() });
        },
        (error: unknown) => {
          const failure = report(error);
          if (latest.current.key === forKey) setState((was) => (was.key === forKey ? { ...was, failure } : { key: forKey, data: null, failure, updatedAt: null }));
        },
      )
      .finally(() => {
        if (latest.current.inFlight?.promise === promise) latest.current.inFlight = null;
      });
    l.inFlight = { key: forKey, promise };
    return promise;
  };

  const subscribed = options.live !== false;
  useEffect(() => {
    void load();
    if (!subscribed) return;
    return onChange((change) => {
      const { live, about, poll } = latest.current.options;
      const { data } = latest.current.state;
      const current = latest.current.state.key === key ? data : null;
      if (!takesChange(change, typeof poll === 'function' ? poll(current) : poll)) return;
      if (!concerns(change, typeof about === 'function' ? about(current) : about)) return;
      // While there is no answer yet, keep trying.
      if (typeof live === 'function' && latest.current.state.key === key && data !== null && !live(data)) return;
      void load();
    });
  }, [key, subscribed]);

  const shown = state.key === key ? state : { data: null, failure: null, updatedAt: null };
  return { data: shown.data, failure: shown.failure, updatedAt: shown.updatedAt, reload };
}
