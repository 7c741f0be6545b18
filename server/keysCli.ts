import { join } from 'node:path';
import { NAME_PATTERN } from '../shared/index.js';
import { createApiKey, listApiKeys, revokeApiKey } from './auth.js';
import type { Role } from './context.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import { migrate } from './db/migrate.js';
import { createPool } from './db/pool.js';
import type { ServerEnv } from './env.js';

export const KEYS_HELP = `Usage: npm run keys -- <command>

  create --role <producer|worker|admin> [--queues a,b] [--name text]
                 prints the new key once; only its hash is stored
  list           lists keys (never secrets)
  revoke <id>    revokes a key; every server stops accepting it at once

Roles: producer (enqueue, get, list, cancel), worker (claim, start, heartbeat,
complete, fail, release), admin (everything, plus retry and stats).
--queues limits a key to those queues. Uses DATABASE_URL, or the embedded database.
`;

const ROLES: readonly Role[] = ['producer', 'worker', 'admin'];

/** Checks `create`'s options before any database is touched; answers what to create, or what is wrong. */
function parseCreate(values: { role?: string; queues?: string }): { role: Role; queues?: string[] } | string {
  const role = values.role as Role;
  if (!ROLES.includes(role)) return `--role must be one of ${ROLES.join(', ')}`;
  if (values.queues === undefined) return { role };
  const queues = values.queues.split(',').map((q) => q.trim()).filter((q) => q.length > 0);
  // An empty list is stored as "every queue": the opposite of what --queues asks for.
  if (queues.length === 0) return `--queues ${JSON.stringify(values.queues)} names no queue; leave --queues out for a key that may use every queue`;
  const bad = queues.find((q) => !NAME_PATTERN.test(q));
  if (bad !== undefined) return `--queues: ${JSON.stringify(bad)} is not a queue name (a letter or digit, then letters, digits, "_", ".", ":" or "-")`;
  return { role, queues };
}

/** `npm run keys -- ...`: manages API keys. Answers the process exit code. */
export async function keysCommand(env: ServerEnv, args: string[], values: { role?: string; queues?: string; name?: string }): Promise<number> {
  const [command, id] = args;
  if (!command || !['create', 'list', 'revoke'].includes(command)) {
    process.stdout.write(KEYS_HELP);
    return command ? 2 : 0;
  }
  let create: { role: Role; queues?: string[] } | undefined;
  if (command === 'create') {
    const parsed = parseCreate(values);
    if (typeof parsed === 'string') {
      console.error(parsed);
      return 2;
    }
    create = parsed;
  }
  const embedded = env.DATABASE_URL ? undefined : await startEmbeddedPostgres({ dataDir: join(env.SKIPQ_DATA_DIR, 'pg') });
  const pool = createPool(env.DATABASE_URL ?? (embedded as { url: string }).url, 2);
  try {
    await migrate(pool);
    if (create) {
      const { role, queues } = create;
      const created = await createApiKey(pool, { role, ...(queues ? { queues } : {}), ...(values.name ? { name: values.name } : {}) });
      console.log(`created key ${created.id} (${created.role}${queues ? `, queues: ${queues.join(', ')}` : ', every queue'})`);
      console.log(`secret (shown once): ${created.key}`);
    } else if (command === 'list') {
      for (const k of await listApiKeys(pool)) {
        console.log(`${k.id}  ${k.role.padEnd(8)}  ${k.revoked_at ? 'revoked' : 'active '}  ${k.queues?.length ? k.queues.join(',') : '*'}  ${k.name}`);
      }
    } else {
      if (!id) {
        console.error('revoke needs a key id (see npm run keys -- list)');
        return 2;
      }
      if (!(await revokeApiKey(pool, id))) {
        console.error(`no active key ${id}`);
        return 1;
      }
      console.log(`revoked key ${id}`);
    }
    return 0;
  } finally {
    await pool.end();
    await embedded?.stop();
  }
}
