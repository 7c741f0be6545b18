import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BlockList, isIP } from 'node:net';
import type pg from 'pg';
import { KEYS_CHANNEL } from './channels.js';
import { OPEN_PRINCIPAL, type Principal, type Role } from './principal.js';
import { isDatabaseUnavailable } from './errors.js';

/** The NOTIFY channel the key commands use so every server drops its cache at once. */
export { KEYS_CHANNEL } from './channels.js';

const KEY_PATTERN = /^skq_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
// A revocation reaches every server through NOTIFY at once; this bounds it when LISTEN is down.
const CACHE_TTL_MS = 5000;
// An unknown key id is remembered only briefly: a key created while LISTEN is down works within a second.
const MISS_TTL_MS = 1000;
// Real keys and unknown ids are kept apart, so a flood of made-up ids cannot push real keys out.
const DEFAULT_CACHE_SIZE = 1000;

/** What authentication concluded about a request: a principal, or why not (FORBIDDEN: no key could help). */
export type AuthResult =
  | { principal: Principal; error: null }
  | { principal: null; error: string; code: 'UNAUTHORIZED' | 'FORBIDDEN' };

/** Authenticates requests by `Authorization: Bearer skq_...` against api_keys. */
export interface Authenticator {
  /** Identifies the caller from the request's headers alone; the body is never needed. */
  authenticate(req: IncomingMessage): Promise<AuthResult>;
  /** Whether keys are required: some key exists, or the server listens beyond loopback. */
  required(): Promise<boolean>;
  /** Why key `keyId` no longer holds (revoked, deleted), or null: for a call that waited since it was authenticated. */
  recheck(keyId: string): Promise<string | null>;
  /** Forgets cached keys (on NOTIFY from the key commands). */
  invalidate(): void;
  /** Cache sizes and database lookups so far, for tests and diagnostics. */
  stats(): { cachedKeys: number; cachedMisses: number; lookups: number };
}

/** Options of {@link createAuthenticator}. */
export interface AuthenticatorOptions {
  /** Set when listening beyond loopback: keys are required even before any exists. */
  alwaysRequired: boolean;
  /** Most keys (and, separately, most unknown ids) remembered. Default 1000. */
  cacheSize?: number;
}

