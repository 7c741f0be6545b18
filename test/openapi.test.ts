// The plain-JSON REST surface, driven as a caller in another language would:
// through the OpenAPI document the server serves, with a generic client that
// knows nothing of skipq but that document.
import { Validator } from '@seriousme/openapi-schema-validator';
import { createTRPCClient, httpLink } from '@trpc/client';
import { OpenAPIClientAxios } from 'openapi-client-axios';
import superjson from 'superjson';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createApiKey } from '../server/auth.js';
import type { AppRouter } from '../server/routers/_app.js';
import { defineJobs } from '../shared/index.js';
import { startTestServer, type TestServer } from './support/server.js';

const jobs = defineJobs({
  note: { payload: z.object({ text: z.string().min(1) }) },
  ingest: { payload: z.object({ url: z.url(), targetDate: z.iso.date() }), queue: 'ingestion' },
});

const ISO = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/;
/** An answer as the generic client gives it; `data` is whatever JSON the server sent. */
type Answer = { status: number; data: any };
/** Calls an operation of the document by its operationId (path parameters and query in `params`, the JSON body in `body`). */
type Api = (operationId: string, params?: Record<string, unknown> | null, body?: unknown) => Promise<Answer>;
type Doc = Record<string, unknown> & { paths: Record<string, Record<string, { operationId: string }>>; components: { schemas: Record<string, { properties: Record<string, unknown> }> } };

