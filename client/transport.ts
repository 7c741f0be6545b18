import { Pool } from 'undici';

/** A fetch for tRPC's links, and the connection pool behind it. */
export interface Transport {
  fetch: typeof globalThis.fetch;
  close(): Promise<void>;
}

/**
 * A minimal `fetch` over undici's Pool with keep-alive connections. Measured on
 * this machine: Node 20's global fetch manages about 1,600 requests/s (0.7 ms
 * of CPU each), undici's Pool.request 11,000-12,000. tRPC's links only need
 * `json()` of the response, which is all this provides.
 */
export function createTransport(baseUrl: string, options: { connections?: number; headers?: Record<string, string> } = {}): Transport {
  const origin = new URL(baseUrl).origin;
  const pool = new Pool(origin, { connections: options.connections ?? 16, keepAliveTimeout: 60_000, headersTimeout: 0, bodyTimeout: 0 });
  const extra = options.headers ?? {};
  const fastFetch = async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    const res = await pool.request({
      path: url.pathname + url.search,
      method: (init?.method ?? 'GET') as 'GET',
      headers: { ...(init?.headers as Record<string, string> | undefined), ...extra },
      body: (init?.body as string | undefined) ?? null,
      signal: init?.signal ?? undefined,
    });
    const text = await res.body.text();
    const status = res.statusCode;
    return {
      ok: status >= 200 && status < 300,
      status,
      json: async () => {
        try {
          return JSON.parse(text) as unknown;
        } catch {
          throw new Error(`skipq server answered HTTP ${status} with a body that is not JSON: ${text.slice(0, 200)}`);
        }
      },
      text: async () => text,
    } as Response;
  };
  return { fetch: fastFetch as typeof globalThis.fetch, close: () => pool.close() };
}
