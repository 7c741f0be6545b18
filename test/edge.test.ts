import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../server/auth.js';
import { createTestDb, type TestDb } from './support/db.js';
import { killChildren, spawnServer } from './support/processes.js';

const MiB = 1024 * 1024;

/** Resident set size now and at its peak (VmRSS, VmHWM) of a process, in MiB. */
function memoryOf(pid: number): { rss: number; peak: number } {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = (field: string) => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN);
  return { rss: kb('VmRSS') / 1024, peak: kb('VmHWM') / 1024 };
}

/** Raw POST with node:http, one connection each; answers the status (or the socket error) and the body. */
function rawPost(url: string, body: Buffer, headers: Record<string, string> = {}): Promise<{ status: number | string; text: string; headers: Record<string, unknown> }> {
  return new Promise((resolve) => {
    const req = request(url, { method: 'POST', agent: false, headers: { 'content-type': 'application/json', 'content-length': String(body.length), ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8'), headers: res.headers }));
      res.on('error', (e) => resolve({ status: `response ${e.message}`, text: '', headers: {} }));
    });
    req.on('error', (e: NodeJS.ErrnoException) => resolve({ status: e.code ?? e.message, text: '', headers: {} }));
    req.end(body);
  });
}

/** An enqueue body of `bytes` bytes: one long payload string. */
function enqueueBody(bytes: number, batch = false): Buffer {
  const head = batch ? '{"0":{"json":{"type":"note","payload":"' : '{"json":{"type":"note","payload":"';
  const tail = batch ? '"}}}' : '"}}';
  return Buffer.from(head + 'x'.repeat(bytes - head.length - tail.length) + tail);
}

afterEach(() => killChildren());

describe('unauthenticated uploads cannot exhaust memory (server in its own process)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb();
  });
  afterAll(() => db?.drop());

  it('100 concurrent 15 MiB POSTs without a key: all 401, RSS stays under 300 MiB during and after', async () => {
    await createApiKey(db.pool, { role: 'admin' });
    const srv = await spawnServer({ DATABASE_URL: db.url, SKIPQ_RESCUE_INTERVAL_MS: '60000' });
    const base = memoryOf(srv.pid);
    const fast = enqueueBody(15 * MiB);
    const batched = enqueueBody(15 * MiB, true);
    let during = base.rss;
    const sampler = setInterval(() => (during = Math.max(during, memoryOf(srv.pid).rss)), 25);
    const t0 = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => (i % 2 === 0 ? rawPost(`${srv.url}/jobs.enqueue`, fast) : rawPost(`${srv.url}/jobs.enqueue?batch=1`, batched))),
    );
    const floodMs = Date.now() - t0;
    clearInterval(sampler);
    await new Promise((r) => setTimeout(r, 1000));
    const after = memoryOf(srv.pid);
    console.log(`[edge:rss] ${JSON.stringify({ baseMiB: Math.round(base.rss), duringMaxMiB: Math.round(during), peakMiB: Math.round(after.peak), afterMiB: Math.round(after.rss), floodMs })}`);
    const statuses = answers.map((a) => a.status);
    expect(statuses.filter((s) => s !== 401), JSON.stringify(statuses)).toEqual([]);
    for (const a of answers) expect(a.text).toContain('UNAUTHORIZED');
    expect(after.peak).toBeLessThan(300);
    expect(after.rss).toBeLessThan(300);
  });
});
