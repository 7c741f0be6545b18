// What the bundled worker keeps in memory while a handler runs.
import v8 from 'node:v8';
import vm from 'node:vm';
import { z } from 'zod';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createQueueClient, createWorker } from '../client/index.js';
import { defineJobs } from '../shared/index.js';
import { waitFor } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

// A collection on demand, to see which objects are still held.
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc') as () => void;

// The payload as the worker parsed it from the wire, seen by the schema before it makes its own copy.
let capturing = false;
let wire: WeakRef<object> | undefined;
const jobs = defineJobs({
  doc: {
    payload: z.preprocess((raw) => {
      if (capturing && typeof raw === 'object' && raw !== null) wire = new WeakRef(raw);
      return raw;
    }, z.object({ n: z.number(), text: z.string() })),
  },
});

describe('the bundled worker and memory', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ jobs, pollIntervalMs: 50 });
  });
  afterAll(() => t.stop());

  it('holds one copy of a running job\'s payload (the schema\'s), not the one parsed from the wire too', async () => {
    const queue = createQueueClient({ url: t.url, jobs });
    await queue.enqueue('doc', { n: 1, text: 'x'.repeat(4096) });
    await queue.close();
    capturing = true;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let seen: { n: number; text: string } | undefined;
    let completed = 0;
    const worker = createWorker({
      url: t.url,
      jobs,
      waitMs: 200,
      handlers: {
        async doc(payload) {
          seen = payload;
          await gate;
        },
      },
      onEvent: (e) => void (e.kind === 'completed' && completed++),
    });
    worker.start();
    try {
      await waitFor(() => seen !== undefined, 5000, 'the handler to start');
      expect(wire).toBeDefined();
      // Let the claim's call finish unwinding, then collect.
      await new Promise((r) => setTimeout(r, 50));
      gc();
      await new Promise((r) => setImmediate(r));
      gc();
      // The handler still runs with its copy; the wire's object is gone.
      expect(seen).toEqual({ n: 1, text: 'x'.repeat(4096) });
      expect(wire?.deref()).toBeUndefined();
      release();
      await waitFor(() => completed === 1, 5000, 'the job to complete');
    } finally {
      capturing = false;
      release();
      await worker.stop();
    }
  });
});
