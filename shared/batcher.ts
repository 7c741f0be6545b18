/** What a batcher sends: a list of items, answered by one result (or Error) per item, in order. */
export type BatchSender<Item, Result> = (items: Item[]) => Promise<Array<Result | Error>>;

/** Options of {@link createBatcher}. */
export interface BatcherOptions<Item, Result> {
  /** Sends one batch. Rejecting fails every item of the batch. */
  send: BatchSender<Item, Result>;
  /** The most items in one batch. */
  maxBatch: number;
  /** The most batches in flight at once; items added while all are busy wait and ride together in the next one. */
  maxInFlight: number;
  /** Milliseconds to wait before sending when a slot is free. Default 0: the next turn of the event loop. */
  delayMs?: number;
}

/** Coalesces single calls into batches. See {@link createBatcher}. */
export interface Batcher<Item, Result> {
  /** Queues one item; resolves with its own result or rejects with its own error. */
  add(item: Item): Promise<Result>;
  /**
   * Queues one item with callbacks of the caller's making instead of a
   * promise: for one call per job (the worker's completions), where the
   * promise, its reaction and its closures were garbage per job.
   */
  enqueue(waiter: BatchWaiter<Item, Result>): void;
  /** Resolves when nothing is queued or in flight. */
  drain(): Promise<void>;
  /**
   * Takes the items still queued (not yet sent) so the caller can carry them in
   * another request it is about to make; it must settle them with the answer.
   */
  takeQueued(): TakenBatch<Item, Result>;
}

/** Items taken out of a batcher's queue by `takeQueued`, to be settled by whoever sends them. */
export interface TakenBatch<Item, Result> {
  items: Item[];
  /** Settles each item with its result or error, in order. */
  settle(results: Array<Result | Error>): void;
  /** Puts the items back at the front of the queue, to go out in the batcher's next batch. */
  requeue(): void;
}

// setImmediate runs after the I/O callbacks of this loop turn, so calls made by
// several awaiting producers in one turn share a batch; browsers lack it.
const nextTurn: (fn: () => void) => void =
  typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

/** One queued item and who gets its answer (see {@link Batcher.enqueue}). */
export interface BatchWaiter<Item, Result> {
  readonly item: Item;
  resolve(value: Result): void;
  reject(error: unknown): void;
}

type Waiting<Item, Result> = BatchWaiter<Item, Result>;

/**
 * Creates a batcher that adds no delay of its own: a batch leaves as soon as a
 * slot is free (after the current tick, so calls made together travel together),
 * and calls made while every slot is busy ride in the next batch. Under load the
 * batches grow by themselves; when idle, a call goes out alone at once.
 */
export function createBatcher<Item, Result>(options: BatcherOptions<Item, Result>): Batcher<Item, Result> {
  const { send, maxBatch, maxInFlight } = options;
  const schedule = options.delayMs ? (fn: () => void) => void setTimeout(fn, options.delayMs) : nextTurn;
  let queue: Array<Waiting<Item, Result>> = [];
  let inFlight = 0;
  let scheduled = false;
  let idleWaiters: Array<() => void> = [];

  const settleIdle = (): void => {
    if (queue.length === 0 && inFlight === 0 && !scheduled) {
      const waiters = idleWaiters;
      idleWaiters = [];
      for (const wake of waiters) wake();
    }
  };

  const pump = (): void => {
    scheduled = false;
    while (queue.length > 0 && inFlight < maxInFlight) {
      const batch = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      inFlight++;
      void run(batch);
    }
    settleIdle();
  };

  const run = async (batch: Array<Waiting<Item, Result>>): Promise<void> => {
    try {
      const results = await send(batch.map((w) => w.item));
      batch.forEach((w, i) => {
        const r = results[i];
        if (r instanceof Error) w.reject(r);
        else if (r === undefined && results.length <= i) w.reject(new Error('batch sender returned too few results'));
        else w.resolve(r as Result);
      });
    } catch (error) {
      for (const w of batch) w.reject(error);
    } finally {
      inFlight--;
      pump();
    }
  };

  const enqueue = (waiter: Waiting<Item, Result>): void => {
    queue.push(waiter);
    if (!scheduled && inFlight < maxInFlight) {
      scheduled = true;
      schedule(pump);
    }
  };

  return {
    add(item) {
      return new Promise<Result>((resolve, reject) => enqueue({ item, resolve, reject }));
    },
    enqueue,
    drain() {
      if (queue.length === 0 && inFlight === 0 && !scheduled) return Promise.resolve();
      return new Promise<void>((resolve) => idleWaiters.push(resolve));
    },
    takeQueued() {
      const taken = queue.length <= maxBatch ? queue : queue.slice(0, maxBatch);
      queue = queue.length <= maxBatch ? [] : queue.slice(maxBatch);
      inFlight++;
      let done = false;
      const finish = (): void => {
        if (done) return;
        done = true;
        inFlight--;
        pump();
      };
      return {
        items: taken.map((w) => w.item),
        settle(results) {
          taken.forEach((w, i) => {
            const r = results[i];
            if (r instanceof Error) w.reject(r);
            else if (i >= results.length) w.reject(new Error('batch sender returned too few results'));
            else w.resolve(r as Result);
          });
          finish();
        },
        requeue() {
          if (done) return;
          queue = [...taken, ...queue];
          if (!scheduled) {
            scheduled = true;
            schedule(pump);
          }
          finish();
        },
      };
    },
  };
}
