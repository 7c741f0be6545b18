import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { PACKAGE_DIR } from './packageDir.js';
import { gzipSync } from 'node:zlib';
import type { JobView } from '../shared/index.js';

/** Options of the web dashboard served at `/` (`createQueueServer({ dashboard })`). */
export interface DashboardOptions {
  /**
   * Whether the dashboard may show job payloads and results (each behind a
   * click). With `false` the dashboard offers no way to show them, and the
   * server answers job views (`jobs.get/list/cancel/retry`) to browsers with
   * `payload` and `result` set to null. Default true; env `SKIPQ_DASHBOARD_PAYLOADS=0`.
   */
  showPayloads?: boolean;
  /** The built files (`index.html`, `assets/`). Default `dashboard/dist` at the package root. */
  dir?: string;
}

/** What the server's request handler uses of the dashboard. */
export interface Dashboard {
  /** Answers GET/HEAD requests for the dashboard's pages and files; false for anything else (the caller goes on). */
  serve(req: IncomingMessage, res: ServerResponse): boolean;
  /** Whether job views sent in answer to `req` must leave out payloads and results. */
  hidesPayloadsFor(req: IncomingMessage): boolean;
}

/**
 * Content-Security-Policy of every dashboard response. No inline scripts or
 * styles: the build emits only files under /assets, and the server's settings
 * reach the page in a <meta> tag, not a script.
 */
export const DASHBOARD_CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
  "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'";

// Found from the package folder, not import.meta.url: bundled, this module lives in dist/server/.
const DEFAULT_DIR = join(PACKAGE_DIR, 'dashboard', 'dist');

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.json': 'application/json; charset=utf-8',
  '.txt': 'text/plain; charset=utf-8',
  '.woff2': 'font/woff2',
};
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.svg', '.json', '.txt']);

/** The placeholder in index.html that the server fills with its settings (see dashboard/index.html). */
const CONFIG_META = /<meta name="skipq-dashboard" content="[^"]*"\s*\/?>/;

const SECURITY_HEADERS = {
  'content-security-policy': DASHBOARD_CSP,
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'x-frame-options': 'DENY',
} as const;

interface StaticFile {
  body: Buffer;
  gzip: Buffer | null;
  type: string;
  etag: string;
  /** Modification time when read: a rebuild while the server runs is picked up. */
  mtimeMs: number;
}

const escapeAttribute = (text: string): string =>
  text.replaceAll('&', '&amp;').replaceAll('"', '&quot;').replaceAll('<', '&lt;').replaceAll('>', '&gt;');

/** The job view without payload and result, for browsers when payloads are hidden. */
export function withoutPayloads(view: JobView): JobView {
  return { ...view, payload: null, result: null };
}

/** A request's path, or null when it is not one the dashboard could serve. */
function pathOf(req: IncomingMessage): string | null {
  if (req.method !== 'GET' && req.method !== 'HEAD') return null;
  const raw = (req.url ?? '/').split('?', 1)[0] as string;
  if (raw === '/trpc' || raw.startsWith('/trpc/')) return null;
  try {
    const path = decodeURIComponent(raw);
    return path.includes('\0') ? null : path;
  } catch {
    return null;
  }
}

/**
 * Creates the dashboard's file server. Files are read on first use and kept in
 * memory (the whole build is about 100 kB), re-read when they change on disk.
 * `false` turns the dashboard off: nothing is served and payloads are not hidden.
 */
export function createDashboard(options: DashboardOptions | false = {}): Dashboard {
  if (options === false) return { serve: () => false, hidesPayloadsFor: () => false };
  const dir = resolve(options.dir ?? DEFAULT_DIR);
  const showPayloads = options.showPayloads !== false;
  const files = new Map<string, StaticFile>();
  const config = JSON.stringify({ showPayloads, trpcPath: '/trpc' });

  const load = (relative: string): StaticFile | null => {
    const full = join(dir, relative);
    if (full !== dir && !full.startsWith(dir + sep)) return null;
    let mtimeMs: number;
    try {
      const info = statSync(full);
      if (!info.isFile()) return null;
      mtimeMs = info.mtimeMs;
    } catch {
      files.delete(relative);
      return null;
    }
    const cached = files.get(relative);
    if (cached && cached.mtimeMs === mtimeMs) return cached;
    let body = readFileSync(full);
    const ext = extname(full);
    if (relative === 'index.html') body = Buffer.from(body.toString('utf8').replace(CONFIG_META, `<meta name="skipq-dashboard" content="${escapeAttribute(config)}">`));
    const file: StaticFile = {
      body,
      gzip: COMPRESSIBLE.has(ext) && body.length > 1024 ? gzipSync(body) : null,
      type: CONTENT_TYPES[ext] ?? 'application/octet-stream',
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
      mtimeMs,
    };
    files.set(relative, file);
    return file;
  };

  const send = (req: IncomingMessage, res: ServerResponse, file: StaticFile, cacheControl: string): void => {
    const headers: Record<string, string | number> = { ...SECURITY_HEADERS, 'content-type': file.type, 'cache-control': cacheControl, etag: file.etag, vary: 'accept-encoding' };
    if (req.headers['if-none-match'] === file.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    const gzip = file.gzip && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? '')) ? file.gzip : null;
    const body = gzip ?? file.body;
    if (gzip) headers['content-encoding'] = 'gzip';
    headers['content-length'] = body.length;
    res.writeHead(200, headers);
    res.end(req.method === 'HEAD' ? undefined : body);
  };

  const plain = (res: ServerResponse, status: number, text: string): void => {
    res.writeHead(status, { ...SECURITY_HEADERS, 'content-type': 'text/plain; charset=utf-8', 'cache-control': 'no-store' });
    res.end(text);
  };

  return {
    serve(req, res) {
      const path = pathOf(req);
      if (path === null) return false;
      if (extname(path) !== '') {
        const file = load(path.slice(1));
        if (!file) {
          // A page asking for an asset of another build gets a plain 404; API clients probing paths get the server's JSON 404.
          if (!path.startsWith('/assets/') && path !== '/favicon.svg') return false;
          plain(res, 404, `not found: ${path}`);
          return true;
        }
        // Vite puts a content hash in every name under assets/: such a file never changes.
        send(req, res, file, path.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache');
        return true;
      }
      // Every other path is a page of the single-page app (/, /jobs, /jobs/<id>, ...),
      // for browsers; other clients keep the server's JSON 404 that points at /trpc.
      const accept = String(req.headers.accept ?? '');
      if (path !== '/' && !accept.includes('text/html')) return false;
      const index = load('index.html');
      if (!index) {
        plain(res, 503, `The skipq dashboard is not built (no ${join(dir, 'index.html')}).\nBuild it with: npm ci --prefix dashboard && npm run build:dashboard\nThe API is at /trpc.\n`);
        return true;
      }
      send(req, res, index, 'no-cache');
      return true;
    },
    // Browsers send Sec-Fetch-Site with every request and page scripts cannot
    // remove it, so this covers the dashboard and a URL typed into the address
    // bar alike. It is a safeguard against showing data, not access control:
    // an admin key can still read payloads with any other client.
    hidesPayloadsFor: (req) => !showPayloads && req.headers['sec-fetch-site'] !== undefined,
  };
}