describe('the REST surface, described by /openapi.json', () => {
  let t: TestServer;
  let origin: string;
  let doc: Doc;
  const keys = { producer: '', worker: '', admin: '' };
  /** A generic OpenAPI client over the served document, with this key (or none). */
  let clientFor: (key?: string) => Promise<Api>;

  beforeAll(async () => {
    t = await startTestServer({ jobs, requireAuth: true, maxBodyBytes: 64 * 1024, maxInflightBodyBytes: 64 * 1024 });
    origin = new URL(t.url).origin;
    for (const role of ['producer', 'worker', 'admin'] as const) keys[role] = (await createApiKey(t.db.pool, { role })).key;
    const res = await fetch(`${origin}/openapi.json`);
    expect(res.status).toBe(200);
    doc = (await res.json()) as Doc;
    clientFor = async (key) => {
      const client = await new OpenAPIClientAxios({
        definition: doc as never,
        // Every answer is read here, errors too.
        axiosConfigDefaults: { baseURL: origin, validateStatus: () => true, headers: key ? { authorization: `Bearer ${key}` } : {} },
      }).init();
      return (operationId, params, body) => {
        const operation = client[operationId];
        if (!operation) throw new Error(`the document has no operation ${operationId}`);
        return operation(params as never, body as never) as Promise<Answer>;
      };
    };
  });
  afterAll(() => t?.stop());

  const storedJobs = async (): Promise<number> => (await t.db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM task_queue')).rows[0]!.n;

  it('serves an OpenAPI 3.1 document that validates, with each job type payload schema inlined from the registry', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    expect(result.errors).toBeUndefined();
    expect(result.valid).toBe(true);
    expect(validator.version).toBe('3.1');
    expect(doc.paths['/api/jobs']?.post?.operationId).toBe('jobs-enqueue');
    expect(doc.components.schemas['EnqueueJob']).toMatchObject({ oneOf: [{ $ref: '#/components/schemas/EnqueueJob.note' }, { $ref: '#/components/schemas/EnqueueJob.ingest' }], discriminator: { propertyName: 'type' } });
    expect(doc.components.schemas['EnqueueJob.ingest']?.properties).toMatchObject({
      type: { const: 'ingest' },
      payload: { type: 'object', properties: { url: { type: 'string', format: 'uri' }, targetDate: { type: 'string', format: 'date' } }, required: ['url', 'targetDate'] },
      runAt: { type: 'string', format: 'date-time' },
    });
  });

  it('drives enqueue -> claim -> complete -> get through a generic client, in plain JSON with ISO dates', async () => {
    const producer = await clientFor(keys.producer);
    const worker = await clientFor(keys.worker);
    const runAt = new Date(Date.now() - 1000).toISOString();
    const enqueued = await producer('jobs-enqueue', null, { type: 'ingest', payload: { url: 'https://example.com/a', targetDate: '2026-12-01' }, runAt, uniqueKey: 'rest-1' });
    expect(enqueued.status, JSON.stringify(enqueued.data)).toBe(200);
    expect(enqueued.data).toMatchObject({ created: true, type: 'ingest', queue: 'ingestion', status: 'pending', scheduledFor: runAt });

    const claimed = await worker('worker-claim', null, { workerId: 'rest-worker', queues: ['ingestion'], limit: 5 });
    expect(claimed.status, JSON.stringify(claimed.data)).toBe(200);
    expect(claimed.data.leaseExpiresAt).toMatch(ISO);
    expect(claimed.data.jobs).toEqual([expect.objectContaining({ id: enqueued.data.id, type: 'ingest', attempt: 1, payload: { url: 'https://example.com/a', targetDate: '2026-12-01' } })]);

    const heartbeat = await worker('worker-heartbeat', null, { workerId: 'rest-worker', jobs: [{ id: enqueued.data.id, attempt: 1, progress: { done: 1 } }] });
    expect(heartbeat.data).toMatchObject({ extended: [{ id: enqueued.data.id, leaseExpiresAt: expect.stringMatching(ISO) }], lost: [], cancelled: [] });
    const completed = await worker('worker-complete', null, { workerId: 'rest-worker', id: enqueued.data.id, attempt: 1, result: { rows: 3 } });
    expect(completed.data).toEqual({ id: enqueued.data.id, status: 'completed' });

    const got = await producer('jobs-get', { id: enqueued.data.id });
    expect(got.status).toBe(200);
    expect(got.data).toMatchObject({ id: enqueued.data.id, status: 'completed', result: { rows: 3 }, progress: { done: 1 }, attempt: 1, workerId: expect.stringContaining('rest-worker') });
    expect(got.data.completedAt).toMatch(ISO);
    expect(got.data.createdAt).toMatch(ISO);

    // The same job through tRPC: the same view, with Dates.
    const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${keys.producer}` } })] });
    const view = await trpc.jobs.get.query({ id: enqueued.data.id });
    expect(view.completedAt?.toISOString()).toBe(got.data.completedAt);

    // A repeat of the fenced completion is answered like the first; another attempt is a CONFLICT.
    const stale = await worker('worker-complete', null, { workerId: 'rest-worker', id: enqueued.data.id, attempt: 2 });
    expect(stale.status).toBe(409);
    expect(stale.data).toMatchObject({ code: 'CONFLICT', skipqCode: expect.stringMatching(/LEASE_LOST|WRONG_STATE/) });
  });

  it('lists jobs with query filters, and with no input at all on both surfaces', async () => {
    const producer = await clientFor(keys.producer);
    await producer('jobs-enqueue', null, { type: 'note', payload: { text: 'listed' } });
    const all = await producer('jobs-list');
    expect(all.status, JSON.stringify(all.data)).toBe(200);
    expect(all.data.jobs.length).toBeGreaterThanOrEqual(2);
    expect(all.data).toHaveProperty('nextCursor');
    const filtered = await producer('jobs-list', { status: 'completed', limit: 1 });
    expect(filtered.status, JSON.stringify(filtered.data)).toBe(200);
    expect(filtered.data.jobs).toHaveLength(1);
    expect(filtered.data.jobs[0].status).toBe('completed');
    const several = await fetch(`${origin}/api/jobs?status=completed&status=pending&limit=10`, { headers: { authorization: `Bearer ${keys.producer}` } });
    expect(((await several.json()) as { jobs: Array<{ status: string }> }).jobs.map((j) => j.status).sort()).toEqual(['completed', 'pending']);

    const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${keys.admin}` } })] });
    expect((await trpc.jobs.list.query()).jobs.length).toBe(all.data.jobs.length);
    // As a plain HTTP caller of tRPC sends it: no input parameter at all.
    const bare = await fetch(`${t.url}/jobs.list`, { headers: { authorization: `Bearer ${keys.producer}` } });
    expect(bare.status).toBe(200);
    expect(((await bare.json()) as { result: { data: { json: { jobs: unknown[] } } } }).result.data.json.jobs).toHaveLength(all.data.jobs.length);
    const admin = await clientFor(keys.admin);
    expect((await admin('queues-stats')).status).toBe(200);
    expect((await admin('queues-list')).data.queues.map((q: { name: string }) => q.name)).toContain('ingestion');
  });

  it('refuses a call without a key (401) and with a key of the wrong role (403), with tRPC code and skipqCode', async () => {
    const keyless = await clientFor();
    const before = await storedJobs();
    const refused = await keyless('jobs-enqueue', null, { type: 'note', payload: { text: 'x' } });
    expect(refused.status).toBe(401);
    expect(refused.data).toMatchObject({ code: 'UNAUTHORIZED', skipqCode: 'UNAUTHORIZED', message: expect.stringContaining('API key'), requestId: expect.any(String) });
    // A GET has no body: the gate lets it through, the procedure refuses it the same way.
    const get = await keyless('jobs-list');
    expect(get.status).toBe(401);
    expect(get.data).toMatchObject({ code: 'UNAUTHORIZED', skipqCode: 'UNAUTHORIZED' });
    const worker = await clientFor(keys.worker);
    const wrongRole = await worker('jobs-enqueue', null, { type: 'note', payload: { text: 'x' } });
    expect(wrongRole.status).toBe(403);
    expect(wrongRole.data).toMatchObject({ code: 'FORBIDDEN', skipqCode: 'FORBIDDEN', message: expect.stringContaining('role "producer"') });
    const bogus = await clientFor('skq_000000000000_' + 'a'.repeat(43));
    expect((await bogus('jobs-enqueue', null, { type: 'note', payload: { text: 'x' } })).status).toBe(401);
    expect(await storedJobs()).toBe(before);
    // Health needs no key, like over tRPC.
    expect((await keyless('health')).data).toMatchObject({ ok: true, database: 'up' });
  });

  it('answers 413 to a body over the limit, as plain JSON', async () => {
    const producer = await clientFor(keys.producer);
    const before = await storedJobs();
    const res = await producer('jobs-enqueue', null, { type: 'note', payload: { text: 'x'.repeat(70 * 1024) } });
    expect(res.status).toBe(413);
    expect(res.data).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', skipqCode: 'PAYLOAD_TOO_LARGE', message: expect.stringContaining('65536') });
    expect(await storedJobs()).toBe(before);
  });

  it('answers a payload that fails its schema with 400 and a readable message, and stores nothing', async () => {
    const producer = await clientFor(keys.producer);
    const before = await storedJobs();
    const res = await producer('jobs-enqueue', null, { type: 'ingest', payload: { url: 'not a url', targetDate: '2026-13-45' } });
    expect(res.status).toBe(400);
    expect(res.data).toMatchObject({ code: 'BAD_REQUEST', skipqCode: 'INVALID_PAYLOAD' });
    expect(res.data.message).toMatch(/url/);
    expect(res.data.message).toMatch(/targetDate/);
    expect(res.data.message).not.toMatch(/\n|"code":/);
    const batch = await producer('jobs-enqueueMany', null, { jobs: [{ type: 'note', payload: { text: 'fine' } }, { type: 'note', payload: { text: '' } }] });
    expect(batch.status).toBe(400);
    const notJson = await fetch(`${origin}/api/jobs`, { method: 'POST', headers: { authorization: `Bearer ${keys.producer}`, 'content-type': 'application/json' }, body: '{"type": ' });
    expect(notJson.status).toBe(400);
    expect(await notJson.json()).toMatchObject({ code: 'BAD_REQUEST', skipqCode: 'INVALID_INPUT', message: expect.stringContaining('not JSON') });
    expect(await storedJobs()).toBe(before);
  });

  it('leaves the shared schemas strict for tRPC: a REST query string is converted per call, never by coercing the schemas', async () => {
    const producer = await clientFor(keys.producer);
    expect((await producer('jobs-list', { limit: '2' })).status).toBe(200);
    const trpc = createTRPCClient<AppRouter>({ links: [httpLink({ url: t.url, transformer: superjson, headers: { authorization: `Bearer ${keys.producer}` } })] });
    const error = await trpc.jobs.list.query({ limit: '2' as never }).catch((e: unknown) => e);
    expect(error).toMatchObject({ data: { code: 'BAD_REQUEST', skipqCode: 'INVALID_INPUT' } });
    const rest = await fetch(`${origin}/api/jobs`, { method: 'POST', headers: { authorization: `Bearer ${keys.producer}`, 'content-type': 'application/json' }, body: JSON.stringify({ type: 'note', payload: { text: 'x' }, priority: '5' }) });
    expect(rest.status).toBe(400);
  });

  it('answers unknown routes, methods and media types in plain JSON', async () => {
    const missing = await fetch(`${origin}/api/nothing`, { headers: { authorization: `Bearer ${keys.admin}` } });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toMatchObject({ code: 'NOT_FOUND', message: expect.stringContaining('/openapi.json') });
    const method = await fetch(`${origin}/api/worker/claim`, { headers: { authorization: `Bearer ${keys.admin}` } });
    expect(method.status).toBe(405);
    expect(method.headers.get('allow')).toBe('POST');
    const text = await fetch(`${origin}/api/jobs`, { method: 'POST', headers: { authorization: `Bearer ${keys.producer}`, 'content-type': 'text/plain' }, body: '{}' });
    expect(text.status).toBe(415);
    expect(await text.json()).toMatchObject({ code: 'UNSUPPORTED_MEDIA_TYPE', message: expect.stringContaining('application/json') });
    // A repeated scalar in a query is refused, not silently cut to one value.
    const twice = await fetch(`${origin}/api/jobs?limit=1&limit=2`, { headers: { authorization: `Bearer ${keys.producer}` } });
    expect(twice.status).toBe(400);
  });
});