interface KeyRow {
  id: string;
  role: Role;
  queues: string[] | null;
  secret_hash: string;
  revoked_at: Date | null;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** A map that forgets its least recently used entry past `max`, and entries older than `ttlMs`. */
function createLru<V>(max: number, ttlMs: number) {
  const entries = new Map<string, { value: V; at: number }>();
  return {
    get(key: string): { value: V } | undefined {
      const hit = entries.get(key);
      if (!hit) return undefined;
      entries.delete(key);
      if (Date.now() - hit.at >= ttlMs) return undefined;
      entries.set(key, hit);
      return hit;
    },
    set(key: string, value: V): void {
      entries.delete(key);
      entries.set(key, { value, at: Date.now() });
      if (entries.size > max) entries.delete(entries.keys().next().value as string);
    },
    clear: () => entries.clear(),
    get size() {
      return entries.size;
    },
  };
}

/** Creates the authenticator. */
export function createAuthenticator(pool: pg.Pool, options: AuthenticatorOptions): Authenticator {
  const cacheSize = options.cacheSize ?? DEFAULT_CACHE_SIZE;
  const keys = createLru<KeyRow>(cacheSize, CACHE_TTL_MS);
  const misses = createLru<true>(cacheSize, MISS_TTL_MS);
  // Concurrent requests with the same uncached id share one query.
  const pending = new Map<string, Promise<KeyRow | null>>();
  // Bumped by invalidate(): a lookup that started before a revocation must not cache its stale row.
  let generation = 0;
  let lookups = 0;
  let anyKey: { value: boolean; at: number } | undefined;

  const required = async (): Promise<boolean> => {
    if (options.alwaysRequired) return true;
    if (!anyKey || Date.now() - anyKey.at > CACHE_TTL_MS) {
      try {
        const { rows } = await pool.query<{ any: boolean }>('SELECT EXISTS (SELECT 1 FROM api_keys) AS any');
        anyKey = { value: rows[0]?.any ?? false, at: Date.now() };
      } catch (error) {
        // While the database is down no key can be created or revoked: the last
        // answer still holds, and health keeps answering instead of failing here.
        if (anyKey && isDatabaseUnavailable(error)) return anyKey.value;
        throw error;
      }
    }
    return anyKey.value;
  };

  const lookup = (id: string): Promise<KeyRow | null> => {
    const hit = keys.get(id);
    if (hit) return Promise.resolve(hit.value);
    if (misses.get(id)) return Promise.resolve(null);
    const shared = pending.get(id);
    if (shared) return shared;
    const startedIn = generation;
    lookups++;
    const query: Promise<KeyRow | null> = pool
      .query<KeyRow>('SELECT id, role, queues, secret_hash, revoked_at FROM api_keys WHERE id = $1', [id])
      .then(({ rows }) => {
        const row = rows[0] ?? null;
        if (startedIn === generation) {
          if (row) keys.set(id, row);
          else misses.set(id, true);
        }
        return row;
      })
      .finally(() => {
        // invalidate() may have started a newer lookup for this id meanwhile.
        if (pending.get(id) === query) pending.delete(id);
      });
    pending.set(id, query);
    return query;
  };

  return {
    required,
    invalidate() {
      generation++;
      keys.clear();
      misses.clear();
      pending.clear();
      anyKey = undefined;
    },
    stats: () => ({ cachedKeys: keys.size, cachedMisses: misses.size, lookups }),
    async authenticate(req) {
      if (!(await required())) {
        // Without keys every caller is an admin, so only this machine may call: a
        // browser page whose name was rebound to 127.0.0.1 (DNS rebinding) still sends its own Host.
        if (isLoopbackHost(req.headers.host)) return { principal: OPEN_PRINCIPAL, error: null };
        return {
          principal: null,
          code: 'FORBIDDEN',
          error: `this server has no API keys, so it answers only requests addressed to this machine (Host: localhost, 127.0.0.1 or [::1]), not Host: ${JSON.stringify(req.headers.host ?? '')}; create a key to serve other names`,
        };
      }
      const header = req.headers.authorization;
      if (!header) return { principal: null, code: 'UNAUTHORIZED', error: 'this server needs an API key: send "Authorization: Bearer skq_..."' };
      const match = /^Bearer +(\S+) *$/i.exec(header);
      const key = match ? KEY_PATTERN.exec(match[1] as string) : null;
      if (!key) return { principal: null, code: 'UNAUTHORIZED', error: 'the Authorization header does not hold a skipq key (Bearer skq_<id>_<secret>)' };
      const [, id, secret] = key as unknown as [string, string, string];
      const row = await lookup(id);
      const given = Buffer.from(sha256(secret), 'hex');
      if (!row || !timingSafeEqual(given, Buffer.from(row.secret_hash, 'hex'))) return { principal: null, code: 'UNAUTHORIZED', error: 'unknown API key' };
      if (row.revoked_at) return { principal: null, code: 'UNAUTHORIZED', error: `API key ${id} was revoked` };
      return { principal: { role: row.role, queues: row.queues && row.queues.length > 0 ? row.queues : null, keyId: row.id }, error: null };
    },
    async recheck(keyId) {
      try {
        const row = await lookup(keyId);
        if (!row) return `API key ${keyId} no longer exists`;
        return row.revoked_at ? `API key ${keyId} was revoked` : null;
      } catch (error) {
        // While the database is down no key can be revoked; the caller keeps what it was given.
        if (isDatabaseUnavailable(error)) return null;
        throw error;
      }
    },
  };
}

/** A new key: the id and the full secret, shown once. */
export interface CreatedKey {
  id: string;
  key: string;
  role: Role;
  queues: string[];
  name: string;
}

/** Creates a key; only its hash is stored. Without `queues` the key may use every queue. */
export async function createApiKey(pool: pg.Pool, input: { role: Role; queues?: string[]; name?: string }): Promise<CreatedKey> {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  // Stored as an empty array, a key limited to no queue would be a key for every queue.
  if (input.queues && input.queues.length === 0) throw new TypeError('queues must name at least one queue; leave it out for a key that may use every queue');
  const queues = input.queues ?? [];
  const name = input.name ?? `${input.role} key`;
  await pool.query('INSERT INTO api_keys (id, name, role, queues, secret_hash) VALUES ($1, $2, $3, $4, $5)', [id, name, input.role, queues, sha256(secret)]);
  await pool.query('SELECT pg_notify($1, $2)', [KEYS_CHANNEL, id]);
  return { id, key: `skq_${id}_${secret}`, role: input.role, queues, name };
}

/** Revokes a key; answers false when there is no such active key. */
export async function revokeApiKey(pool: pg.Pool, id: string): Promise<boolean> {
  const { rowCount } = await pool.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL', [id]);
  await pool.query('SELECT pg_notify($1, $2)', [KEYS_CHANNEL, id]);
  return (rowCount ?? 0) > 0;
}

/**
 * Revokes every key and removes all key records, revoked ones too: the server
 * requires keys as long as any record exists (a revocation never loosens access),
 * so this is the one way back to keyless loopback. Answers how many were active and how many records went.
 */
export async function removeAllApiKeys(pool: pg.Pool): Promise<{ active: number; removed: number }> {
  const { rows } = await pool.query<{ active: number; removed: number }>(
    `WITH removed AS (
       DELETE FROM api_keys
       RETURNING revoked_at
     )
     SELECT count(*) FILTER (WHERE revoked_at IS NULL)::int AS active,
            count(*)::int AS removed
     FROM removed`,
  );
  await pool.query('SELECT pg_notify($1, $2)', [KEYS_CHANNEL, '*']);
  return rows[0] ?? { active: 0, removed: 0 };
}

/** Lists keys without secrets. */
export async function listApiKeys(pool: pg.Pool) {
  const { rows } = await pool.query<{ id: string; name: string; role: Role; queues: string[] | null; created_at: Date; revoked_at: Date | null }>(
    'SELECT id, name, role, queues, created_at, revoked_at FROM api_keys ORDER BY created_at',
  );
  return rows;
}

const LOOPBACK = new BlockList();
// ::ffff:127.0.0.0/104 (IPv4-mapped loopback) is matched by the IPv4 subnet.
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

/**
 * True for addresses only this machine can reach: "localhost", 127.0.0.0/8, ::1
 * and ::ffff:127.x.x.x. Parsed, never matched by prefix ("127.example.com" is a name anyone can own).
 */
export function isLoopback(host: string): boolean {
  if (host.toLowerCase() === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  const family = isIP(bare);
  // A valid dotted quad is in 127.0.0.0/8 exactly when its first octet is 127
  // (BlockList.check costs about 5 us, and this runs on every keyless request).
  if (family === 4) return bare.startsWith('127.');
  return family === 6 && (bare === '::1' || LOOPBACK.check(bare, 'ipv6'));
}

/** True when a Host header ("localhost:3000", "[::1]:3000", "127.0.0.1") names this machine. */
export function isLoopbackHost(header: string | undefined): boolean {
  if (!header) return false;
  const m = /^(\[[^\]]+\]|[^:\[\]]+)(?::\d{1,5})?$/.exec(header);
  return m !== null && isLoopback(m[1] as string);
}
