import { Command, Option } from 'commander';
import type { SkipqTrpc } from '../../client/trpc.js';
import { CliError } from './errors.js';

/** Where client-side commands find the server when neither --url nor SKIPQ_URL says. */
export const DEFAULT_URL = 'http://127.0.0.1:3000/trpc';

/** Connection options of the commands that talk to a running server over HTTP. */
export interface RemoteOptions {
  url: string;
  apiKey?: string;
}

/** Adds --url and --api-key to `command`. */
export function withRemoteOptions(command: Command): Command {
  return command
    .addOption(new Option('--url <url>', "the server's tRPC endpoint").env('SKIPQ_URL').default(DEFAULT_URL))
    .addOption(new Option('--api-key <key>', 'API key, sent as Authorization: Bearer').env('SKIPQ_API_KEY'));
}

/** The typed client for `options`; a bad URL is a usage error. */
export async function connect(options: RemoteOptions): Promise<{ trpc: SkipqTrpc; close(): Promise<void> }> {
  // Loaded here, not at the top: `skipq --help` and the server commands start without the client's modules.
  const { createTrpc } = await import('../../client/trpc.js');
  try {
    const { trpc, transport } = createTrpc({ url: options.url, ...(options.apiKey ? { apiKey: options.apiKey } : {}) }, false);
    return { trpc, close: () => transport.close() };
  } catch (error) {
    if (error instanceof TypeError) throw new CliError(error.message, 2);
    throw error;
  }
}

/** A client call's failure as a CLI error: the server's message and code, or that no server answered. */
export function remoteFailure(error: unknown, url: string): CliError {
  if (error instanceof Error && error.name === 'TRPCClientError') {
    const failure = error as Error & { data?: unknown; cause?: unknown };
    const data = failure.data as { code?: string; httpStatus?: number } | undefined;
    if (data?.code) return new CliError(`${error.message} (${data.code}${data.httpStatus ? `, HTTP ${data.httpStatus}` : ''})`);
    const cause = (failure.cause as { code?: string; cause?: { code?: string } } | undefined) ?? {};
    const code = cause.code ?? cause.cause?.code;
    return new CliError(`no skipq server answered at ${url}${code ? ` (${code})` : ''}: is it running (skipq serve), and is --url / SKIPQ_URL right? (${error.message})`);
  }
  return error instanceof CliError ? error : new CliError((error as Error).message ?? String(error));
}

/** Runs `work` with a client for `options`, turning its failures into CLI errors, and closes it. */
export async function withRemote<T>(options: RemoteOptions, work: (trpc: SkipqTrpc) => Promise<T>): Promise<T> {
  const { trpc, close } = await connect(options);
  try {
    return await work(trpc);
  } catch (error) {
    throw remoteFailure(error, options.url);
  } finally {
    await close().catch(() => {});
  }
}

/** Prints a value as indented JSON (dates as ISO strings). */
export function printJson(value: unknown): void {
  console.log(JSON.stringify(value, null, 2));
}
