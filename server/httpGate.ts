import type { IncomingMessage, ServerResponse } from 'node:http';
import { ERROR_CODES } from '../shared/index.js';
import type { AuthResult, Authenticator } from './auth.js';
import { QueueError, toQueueError } from './errors.js';
import { requestIdOf, sendRefusal } from './httpReply.js';
import type { SkipqLogger } from './logger.js';

/** Options of {@link createHttpGate}. */
export interface HttpGateOptions {
  auth: Authenticator;
  /** Largest body one request may send. */
  maxBodyBytes: number;
  /** Body bytes held at once over all requests: a request that would go past it gets 429 SERVER_BUSY before its body is read. */
  maxInflightBodyBytes: number;
  logger: SkipqLogger;
  /** Serves a request whose caller is identified and whose body (undefined for GET and HEAD) has been read. */
  serve(req: IncomingMessage, res: ServerResponse, who: AuthResult, body: string | undefined): void;
}

/** The gate every tRPC request passes, and what it holds now. */
export interface HttpGate {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** Body bytes reserved by requests being read or served. */
  readonly inflightBodyBytes: number;
}

// A client told to come back: long enough for a burst of uploads to drain.
const RETRY_AFTER_SECONDS = '1';

/**
 * What a request passes before tRPC sees it, in this order: the caller is
 * identified from the headers alone (the key cache, no query on a hit); a
 * caller without a valid key is refused before one byte of its body is read;
 * the body's bytes are reserved from a budget shared by all requests, and a
 * request that would go past it is refused with 429; only then is the body read.
 *
 * Why: the hot path used to read the whole body before looking at the key, so
 * 100 keyless 15 MiB uploads held 1.5 GB at once (RSS 114 -> 883 MiB here).
 * Node applies TCP backpressure to a body nobody reads, so a refused or waiting
 * request costs a socket, not memory.
 */
export function createHttpGate(options: HttpGateOptions): HttpGate {
  let inflight = 0;
  const { maxBodyBytes, logger } = options;

  /**
   * Answers at once, then reads and drops what is left of the body before ending
   * the response: a client still uploading would otherwise be cut off (EPIPE,
   * ECONNRESET) when a `Connection: close` socket closes, before it reads the answer.
   */
  const refuse = (req: IncomingMessage, res: ServerResponse, error: QueueError, headers: Record<string, string> = {}): void => {
    if (req.complete) return sendRefusal(req, res, error, headers);
    sendRefusal(req, res, error, headers, false);
    let dropped = 0;
    req.on('data', (chunk: Buffer) => {
      dropped += chunk.length;
      // Only a body without Content-Length can get here past the limit; it is not worth reading.
      if (dropped > maxBodyBytes) req.destroy();
    });
    req.on('end', () => res.end());
    req.on('error', () => {});
    req.on('close', () => {
      if (!res.writableEnded) res.end();
    });
    req.resume();
  };

  const busy = (declared: number | 'chunked'): QueueError =>
    new QueueError(
      ERROR_CODES.SERVER_BUSY,
      `the server is reading ${inflight} bytes of request bodies, its limit of ${options.maxInflightBodyBytes} at once` +
        `${declared === 'chunked' ? '' : ` leaves no room for ${declared} more`}; retry shortly`,
    );

  const read = (req: IncomingMessage, res: ServerResponse, who: AuthResult): void => {
    const header = req.headers['content-length'];
    const declared = header === undefined ? undefined : Number(header);
    let reserved = 0;
    const reserve = (bytes: number): boolean => {
      if (inflight + bytes > options.maxInflightBodyBytes) return false;
      inflight += bytes;
      reserved += bytes;
      return true;
    };
    // Given back when the answer is sent or the connection is gone: the text and
    // what it parses into live until then.
    res.once('close', () => {
      inflight -= reserved;
      reserved = 0;
    });
    if (declared !== undefined && !reserve(declared)) return refuse(req, res, busy(declared), { 'retry-after': RETRY_AFTER_SECONDS });

    // With Content-Length, one buffer of that size; chunked, the chunks as they come.
    // Dropped once read: the release below shares their closure and lives until the answer is sent.
    let whole = declared !== undefined ? Buffer.allocUnsafe(declared) : undefined;
    let chunks: Buffer[] = [];
    let size = 0;
    let settled = false;
    const stop = (): void => {
      settled = true;
      whole = undefined;
      chunks = [];
      req.off('data', onData);
      req.off('end', onEnd);
    };
    const onData = (chunk: Buffer): void => {
      if (settled) return;
      if (whole) {
        chunk.copy(whole, size);
        size += chunk.length;
        return;
      }
      size += chunk.length;
      if (size > maxBodyBytes) {
        stop();
        return refuse(req, res, new QueueError(ERROR_CODES.PAYLOAD_TOO_LARGE, `request body is over the limit of ${maxBodyBytes} bytes`));
      }
      if (!reserve(chunk.length)) {
        stop();
        return refuse(req, res, busy('chunked'), { 'retry-after': RETRY_AFTER_SECONDS });
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      if (settled) return;
      const body = whole ? whole.toString('utf8', 0, size) : Buffer.concat(chunks, size).toString('utf8');
      stop();
      options.serve(req, res, who, body);
    };
    const onGone = (): void => {
      if (settled || req.complete) return;
      stop();
      // A client that hangs up mid-upload is not a server fault: one line, no stack.
      logger.warn(
        { requestId: requestIdOf(res), method: req.method, url: req.url, bytesRead: size },
        `request aborted by the client: ${req.method} ${req.url} after ${size}${declared === undefined ? '' : ` of ${declared}`} body bytes`,
      );
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onGone);
    req.on('close', onGone);
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    let who: AuthResult;
    try {
      who = await options.auth.authenticate(req);
    } catch (error) {
      // Looking up a key needs the database: unreachable, that is a 503, not an internal error.
      const domain = toQueueError(error);
      // Every 5xx is logged at error, with the request id the response carries.
      logger.error(
        { requestId: requestIdOf(res), method: req.method, url: req.url, status: domain ? 503 : 500, err: error },
        domain ? `database unavailable authenticating ${req.method} ${req.url}` : `internal error authenticating ${req.method} ${req.url}`,
      );
      return refuse(req, res, domain ?? new QueueError(ERROR_CODES.INTERNAL, 'internal server error (logged on the server)'));
    }
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    // Every call with a body needs a key (only health, a query, is public); FORBIDDEN holds for every call.
    if (!who.principal && (hasBody || who.code === 'FORBIDDEN')) {
      return refuse(req, res, new QueueError(who.code === 'FORBIDDEN' ? ERROR_CODES.FORBIDDEN : ERROR_CODES.UNAUTHORIZED, who.error));
    }
    if (!hasBody) return options.serve(req, res, who, undefined);
    read(req, res, who);
  };

  return {
    handle: (req, res) => void handle(req, res),
    get inflightBodyBytes() {
      return inflight;
    },
  };
}
