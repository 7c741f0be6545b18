import { useEffect, useRef, useState } from 'preact/hooks';
import { report, type Failure } from './api.js';

/**
 * LIVE UPDATES: the one place that decides when what is on screen is read
 * again. Every page reads through {@link useLive} (or the shared queue
 * readings in stats.ts, which use {@link onChange}); none keeps a timer of its own.
 *
 * Today the source is a timer: every POLL_MS while something live is on
 * screen and the tab is visible, every reader is told "something may have
 * changed". The events subscription (`events.jobs`, SSE; being built) replaces
 * {@link startSource} alone: subscribe once, and call `notify` for each event
 * with the queues and jobs it names, so a job page reads again only when its
 * job moved. Nothing else changes.
 */
export const POLL_MS = 1500;

/** What may have changed. Empty lists or none: anything (the timer knows nothing more). */
export interface Change {
  queues?: readonly string[];
  jobs?: readonly string[];
}

/** Whether a change may concern a reader that watches `about` (a queue or a job); a reader that names nothing is concerned by everything. */
export function concerns(change: Change, about: { queue?: string; job?: string } = {}): boolean {
  if (about.job !== undefined && change.jobs?.length && !change.jobs.includes(about.job)) return false;
  if (about.queue !== undefined && change.queues?.length && !change.queues.includes(about.queue)) return false;
  return true;
}

type Listener = (change: Change) => void;
const listeners = new Set<Listener>();
let stopSource: (() => void) | null = null;

/** THE SOURCE OF CHANGES. Polling for now: replace this function's body with the events subscription. */
function startSource(notify: (change: Change) => void): () => void {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    timer = setTimeout(() => {
      if (document.visibilityState !== 'hidden') notify({});
      tick();
    }, POLL_MS);
  };
  // Back from a hidden tab: read at once rather than show old figures for up to POLL_MS.
  const onVisible = () => {
    if (document.visibilityState === 'visible') notify({});
  };
  document.addEventListener('visibilitychange', onVisible);
  tick();
  return () => {
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
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
  /** What the reading is about, so a change that names other queues or jobs is skipped. */
  about?: { queue?: string; job?: string };
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
      const { live, about } = latest.current.options;
      if (!concerns(change, about)) return;
      const { data } = latest.current.state;
      // While there is no answer yet, keep trying.
      if (typeof live === 'function' && latest.current.state.key === key && data !== null && !live(data)) return;
      void load();
    });
  }, [key, subscribed]);

  const shown = state.key === key ? state : { data: null, failure: null, updatedAt: null };
  return { data: shown.data, failure: shown.failure, updatedAt: shown.updatedAt, reload };
}
