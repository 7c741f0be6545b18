import { TRPCClientError } from '@trpc/client';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { countJobs, insertJob, readJob } from './support/factories.js';
import { startTestServer, type TestServer } from './support/server.js';

const MAX_BODY = 1024 * 1024;
const MAX_PAYLOAD = 4096;
const ID = '01930000-0000-7000-8000-000000000000';

/** One hostile request: a superjson input (wrapped as {"json": ...}) or a raw body, and what must come back. */
interface Hostile {
  name: string;
  path: string;
  /** Input object, sent as {"json": input}. */
  input?: unknown;
  /** Raw body, sent exactly as given. */
  raw?: string | (() => string);
  method?: 'GET' | 'POST';
  headers?: Record<string, string>;
  status: number;
  /** error.data.skipqCode, or tRPC's own code where skipq has no reason of its own (404 path, 405, 415); omitted for answers outside tRPC. */
  code?: string;
  /** What the message must say: the field, the limit, or the reason. */
  message: RegExp;
}

const nest = (n: number, open: string, inner: string, close: string) => open.repeat(n) + inner + close.repeat(n);
const deepArrays = (n: number) => nest(n, '[', '1', ']');
const deepObjects = (n: number) => nest(n, '{"a":', '1', '}');
const enqueueRaw = (payload: string) => `{"json":{"type":"deep","payload":${payload}}}`;
const job = (extra: Record<string, unknown> = {}) => ({ type: 'note', payload: { text: 'hi' }, ...extra });
const claim = (extra: Record<string, unknown>) => ({ workerId: 'w1', ...extra });
const complete = (extra: Record<string, unknown>) => ({ workerId: 'w1', id: ID, attempt: 1, ...extra });

/** The tRPC code (`error.data.code`) each HTTP status here stands for. */
const TRPC_CODE_OF_STATUS: Record<number, string> = { 400: 'BAD_REQUEST', 404: 'NOT_FOUND', 405: 'METHOD_NOT_SUPPORTED', 409: 'CONFLICT', 413: 'PAYLOAD_TOO_LARGE', 415: 'UNSUPPORTED_MEDIA_TYPE' };
/** Codes only tRPC gives: their answers carry no skipqCode. */
const TRPC_ONLY = new Set(['NOT_FOUND', 'METHOD_NOT_SUPPORTED', 'UNSUPPORTED_MEDIA_TYPE']);

