import http from 'node:http';
import https from 'node:https';

/** A fetch for tRPC's links, and the keep-alive connections behind it. */
export interface Transport {
  /** Requests cut after the transport's `requestTimeoutMs`. */
  fetch: typeof globalThis.fetch;
  /** The same fetch with another time limit, e.g. a long-poll's wait plus `requestTimeoutMs`. */
  fetchWithin(timeoutMs: number): typeof globalThis.fetch;
  /** Closes the connections; requests still in flight after `graceMs` are dropped. */
  close(graceMs?: number): Promise<void>;
}

/** Options of {@link createTransport}. */
export interface TransportOptions {
  connections?: number;
  headers?: Record<string, string>;
  /** Longest a request may take, from sending to the whole answer. Default 10 000. */
  requestTimeoutMs?: number;
}

/** Default of `requestTimeoutMs`: generous next to a healthy call (milliseconds), short next to a lease. */
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

/** Why a request was cut: it took longer than its time limit. */
export class RequestTimeoutError extends Error {
  override readonly name = 'RequestTimeoutError';
  constructor(readonly path: string, readonly timeoutMs: number) {
    super(`skipq request ${path} got no complete answer within ${timeoutMs} ms`);
  }
}

/** Why a request was refused before it left: the transport was closed. */
export class TransportClosedError extends Error {
  override readonly name = 'TransportClosedError';
  constructor(readonly path: string) {
    super(`skipq request ${path} not sent: the client was closed`);
  }
}

/** The part of a fetch Response that tRPC's links read. */
function responseOf(status: number, text: string): Response {
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
}

/**
 * A minimal `fetch` over node:http (node:https for an https URL) with
 * keep-alive connections: tRPC's links only need `json()` of the response,
 * which is all this provides. Node 20's global fetch managed about 1,600
 * requests/s here (0.7 ms of CPU each).
 *
 * node:http and not undici's Pool, which this used before: loading undici
 * (95 files) was a third of what importing the client costs, and a worker
 * pays that on every start. Measured on this machine: importing the built
 * client 131-198 ms with undici; a request of a claim's size from 16 callers
 * 39-50 µs of client CPU through undici, 48-54 µs through node:http, and
 * 105 against 113-133 µs one call at a time: a worker makes one request per
 * batch, so the start is what counts.
 *
 * The answer is decoded as it arrives (setEncoding). Measured with W3-4K
 * (answers of up to 4 MB), worker peak RSS: Buffer chunks concatenated at the
 * end 160-187 MiB, copied into one buffer of the announced Content-Length
 * 143-179, decoded as they come 133-162 (undici 143-159). It costs about
 * 0.25 ms more client CPU than undici per 200 KB answer (a claim of 1,000
 * no-op jobs): a quarter of a microsecond per job.
 *
 * Every request has a time limit: without one, a server that accepts the
 * connection and never answers held a worker's completions (and its stop())
 * for good. The limit is one timer per request, not per job: requests carry batches.
 */
export function createTransport(baseUrl: string, options: TransportOptions = {}): Transport {
  const base = new URL(baseUrl);
  const client = base.protocol === 'https:' ? https : http;
  const connections = options.connections ?? 16;
  // Idle sockets stay open until the server's Keep-Alive timeout says otherwise (node's agent reads the hint).
  const agent = new client.Agent({ keepAlive: true, maxSockets: connections, maxFreeSockets: connections, scheduling: 'lifo' });
  const extra = options.headers ?? {};
  const inFlight = new Set<Promise<unknown>>();
  let closed = false;

  const send = (url: URL, init: RequestInit | undefined, timeoutMs: number): Promise<Response> =>
    new Promise<Response>((resolve, reject) => {
      const signal = init?.signal ?? undefined;
      if (signal?.aborted) return reject(signal.reason);
      const body = init?.body as string | undefined;
      const headers: Record<string, string> = { ...(init?.headers as Record<string, string> | undefined), ...extra };
      if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
      const req = client.request({ agent, hostname: url.hostname, port: url.port, path: url.pathname + url.search, method: init?.method ?? 'GET', headers });
      let settled = false;
      /** Ends the call's timer and abort listener, once: false when it had ended already. */
      const finish = (): boolean => {
        if (settled) return false;
        settled = true;
        clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        return true;
      };
      // The caller's signal (tRPC's, for an abort) and the time limit end the request alike.
      const cut = (error: unknown): void => {
        if (!finish()) return;
        req.destroy();
        reject(error);
      };
      const onAbort = (): void => cut(signal?.reason);
      const timer = setTimeout(() => cut(new RequestTimeoutError(url.pathname, timeoutMs)), timeoutMs);
      signal?.addEventListener('abort', onAbort, { once: true });
      req.on('error', cut);
      req.on('response', (res) => {
        // Decoded as it arrives: the answer is held once as text, not also as chunks and their concatenation.
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        // A connection dropped mid-answer ends here (node's 'aborted' error), not in a truncated body.
        res.on('error', cut);
        res.on('end', () => {
          if (finish()) resolve(responseOf(res.statusCode ?? 0, text));
        });
      });
      req.end(body);
    });

  const fetchWithin = (timeoutMs: number) => async (input: string | URL | Request, init?: RequestInit): Promise<Response> => {
    const url = new URL(typeof input === 'string' || input instanceof URL ? input : input.url);
    if (closed) throw new TransportClosedError(url.pathname);
    const sent = send(url, init, timeoutMs);
    inFlight.add(sent);
    try {
      return await sent;
    } finally {
      inFlight.delete(sent);
    }
  };
  return {
    fetch: fetchWithin(options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS) as typeof globalThis.fetch,
    fetchWithin: (timeoutMs) => fetchWithin(timeoutMs) as typeof globalThis.fetch,
    async close(graceMs = Infinity) {
      // Requests in flight may finish; past the grace they are dropped.
      closed = true;
      const settledAll = Promise.allSettled([...inFlight]).then(() => undefined);
      if (graceMs !== Infinity) {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([settledAll, new Promise<void>((resolve) => { timer = setTimeout(resolve, Math.max(0, graceMs)); })]);
        clearTimeout(timer);
      } else await settledAll;
      agent.destroy();
    },
  };
}
