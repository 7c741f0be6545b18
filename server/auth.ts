import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type pg from 'pg';
import { KEYS_CHANNEL } from './channels.js';
import { isDatabaseUnavailable } from './errors.js';
import type { Principal, Role } from './principal.js';

/** The NOTIFY channel the key commands use so every server drops its cache at once. */
export { KEYS_CHANNEL } from './channels.js';

const KEY_PATTERN = /^skq_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
// A revocation reaches every server through NOTIFY at once; this bounds it when LISTEN is down.
const CACHE_TTL_MS = 5000;

/** What authentication concluded about a request. */
export type AuthResult = { principal: Principal; error: null } | { principal: null; error: string };

/** Authenticates requests by `Authorization: Bearer skq_...` against api_keys. */
export interface Authenticator {
  authenticate(req: IncomingMessage): Promise<AuthResult>;
  /** Whether keys are required: some key exists, or the server listens beyond loopback. */
  required(): Promise<boolean>;
  /** Forgets cached keys (on NOTIFY from the key commands). */
  invalidate(): void;
}

interface KeyRow {
  id: string;
  role: Role;
  queues: string[] | null;
  secret_hash: string;
  revoked_at: Date | null;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Creates the authenticator. `alwaysRequired` is set when listening beyond loopback. */
export function createAuthenticator(pool: pg.Pool, alwaysRequired: boolean): Authenticator {
  const cache = new Map<string, { row: KeyRow | null; at: number }>();
  // Bumped by invalidate(): a lookup that started before a revocation must not cache its stale row.
  let generation = 0;
  let anyKey: { value: boolean; at: number } | undefined;

  const required = async (): Promise<boolean> => {
    if (alwaysRequired) return true;
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

  const lookup = async (id: string): Promise<KeyRow | null> => {
    const hit = cache.get(id);
    if (hit && Date.now() - hit.at < CACHE_TTL_MS) return hit.row;
    const startedIn = generation;
    const { rows } = await pool.query<KeyRow>('SELECT id, role, queues, secret_hash, revoked_at FROM api_keys WHERE id = $1', [id]);
    const row = rows[0] ?? null;
    if (startedIn === generation) cache.set(id, { row, at: Date.now() });
    return row;
  };

  return {
    required,
    invalidate() {
      generation++;
      cache.clear();
      anyKey = undefined;
    },
    async authenticate(req) {
      const header = req.headers.authorization;
      if (!(await required())) return { principal: { role: 'admin', queues: null, keyId: null }, error: null };
      if (!header) return { principal: null, error: 'this server needs an API key: send "Authorization: Bearer skq_..."' };
      const match = KEY_PATTERN.exec(header.replace(/^Bearer\s+/i, '').trim());
      if (!match) return { principal: null, error: 'the Authorization header does not hold a skipq key (Bearer skq_<id>_<secret>)' };
      const [, id, secret] = match as unknown as [string, string, string];
      const row = await lookup(id);
      const given = Buffer.from(sha256(secret), 'hex');
      if (!row || !timingSafeEqual(given, Buffer.from(row.secret_hash, 'hex'))) return { principal: null, error: 'unknown API key' };
      if (row.revoked_at) return { principal: null, error: `API key ${id} was revoked` };
      return { principal: { role: row.role, queues: row.queues && row.queues.length > 0 ? row.queues : null, keyId: row.id }, error: null };
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

/** Creates a key; only its hash is stored. */
export async function createApiKey(pool: pg.Pool, input: { role: Role; queues?: string[]; name?: string }): Promise<CreatedKey> {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
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

/** Lists keys without secrets. */
export async function listApiKeys(pool: pg.Pool) {
  const { rows } = await pool.query<{ id: string; name: string; role: Role; queues: string[] | null; created_at: Date; revoked_at: Date | null }>(
    'SELECT id, name, role, queues, created_at, revoked_at FROM api_keys ORDER BY created_at',
  );
  return rows;
}

/** True for addresses only this machine can reach. */
export function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || host.startsWith('127.');
}
