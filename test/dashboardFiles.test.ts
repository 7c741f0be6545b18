import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDashboard, DASHBOARD_CSP, type DashboardOptions } from '../server/dashboard.js';

const INDEX = `<!doctype html><html><head><meta name="skipq-dashboard" content="{}" /><script type="module" src="/assets/app-1a2b3c.js"></script></head><body></body></html>`;
const SCRIPT = `console.log(${JSON.stringify('x'.repeat(4000))});`;

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A plain node:http server that, like the skipq server, asks the dashboard first and answers 404 JSON otherwise. */
async function serve(options: DashboardOptions | false): Promise<{ get(path: string, headers?: Record<string, string>, method?: string): Promise<Answer>; close(): Promise<void> }> {
  const dashboard = createDashboard(options);
  const server: Server = createServer((req, res) => {
    if (dashboard.serve(req, res)) return;
    res.writeHead(404, { 'content-type': 'application/json' });
    res.end('{"error":"not found"}');
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    get: (path, headers = {}, method = 'GET') =>
      new Promise((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, method, headers }, (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
        });
        req.on('error', reject);
        req.end();
      }),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('the dashboard file server', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'skipq-dashboard-'));
    mkdirSync(join(dir, 'built', 'assets'), { recursive: true });
    writeFileSync(join(dir, 'built', 'index.html'), INDEX);
    writeFileSync(join(dir, 'built', 'assets', 'app-1a2b3c.js'), SCRIPT);
    writeFileSync(join(dir, 'secret.txt'), 'outside the build');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('serves index.html at / and at every page path for browsers, with the CSP and its settings in a meta tag', async () => {
    const s = await serve({ dir: join(dir, 'built'), showPayloads: false });
    try {
      for (const path of ['/', '/jobs', '/jobs/01930000-0000-7000-8000-000000000000?x=1']) {
        const answer = await s.get(path, { accept: 'text/html,*/*' });
        expect(answer.status, path).toBe(200);
        expect(answer.headers['content-type']).toBe('text/html; charset=utf-8');
        expect(answer.headers['content-security-policy']).toBe(DASHBOARD_CSP);
        expect(answer.headers['x-content-type-options']).toBe('nosniff');
        expect(answer.headers['cache-control']).toBe('no-cache');
        expect(answer.body.toString()).toContain('<meta name="skipq-dashboard" content="{&quot;showPayloads&quot;:false,&quot;trpcPath&quot;:&quot;/trpc&quot;}">');
      }
    } finally {
      await s.close();
    }
  });

  it('serves hashed assets as immutable, gzipped when asked, and answers 304 to a matching ETag', async () => {
    const s = await serve({ dir: join(dir, 'built') });
    try {
      const plain = await s.get('/assets/app-1a2b3c.js');
      expect(plain.status).toBe(200);
      expect(plain.headers['content-type']).toBe('text/javascript; charset=utf-8');
      expect(plain.headers['cache-control']).toBe('public, max-age=31536000, immutable');
      expect(plain.body.toString()).toBe(SCRIPT);
      const zipped = await s.get('/assets/app-1a2b3c.js', { 'accept-encoding': 'gzip, br' });
      expect(zipped.headers['content-encoding']).toBe('gzip');
      expect(gunzipSync(zipped.body).toString()).toBe(SCRIPT);
      const again = await s.get('/assets/app-1a2b3c.js', { 'if-none-match': String(plain.headers.etag) });
      expect(again.status).toBe(304);
      const head = await s.get('/assets/app-1a2b3c.js', {}, 'HEAD');
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
    } finally {
      await s.close();
    }
  });

  it('leaves the API, other methods, non-browser clients and missing files alone, and never serves outside its folder', async () => {
    const s = await serve({ dir: join(dir, 'built') });
    try {
      expect((await s.get('/assets/missing-000.js')).status).toBe(404);
      expect((await s.get('/assets/missing-000.js')).headers['content-type']).toBe('text/plain; charset=utf-8');
      // Not the dashboard's: the server's own JSON 404 answers.
      for (const [path, headers, method] of [
        ['/trpc/jobs.list', { accept: 'text/html' }, 'GET'],
        ['/trpc', { accept: 'text/html' }, 'GET'],
        ['/', {}, 'POST'],
        ['/jobs', { accept: 'application/json' }, 'GET'],
        ['/robots.txt', {}, 'GET'],
        ['/assets/../../secret.txt', {}, 'GET'],
        ['/assets/%2e%2e/%2e%2e/secret.txt', {}, 'GET'],
        ['/%00', { accept: 'text/html' }, 'GET'],
      ] as const) {
        const answer = await s.get(path, headers, method);
        expect(answer.body.toString(), `${method} ${path}`).not.toContain('outside the build');
        if (!path.startsWith('/assets/')) expect(answer.headers['content-type'], `${method} ${path}`).toBe('application/json');
      }
    } finally {
      await s.close();
    }
  });

  it('answers 503 with how to build it when the dashboard is not built, and nothing when it is turned off', async () => {
    const missing = await serve({ dir: join(dir, 'not-built') });
    try {
      const answer = await missing.get('/', { accept: 'text/html' });
      expect(answer.status).toBe(503);
      expect(answer.body.toString()).toContain('npm run build:dashboard');
    } finally {
      await missing.close();
    }
    const off = await serve(false);
    try {
      expect((await off.get('/', { accept: 'text/html' })).headers['content-type']).toBe('application/json');
    } finally {
      await off.close();
    }
  });

  it('hides payloads only from browsers, and only when told to', () => {
    const browser = { headers: { 'sec-fetch-site': 'same-origin' } } as never;
    const script = { headers: {} } as never;
    expect(createDashboard({ showPayloads: false }).hidesPayloadsFor(browser)).toBe(true);
    expect(createDashboard({ showPayloads: false }).hidesPayloadsFor(script)).toBe(false);
    expect(createDashboard({}).hidesPayloadsFor(browser)).toBe(false);
    expect(createDashboard(false).hidesPayloadsFor(browser)).toBe(false);
  });
});