const CASES: Hostile[] = [
  // Size
  { name: 'a body over maxBodyBytes with Content-Length', path: 'jobs.enqueue', raw: () => JSON.stringify({ json: job({ payload: 'x'.repeat(MAX_BODY) }) }), status: 413, code: 'PAYLOAD_TOO_LARGE', message: new RegExp(`limit is ${MAX_BODY}`) },
  { name: 'a payload over maxPayloadBytes', path: 'jobs.enqueue', input: job({ payload: { text: 'x'.repeat(MAX_PAYLOAD) } }), status: 413, code: 'PAYLOAD_TOO_LARGE', message: new RegExp(`payload.*limit is ${MAX_PAYLOAD}`) },
  { name: 'one payload over the limit in enqueueMany', path: 'jobs.enqueueMany', input: { jobs: [job(), job({ payload: 'x'.repeat(MAX_PAYLOAD) })] }, status: 413, code: 'PAYLOAD_TOO_LARGE', message: /jobs\[1\].*limit is 4096/ },

  // Nesting
  // (superjson reads input in place, so nothing walks a deep value before the depth check does.)
  { name: '100,000 nested arrays in a payload', path: 'jobs.enqueue', raw: () => enqueueRaw(deepArrays(100_000)), status: 400, code: 'INVALID_INPUT', message: /payload.*nested deeper than 64 levels/ },
  { name: '100,000 nested objects in a payload', path: 'jobs.enqueue', raw: () => enqueueRaw(deepObjects(100_000)), status: 400, code: 'INVALID_INPUT', message: /payload.*nested deeper than 64 levels/ },
  { name: '100,000 nested arrays as the type', path: 'jobs.enqueue', raw: () => `{"json":{"type":${deepArrays(100_000)},"payload":1}}`, status: 400, code: 'INVALID_INPUT', message: /^type: .*expected string/ },
  { name: '100,000 nested objects in superjson meta', path: 'jobs.enqueue', raw: () => `{"json":{"type":"x","payload":1},"meta":{"values":${nest(100_000, '{"a":', '["Date"]', '}')}}}`, status: 400, code: 'INVALID_INPUT', message: /nested too deeply/ },
  { name: '1,000 nested arrays in a payload', path: 'jobs.enqueue', raw: () => enqueueRaw(deepArrays(1000)), status: 400, code: 'INVALID_INPUT', message: /nested deeper than 64 levels/ },

  // NUL
  { name: 'NUL in a payload string', path: 'jobs.enqueue', input: job({ payload: { text: 'a\u0000b' } }), status: 400, code: 'INVALID_INPUT', message: /payload.*NUL/ },
  { name: 'NUL in a payload key', path: 'jobs.enqueue', input: job({ payload: { 'a\u0000': 1 } }), status: 400, code: 'INVALID_INPUT', message: /payload.*NUL/ },
  { name: 'NUL in the type', path: 'jobs.enqueue', input: job({ type: 'note\u0000' }), status: 400, code: 'INVALID_INPUT', message: /^type:/ },
  { name: 'NUL in the queue', path: 'jobs.enqueue', input: job({ queue: 'q\u0000' }), status: 400, code: 'INVALID_INPUT', message: /^queue:/ },
  { name: 'NUL in the uniqueKey', path: 'jobs.enqueue', input: job({ uniqueKey: 'k\u0000' }), status: 400, code: 'INVALID_INPUT', message: /uniqueKey: .*NUL/ },
  { name: 'NUL in a workerId (claim)', path: 'worker.claim', input: claim({ workerId: 'w\u0000' }), status: 400, code: 'INVALID_INPUT', message: /workerId: .*NUL/ },
  { name: 'NUL in a workerId (complete)', path: 'worker.complete', input: complete({ workerId: '\u0000' }), status: 400, code: 'INVALID_INPUT', message: /workerId: .*NUL/ },
  { name: 'NUL in a claim type filter', path: 'worker.claim', input: claim({ types: ['a\u0000'] }), status: 400, code: 'INVALID_INPUT', message: /^types\.0:/ },

  // Names
  { name: 'a type with a space', path: 'jobs.enqueue', input: job({ type: 'send email' }), status: 400, code: 'INVALID_INPUT', message: /^type: must start with a letter or digit/ },
  { name: 'a unicode type', path: 'jobs.enqueue', input: job({ type: 'čevapi' }), status: 400, code: 'INVALID_INPUT', message: /^type:/ },
  { name: 'a type of 129 characters', path: 'jobs.enqueue', input: job({ type: 'a'.repeat(129) }), status: 400, code: 'INVALID_INPUT', message: /^type:.*at most 128/ },
  { name: 'SQL as the type', path: 'jobs.enqueue', input: job({ type: "x'); DROP TABLE task_queue; --" }), status: 400, code: 'INVALID_INPUT', message: /^type:/ },
  { name: 'SQL as the queue', path: 'jobs.enqueue', input: job({ queue: "default' OR '1'='1" }), status: 400, code: 'INVALID_INPUT', message: /^queue:/ },
  { name: 'an empty queue', path: 'jobs.enqueue', input: job({ queue: '' }), status: 400, code: 'INVALID_INPUT', message: /^queue:/ },
  { name: 'a queue of 129 characters in a claim', path: 'worker.claim', input: claim({ queues: ['q'.repeat(129)] }), status: 400, code: 'INVALID_INPUT', message: /^queues\.0:.*128/ },
  { name: 'a path-like queue in list', path: 'jobs.list', method: 'GET', input: { queue: '../../etc/passwd' }, status: 400, code: 'INVALID_INPUT', message: /^queue:/ },
  { name: 'an empty workerId', path: 'worker.claim', input: claim({ workerId: '' }), status: 400, code: 'INVALID_INPUT', message: /^workerId:/ },
  { name: 'a workerId of 201 characters', path: 'worker.claim', input: claim({ workerId: 'w'.repeat(201) }), status: 400, code: 'INVALID_INPUT', message: /^workerId:.*200/ },
  { name: 'a uniqueKey of 256 characters', path: 'jobs.enqueue', input: job({ uniqueKey: 'k'.repeat(256) }), status: 400, code: 'INVALID_INPUT', message: /^uniqueKey:.*255/ },
  { name: 'a job id that is SQL', path: 'jobs.get', method: 'GET', input: { id: "' OR 1=1 --" }, status: 400, code: 'INVALID_INPUT', message: /^id: must be a job id/ },
  // Job ids are chosen by callers: the id of another job is refused without a word about that job, and nothing of the call is stored.
  { name: 'a job id that is SQL in enqueue', path: 'jobs.enqueue', input: job({ id: "'; DROP TABLE task_queue; --" }), status: 400, code: 'INVALID_INPUT', message: /^id: must be a job id/ },
  { name: 'an enqueue with the id of another job', path: 'jobs.enqueue', input: job({ id: ID }), status: 409, code: 'JOB_ID_CONFLICT', message: new RegExp(`^job id ${ID} is already used by another job; an id may be sent again only to repeat the same enqueue \\(same type and queue\\)$`) },
  { name: 'an enqueueMany with the id of another job', path: 'jobs.enqueueMany', input: { jobs: [job(), job({ id: ID })] }, status: 409, code: 'JOB_ID_CONFLICT', message: new RegExp(`^jobs\\[1\\]: job id ${ID} is already used by another job;`) },

  // Counts
  { name: 'a 10,000-job enqueueMany', path: 'jobs.enqueueMany', input: { jobs: Array.from({ length: 10_000 }, () => job()) }, status: 400, code: 'INVALID_INPUT', message: /^jobs:.*1000/ },
  { name: 'a 10,000-job completeMany', path: 'worker.completeMany', input: { workerId: 'w1', jobs: Array.from({ length: 10_000 }, () => ({ id: ID, attempt: 1 })) }, status: 400, code: 'INVALID_INPUT', message: /^jobs:.*1000/ },
  { name: 'a 10,000-job heartbeat', path: 'worker.heartbeat', input: { workerId: 'w1', jobs: Array.from({ length: 10_000 }, () => ({ id: ID, attempt: 1 })) }, status: 400, code: 'INVALID_INPUT', message: /^jobs:.*1000/ },
  { name: 'an empty enqueueMany', path: 'jobs.enqueueMany', input: { jobs: [] }, status: 400, code: 'INVALID_INPUT', message: /^jobs:/ },
  { name: '101 claim type filters', path: 'worker.claim', input: claim({ types: Array.from({ length: 101 }, (_, i) => `t${i}`) }), status: 400, code: 'INVALID_INPUT', message: /^types:.*100/ },
  {
    name: 'a tRPC batch of 1,000 enqueues',
    path: `${Array.from({ length: 1000 }, () => 'jobs.enqueue').join(',')}?batch=1`,
    raw: () => JSON.stringify(Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [i, { json: job() }]))),
    status: 400,
    code: 'INVALID_INPUT',
    message: /^Batch call exceeds maximum size$/,
  },
  { name: 'a tRPC batch of 1,000 health queries', path: `${Array.from({ length: 1000 }, () => 'health').join(',')}?batch=1`, method: 'GET', status: 400, code: 'INVALID_INPUT', message: /Batch call exceeds maximum size/ },

  // Numbers
  ...(
    [
      ['jobs.enqueue', 'priority', [-1, 11, 1.5, 1e309, -1e309, '5', null]],
      ['jobs.enqueue', 'delayMs', [-1, 1e20, 1e309, 0.5, '1000']],
      ['jobs.enqueue', 'maxRetries', [-1, 1_000_000, 1e309]],
      ['worker.claim', 'limit', [0, -0, -1, 1001, 1e309, '10']],
      ['worker.claim', 'leaseMs', [1, -5, 99, 1e309, 86_400_001]],
      ['worker.claim', 'waitMs', [-1, 60_001, 1e309, -1e309]],
      ['worker.complete', 'attempt', [0, -0, -1, 1.5, 1e309, 2 ** 31, 2 ** 53, '1']],
      ['worker.fail', 'retryDelayMs', [-1, 1e309, 1e20]],
      ['worker.heartbeat', 'leaseMs', [1e309, 0]],
      ['jobs.list', 'limit', [0, 501, 1e309, -1]],
    ] as const
  ).flatMap(([path, field, values]) =>
    values.map((value): Hostile => {
      const base: Record<string, Record<string, unknown>> = {
        'jobs.enqueue': job(),
        'worker.claim': claim({}),
        'worker.complete': complete({}),
        'worker.fail': complete({ error: 'x' }),
        'worker.heartbeat': { workerId: 'w1', jobs: [{ id: ID, attempt: 1 }] },
        'jobs.list': {},
      };
      const { [field]: _dropped, ...rest } = base[path] as Record<string, unknown>;
      const text = Object.is(value, -0) ? '-0' : typeof value === 'number' && !Number.isFinite(value) ? (value > 0 ? '1e309' : '-1e309') : JSON.stringify(value);
      // Written by hand: JSON.stringify cannot say -0 or 1e309.
      const body = JSON.stringify({ json: rest }).replace(/}}$/, `${Object.keys(rest).length ? ',' : ''}"${field}":${text}}}`);
      return {
        name: `${field} = ${text} (${path})`,
        path,
        method: path === 'jobs.list' ? 'GET' : 'POST',
        raw: body,
        status: 400,
        code: 'INVALID_INPUT',
        message: new RegExp(`^${field}:`),
      };
    }),
  ),

  // Types
  { name: 'an object for the jobs array', path: 'jobs.enqueueMany', input: { jobs: { 0: job() } }, status: 400, code: 'INVALID_INPUT', message: /^jobs: .*expected array/ },
  { name: 'a string for the types array', path: 'worker.claim', input: claim({ types: 'note' }), status: 400, code: 'INVALID_INPUT', message: /^types: .*expected array/ },
  { name: 'a number for the job id', path: 'jobs.get', method: 'GET', input: { id: 5 }, status: 400, code: 'INVALID_INPUT', message: /^id: .*expected string/ },
  { name: 'a missing payload', path: 'jobs.enqueue', input: { type: 'note' }, status: 400, code: 'INVALID_INPUT', message: /payload/ },
  { name: 'an unknown field', path: 'jobs.enqueue', input: job({ prority: 5 }), status: 400, code: 'INVALID_INPUT', message: /Unrecognized key.*prority/ },
  { name: 'runAt as a plain string', path: 'jobs.enqueue', input: job({ runAt: '2030-01-01' }), status: 400, code: 'INVALID_INPUT', message: /^runAt:/ },
  { name: 'runAt as an invalid superjson Date', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":1,"runAt":"soon"},"meta":{"values":{"runAt":["Date"]}}}', status: 400, code: 'INVALID_INPUT', message: /^runAt:/ },
  // Values only PostgreSQL refuses: still a 400, with the database's reason.
  { name: 'runAt before 4713 BC', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":1,"runAt":"-271821-04-20T00:00:00.000Z"},"meta":{"values":{"runAt":["Date"]}}}', status: 400, code: 'INVALID_INPUT', message: /runAt: must be between 1970 and 10 years from now/ },
  { name: 'a lone surrogate in a payload', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":{"s":"\\ud800"}}}', status: 400, code: 'INVALID_INPUT', message: /json/ },
  { name: 'a string for retry', path: 'worker.fail', input: complete({ error: 'x', retry: 'no' }), status: 400, code: 'INVALID_INPUT', message: /^retry:/ },
  { name: 'a number as the error message', path: 'worker.fail', input: complete({ error: 42 }), status: 400, code: 'INVALID_INPUT', message: /^error:/ },
  { name: 'a held job without attempt', path: 'worker.start', input: { workerId: 'w1', jobs: [{ id: ID }] }, status: 400, code: 'INVALID_INPUT', message: /^jobs\.0\.attempt:/ },
  { name: 'an array as the input', path: 'jobs.enqueue', input: [job()], status: 400, code: 'INVALID_INPUT', message: /^input: .*expected object/ },
  { name: 'a string as stats input', path: 'queues.stats', method: 'GET', input: 'all', status: 400, code: 'INVALID_INPUT', message: /expected object/ },

  // Bodies, content types, paths
  { name: 'invalid JSON', path: 'jobs.enqueue', raw: '{"json":{"type":"note",', status: 400, code: 'INVALID_INPUT', message: /JSON/ },
  { name: 'invalid JSON in a GET input', path: 'jobs.list', method: 'GET', raw: '{nope', status: 400, code: 'INVALID_INPUT', message: /JSON/ },
  { name: 'a JSON null body', path: 'jobs.enqueue', raw: 'null', status: 400, code: 'INVALID_INPUT', message: /not superjson/ },
  { name: 'a JSON string body', path: 'jobs.enqueue', raw: '"hello"', status: 400, code: 'INVALID_INPUT', message: /input/ },
  { name: 'an empty body', path: 'jobs.enqueue', raw: '', status: 400, code: 'INVALID_INPUT', message: /^input: .*expected object/ },
  { name: 'the input without the superjson envelope', path: 'jobs.enqueue', raw: JSON.stringify(job()), status: 400, code: 'INVALID_INPUT', message: /^input: .*expected object/ },
  { name: '__proto__ in superjson meta', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":{}},"meta":{"values":{"payload.__proto__.polluted":["Date"]}}}', status: 400, code: 'INVALID_INPUT', message: /__proto__/ },
  { name: 'constructor.prototype in superjson meta', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":{}},"meta":{"values":{"payload.constructor.prototype.polluted":["Date"]}}}', status: 400, code: 'INVALID_INPUT', message: /prototype|constructor/ },
  { name: 'an unknown superjson transformation', path: 'jobs.enqueue', raw: '{"json":{"type":"note","payload":{}},"meta":{"values":{"payload":["eval"]}}}', status: 400, code: 'INVALID_INPUT', message: /transformation/ },
  { name: 'content-type text/plain', path: 'jobs.enqueue', input: job(), headers: { 'content-type': 'text/plain' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: /content-type/i },
  { name: 'no content-type', path: 'jobs.enqueue', input: job(), headers: { 'content-type': '' }, status: 415, code: 'UNSUPPORTED_MEDIA_TYPE', message: /content-type/i },
  { name: 'an unknown procedure', path: 'jobs.explode', input: {}, status: 404, code: 'NOT_FOUND', message: /No procedure found on path "jobs\.explode"/ },
  { name: 'a prototype property as the path', path: '__proto__', input: {}, status: 404, code: 'NOT_FOUND', message: /No procedure found/ },
  { name: 'a router as the path', path: 'jobs', input: {}, status: 404, code: 'NOT_FOUND', message: /No procedure found/ },
  { name: 'GET on a mutation', path: 'jobs.enqueue', method: 'GET', input: job(), status: 405, code: 'METHOD_NOT_SUPPORTED', message: /mutation/ },
  { name: 'POST on a query', path: 'jobs.get', input: { id: ID }, status: 405, code: 'METHOD_NOT_SUPPORTED', message: /query/ },
  { name: 'a path outside /trpc', path: '../admin', input: {}, status: 404, message: /tRPC endpoint is \/trpc/ },
];

/**
 * A result or progress value the server refuses is answered per job, in a 200,
 * never by refusing the request (issue 7 items 1 and 2: one bad value used to
 * reject its whole batch). A refused result fails its job at once with code
 * INVALID_RESULT and no retry; a refused progress value is dropped and named in
 * `rejected`, and its job's lease is still extended. The messages are the ones
 * these requests used to be refused with.
 */
interface PerItem {
  name: string;
  path: 'worker.complete' | 'worker.completeMany' | 'worker.heartbeat';
  input?: unknown;
  raw?: () => string;
  message: RegExp;
}

const PER_ITEM: PerItem[] = [
  { name: 'a result over the limit', path: 'worker.complete', input: complete({ result: 'x'.repeat(MAX_PAYLOAD) }), message: /result.*limit is 4096/ },
  { name: 'a result over the limit in completeMany', path: 'worker.completeMany', input: { workerId: 'w1', jobs: [{ id: ID, attempt: 1, result: 'x'.repeat(MAX_PAYLOAD) }] }, message: /result.*limit is 4096/ },
  { name: 'progress over the limit', path: 'worker.heartbeat', input: { workerId: 'w1', jobs: [{ id: ID, attempt: 1, progress: 'x'.repeat(MAX_PAYLOAD) }] }, message: /progress.*limit is 4096/ },
  { name: '65 nested objects in a result', path: 'worker.complete', raw: () => `{"json":{"workerId":"w1","id":"${ID}","attempt":1,"result":${deepObjects(65)}}}`, message: /result.*nested deeper than 64 levels/ },
  { name: '100,000 nested arrays in a result', path: 'worker.completeMany', raw: () => `{"json":{"workerId":"w1","jobs":[{"id":"${ID}","attempt":1,"result":${deepArrays(100_000)}}]}}`, message: /result.*nested deeper than 64 levels/ },
  { name: '200 nested arrays in progress', path: 'worker.heartbeat', raw: () => `{"json":{"workerId":"w1","jobs":[{"id":"${ID}","attempt":1,"progress":${deepArrays(200)}}]}}`, message: /progress.*nested deeper than 64 levels/ },
  { name: 'NUL in a result', path: 'worker.complete', input: complete({ result: { s: '\u0000' } }), message: /result.*NUL/ },
  { name: 'NUL in progress', path: 'worker.heartbeat', input: { workerId: 'w1', jobs: [{ id: ID, attempt: 1, progress: ['\u0000'] }] }, message: /progress.*NUL/ },
];

interface Answer {
  status: number;
  text: string;
  body: { error?: { json?: { message: string; data?: { code?: string; httpStatus?: number } } } | string } | undefined;
}

/** Sends one request with fetch, exactly as described. */
async function send(base: string, c: Hostile): Promise<Answer> {
  const raw = typeof c.raw === 'function' ? c.raw() : c.raw;
  const body = raw ?? JSON.stringify({ json: c.input });
  const method = c.method ?? 'POST';
  const root = base.replace(/\/trpc$/, '');
  const target = c.path.startsWith('../') ? `${root}/${c.path.slice(3)}` : `${base}/${c.path}`;
  const url = method === 'GET' && (raw !== undefined || c.input !== undefined) ? `${target}${target.includes('?') ? '&' : '?'}input=${encodeURIComponent(body)}` : target;
  const headers: Record<string, string> = { 'content-type': 'application/json', ...c.headers };
  for (const [k, v] of Object.entries(headers)) if (v === '') delete headers[k];
  // A string body would make fetch add "content-type: text/plain"; bytes add nothing.
  const res = await fetch(url, { method, headers, ...(method === 'POST' ? { body: new TextEncoder().encode(body) } : {}) });
  const text = await res.text();
  let parsed: Answer['body'];
  try {
    parsed = JSON.parse(text) as Answer['body'];
  } catch {
    parsed = undefined;
  }
  return { status: res.status, text, body: parsed };
}

function expectNoStack(text: string): void {
  expect(text).not.toMatch(/"stack"|\n\s+at |\bat [\w.<>]+ \(|node_modules|\.ts:\d+|\.js:\d+/);
}

describe('hostile input over raw HTTP', () => {
  let t: TestServer;
  const logged: string[] = [];

  beforeAll(async () => {
    t = await startTestServer({ maxBodyBytes: MAX_BODY, maxPayloadBytes: MAX_PAYLOAD, log: (m) => logged.push(m) });
  });
  afterAll(async () => {
    await t?.stop();
  });
  beforeEach(async () => {
    await t.db.pool.query('DELETE FROM task_queue');
  });

  it.each(CASES)('$name: $status', async (c) => {
    // A held job that a fenced call would change if it got that far.
    const held = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
    await t.db.pool.query('UPDATE task_queue SET id = $1 WHERE id = $2', [ID, held.id]);
    const before = await readJob(t.db.pool, ID);
    const answer = await send(t.url, c);
    expect(answer.status, answer.text.slice(0, 300)).toBe(c.status);
    expectNoStack(answer.text);
    const error = answer.body?.error;
    if (c.code) {
      expect(typeof error).toBe('object');
      const json = (error as { json: { message: string; data: { code: string; skipqCode?: string; httpStatus: number } } }).json;
      expect(json.data).toMatchObject({ code: TRPC_CODE_OF_STATUS[c.status], httpStatus: c.status });
      expect(json.data.skipqCode).toBe(TRPC_ONLY.has(c.code) ? undefined : c.code);
      expect(json.message).toMatch(c.message);
    } else {
      expect(JSON.stringify(error)).toMatch(c.message);
    }
    // Nothing written, nothing changed.
    expect(await countJobs(t.db.pool)).toBe(1);
    expect(await readJob(t.db.pool, ID)).toEqual(before);
  });

  it.each(PER_ITEM)('$name: answered for its job alone, in a 200', async (c) => {
    const held = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1', lease_expires_at: new Date(Date.now() + 1000) });
    await t.db.pool.query('UPDATE task_queue SET id = $1 WHERE id = $2', [ID, held.id]);
    const answer = await send(t.url, { ...c, status: 200 });
    expect(answer.status, answer.text.slice(0, 300)).toBe(200);
    expectNoStack(answer.text);
    const data = (answer.body as { result: { data: { json: Record<string, unknown> } } }).result.data.json;
    const row = await readJob(t.db.pool, ID);
    if (c.path === 'worker.heartbeat') {
      const beat = data as { extended: Array<{ id: string }>; rejected: Array<{ id: string; error: string }> };
      expect(beat.rejected).toEqual([{ id: ID, error: expect.stringMatching(c.message) }]);
      expect(beat.extended.map((e) => e.id)).toEqual([ID]);
      expect(row).toMatchObject({ status: 'processing', progress: null });
      expect(row.lease_expires_at?.getTime()).toBeGreaterThan(Date.now() + 20_000);
    } else {
      const one = c.path === 'worker.complete' ? (data as { status: string; error: string }) : (data as { results: Array<{ outcome: string; error: string }> }).results[0];
      expect(one).toMatchObject(c.path === 'worker.complete' ? { status: 'failed' } : { outcome: 'failed' });
      expect(one?.error).toMatch(c.message);
      expect(row).toMatchObject({ status: 'failed', error_code: 'INVALID_RESULT', retry_count: 0, result: null, lease_expires_at: null });
      expect(row.error_message).toMatch(c.message);
    }
  });

  it('refuses a body over maxBodyBytes sent chunked, without Content-Length', async () => {
    const chunk = new TextEncoder().encode('x'.repeat(64 * 1024));
    let sent = 0;
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"json":{"type":"note","payload":"'));
      },
      pull(controller) {
        if (sent > 2 * MAX_BODY) {
          controller.enqueue(new TextEncoder().encode('"}}'));
          controller.close();
          return;
        }
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await fetch(`${t.url}/jobs.enqueue`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: stream, duplex: 'half' } as RequestInit);
    const text = await res.text();
    expect(res.status).toBe(413);
    expectNoStack(text);
    const json = (JSON.parse(text) as { error: { json: { message: string; data: { code: string; skipqCode: string } } } }).error.json;
    expect(json.data).toMatchObject({ code: 'PAYLOAD_TOO_LARGE', skipqCode: 'PAYLOAD_TOO_LARGE' });
    expect(json.message).toContain(`limit of ${MAX_BODY} bytes`);
    expect(await countJobs(t.db.pool)).toBe(0);
  });

  it('accepts -0 as 0, and an SQL-looking uniqueKey as plain text', async () => {
    const res = await fetch(`${t.url}/jobs.enqueue`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: `{"json":{"type":"note","payload":{"n":-0},"priority":-0,"delayMs":-0,"uniqueKey":"'); DROP TABLE task_queue; --"}}`,
    });
    expect(res.status).toBe(200);
    const { rows } = await t.db.pool.query<{ priority: number; unique_key: string; payload: unknown }>('SELECT priority, unique_key, payload FROM task_queue');
    expect(rows).toEqual([{ priority: 0, unique_key: "'); DROP TABLE task_queue; --", payload: { n: 0 } }]);
  });

  it('strips NUL from a failure message (it is diagnostic text) instead of failing the call', async () => {
    const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
    const res = await t.trpc.worker.fail.mutate({ workerId: 'w1', id: row.id, attempt: 1, error: 'bad\u0000byte', retry: false });
    expect(res.status).toBe('failed');
    expect((await readJob(t.db.pool, row.id)).error_message).toBe('badbyte');
  });

  it('refuses oversized batches through the tRPC client too, naming the limit', async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => ({ type: 'note', payload: { i } }));
    const enq = await t.trpc.jobs.enqueueMany.mutate({ jobs: many }).catch((e: unknown) => e);
    expect(enq).toBeInstanceOf(TRPCClientError);
    expect((enq as TRPCClientError<never>).data).toMatchObject({ httpStatus: 400, code: 'BAD_REQUEST', skipqCode: 'INVALID_INPUT' });
    expect((enq as Error).message).toMatch(/^jobs: .*<=1000 items/);
    const row = await insertJob(t.db.pool, { status: 'processing', worker_id: 'w1' });
    const done = await t.trpc.worker.completeMany
      .mutate({ workerId: 'w1', jobs: Array.from({ length: 10_000 }, () => ({ id: row.id, attempt: 1 })) })
      .catch((e: unknown) => e);
    expect((done as TRPCClientError<never>).data).toMatchObject({ httpStatus: 400, code: 'BAD_REQUEST', skipqCode: 'INVALID_INPUT' });
    expect((done as Error).message).toMatch(/^jobs: .*<=1000 items/);
    expect(await countJobs(t.db.pool)).toBe(1);
    expect((await readJob(t.db.pool, row.id)).status).toBe('processing');
  });

  it('did not pollute Object.prototype', () => {
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('stays up and healthy after all of it, with no internal error logged', async () => {
    expect(await t.trpc.health.query()).toMatchObject({ ok: true, database: 'up' });
    const job = await t.trpc.jobs.enqueue.mutate({ type: 'note', payload: { text: 'still here' } });
    expect((await readJob(t.db.pool, job.id)).payload).toEqual({ text: 'still here' });
    expect(logged.filter((m) => /internal error/.test(m))).toEqual([]);
  });
});
