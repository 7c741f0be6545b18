import { createTRPCClient, httpBatchLink, httpSubscriptionLink, splitLink, TRPCClientError } from '@trpc/client';
import type { inferRouterOutputs } from '@trpc/server';
import { EventSource } from 'eventsource';
import superjson from 'superjson';
import type { AppRouter } from '../../server/routers/_app.js';
import { config } from './config.js';
import { createStore } from './store.js';

/** Outputs of every procedure, as the router declares them. */
export type Outputs = inferRouterOutputs<AppRouter>;
/** What `queues.stats` answers. */
export type Stats = Outputs['queues']['stats'];

// The key lives in this tab's sessionStorage only: closing the tab forgets it,
// and it is never written to localStorage, a cookie or the URL.
const KEY_STORAGE = 'skipq.apiKey';

function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_STORAGE);
  } catch {
    return null;
  }
}

let apiKey: string | null = storedKey();

const authorization = (): Record<string, string> => (apiKey ? { authorization: `Bearer ${apiKey}` } : {});

/**
 * The typed client of the server's router: the dashboard has no API of its own.
 * Calls made in the same tick share one HTTP request. Subscriptions
 * (events.jobs) go over SSE with the `eventsource` package's EventSource
 * rather than the browser's: the browser's cannot send headers, and the server
 * takes the key only from the Authorization header, never from the URL (where
 * it would land in access logs and proxies).
 */
export const api = createTRPCClient<AppRouter>({
  links: [
    splitLink({
      condition: (op) => op.type === 'subscription',
      true: httpSubscriptionLink({
        url: config.trpcPath,
        transformer: superjson,
        EventSource,
        // Read at each (re)connection, so a key entered later is sent.
        eventSourceOptions: () => ({ fetch: (input, init) => fetch(input, { ...init, headers: { ...init.headers, ...authorization() } }) }),
      }),
      false: httpBatchLink({ url: config.trpcPath, transformer: superjson, maxItems: 20, headers: authorization }),
    }),
  ],
});

/** Why a call failed, in the server's words. */
export interface Failure {
  /** skipq's code (`data.skipqCode`, else tRPC's `data.code`), e.g. UNAUTHORIZED, FORBIDDEN, WRONG_STATE, INVALID_INPUT; NETWORK when the server did not answer. */
  code: string;
  message: string;
  /** For refused input: each problem with the path of the field it is about (`data.issues`), e.g. `rateLimit.max`. */
  issues?: Array<{ path: string; message: string }>;
}

/** Reads a tRPC error (or anything thrown) as a {@link Failure}. */
export function failureOf(error: unknown): Failure {
  if (error instanceof TRPCClientError) {
    const data = error.data as { code?: string; skipqCode?: string; issues?: Array<{ path?: unknown[]; message?: string }> } | undefined;
    if (!data?.code) return { code: 'NETWORK', message: `the server did not answer (${error.message})` };
    const failure: Failure = { code: data.skipqCode ?? data.code, message: error.message };
    if (Array.isArray(data.issues)) failure.issues = data.issues.map((i) => ({ path: (i.path ?? []).map(String).join('.'), message: String(i.message ?? '') }));
    return failure;
  }
  return { code: 'INTERNAL', message: error instanceof Error ? error.message : String(error) };
}

/** Whether the dashboard may call the API, or must ask for a key first (and why). */
export type AuthState = { state: 'checking' } | { state: 'ok'; keyed: boolean } | { state: 'needed'; message: string | null };

/** The dashboard's authentication state; the app shows the key prompt while it is `needed`. */
export const auth = createStore<AuthState>({ state: 'checking' });

function roleMessage(message: string): string {
  const role = /has role "(\w+)"/.exec(message)?.[1];
  return (
    `${role ? `This is a ${role} key. ` : ''}The dashboard needs an admin key: it reads queues.stats and retries jobs, ` +
    'which only admin keys may do.'
  );
}

/**
 * Notes a failed call: an unknown, revoked or missing key, or a key without the
 * admin role, sends the dashboard back to the key prompt. Answers the failure.
 */
export function report(error: unknown): Failure {
  const failure = failureOf(error);
  if (failure.code === 'UNAUTHORIZED') {
    auth.set({ state: 'needed', message: apiKey ? failure.message : null });
  } else if (failure.code === 'FORBIDDEN' && /needs a key with role "admin"/.test(failure.message)) {
    auth.set({ state: 'needed', message: roleMessage(failure.message) });
  }
  return failure;
}

/**
 * Notes a refused action: like {@link report}, except that FORBIDDEN stays on
 * the page (the action's answer says it), so a key that may read but not act
 * (a key limited to some queues, or one whose role does not allow the move)
 * sees the server's refusal where it pressed, not a key prompt.
 */
export function refusalOf(error: unknown): Failure {
  const failure = failureOf(error);
  return failure.code === 'FORBIDDEN' ? failure : report(error);
}

/** Checks once whether the server answers the dashboard without a key, or with the one this tab holds. */
export async function checkAccess(): Promise<void> {
  try {
    await api.queues.stats.query();
    auth.set({ state: 'ok', keyed: apiKey !== null });
  } catch (error) {
    report(error);
    // Not a key problem (the server is down, say): the pages show their own errors and keep trying.
    if (auth.get().state === 'checking') auth.set({ state: 'ok', keyed: apiKey !== null });
  }
}

/**
 * Tries a key: kept (in sessionStorage) only when the server accepts it for
 * queues.stats, which needs the admin role. Answers why not, or null.
 */
export async function tryKey(candidate: string): Promise<string | null> {
  const previous = apiKey;
  apiKey = candidate.trim();
  try {
    await api.queues.stats.query();
  } catch (error) {
    apiKey = previous;
    const failure = failureOf(error);
    return failure.code === 'FORBIDDEN' ? roleMessage(failure.message) : failure.message;
  }
  try {
    sessionStorage.setItem(KEY_STORAGE, apiKey);
  } catch {
    // Storage disabled: the key lasts as long as this page.
  }
  auth.set({ state: 'ok', keyed: true });
  return null;
}

/** Forgets the key of this tab. */
export function forgetKey(): void {
  apiKey = null;
  try {
    sessionStorage.removeItem(KEY_STORAGE);
  } catch {
    // nothing stored
  }
  auth.set({ state: 'checking' });
  void checkAccess();
}
