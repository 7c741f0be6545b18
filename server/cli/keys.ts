import { Command, Option } from 'commander';
import { NAME_PATTERN } from '../../shared/index.js';
import type { Role } from '../context.js';
import { readEnv, type ServerEnv } from '../env.js';
import type { AdminDatabase } from './adminDatabase.js';
import { CliError, progress } from './errors.js';

/** The key functions and the admin database, loaded when a keys command runs (not for --help). */
async function withKeys<T>(env: ServerEnv, work: (auth: typeof import('../auth.js'), db: AdminDatabase) => Promise<T>): Promise<T> {
  const [auth, { withAdminDatabase }] = await Promise.all([import('../auth.js'), import('./adminDatabase.js')]);
  return withAdminDatabase(env, (db) => work(auth, db));
}

const ROLES: readonly Role[] = ['producer', 'worker', 'admin'];

/** Checks `--queues` before any database is touched. */
function parseQueues(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const queues = text.split(',').map((q) => q.trim()).filter((q) => q.length > 0);
  // An empty list is stored as "every queue": the opposite of what --queues asks for.
  if (queues.length === 0) throw new CliError(`--queues ${JSON.stringify(text)} names no queue; leave --queues out for a key that may use every queue`, 2);
  const bad = queues.find((q) => !NAME_PATTERN.test(q));
  if (bad !== undefined) throw new CliError(`--queues: ${JSON.stringify(bad)} is not a queue name (a letter or digit, then letters, digits, "_", ".", ":" or "-")`, 2);
  return queues;
}

/** `skipq keys create|list|revoke`: API keys, in DATABASE_URL or the embedded database (a running server's, if one runs). */
export function keysCommand(): Command {
  const keys = new Command('keys').description('manage API keys (DATABASE_URL, or the embedded database: the running server\'s if one runs)').addHelpText(
    'after',
    `
Roles: producer (enqueue, get, list, cancel), worker (claim, start, heartbeat,
complete, fail, release), admin (everything, plus retry and stats).
Once any key exists, every call but health needs one. Revoking keys one by one
never turns that off; "keys revoke --all" removes every key record, and servers
on loopback answer calls without a key again (unless SKIPQ_REQUIRE_AUTH=1).`,
  );
  keys
    .command('create')
    .description('create a key and print its secret once (only its hash is stored)')
    .addOption(new Option('--role <role>', 'what the key may do').choices(ROLES).makeOptionMandatory())
    .option('--queues <a,b>', 'limit the key to these queues (default: every queue)')
    .option('--name <text>', 'a label shown by keys list')
    .action(async (opts: { role: Role; queues?: string; name?: string }) => {
      const queues = parseQueues(opts.queues);
      await withKeys(readEnv(), async ({ createApiKey }, { pool }) => {
        progress('creating the key');
        const created = await createApiKey(pool, { role: opts.role, ...(queues ? { queues } : {}), ...(opts.name ? { name: opts.name } : {}) });
        console.log(`created key ${created.id} (${created.role}${queues ? `, queues: ${queues.join(', ')}` : ', every queue'})`);
        console.log(`secret (shown once): ${created.key}`);
      });
    });
  keys
    .command('list')
    .description('list keys (never secrets)')
    .action(async () => {
      await withKeys(readEnv(), async ({ listApiKeys }, { pool }) => {
        const rows = await listApiKeys(pool);
        if (rows.length === 0) {
          console.log('no API keys: a server on loopback answers calls without one (SKIPQ_REQUIRE_AUTH=1 requires keys anyway)');
          return;
        }
        for (const k of rows) {
          console.log(`${k.id}  ${k.role.padEnd(8)}  ${k.revoked_at ? 'revoked' : 'active '}  ${k.queues?.length ? k.queues.join(',') : '*'}  ${k.name}`);
        }
        const active = rows.filter((k) => !k.revoked_at).length;
        console.log(`${rows.length} key${rows.length === 1 ? '' : 's'}, ${active} active${active === 0 ? ' (keys are still required: keys revoke --all goes back to keyless loopback)' : ''}`);
      });
    });
  keys
    .command('revoke')
    .description('revoke a key (every server stops accepting it at once), or --all')
    .argument('[id]', 'the key id (see keys list)')
    .option('--all', 'revoke every key and remove all key records: back to keyless loopback')
    .action(async (id: string | undefined, opts: { all?: boolean }) => {
      if (opts.all && id) throw new CliError('give a key id or --all, not both', 2);
      if (!opts.all && !id) throw new CliError('revoke needs a key id (see skipq keys list) or --all', 2);
      await withKeys(readEnv(), async ({ removeAllApiKeys, revokeApiKey }, { pool }) => {
        if (opts.all) {
          progress('revoking every key');
          const { active, removed } = await removeAllApiKeys(pool);
          console.log(
            `revoked ${active} active key${active === 1 ? '' : 's'} and removed ${removed} key record${removed === 1 ? '' : 's'}: ` +
              'servers on loopback answer calls without a key again (SKIPQ_REQUIRE_AUTH=1 keeps keys required)',
          );
          return;
        }
        if (!(await revokeApiKey(pool, id as string))) throw new CliError(`no active key ${id} (see skipq keys list)`);
        console.log(`revoked key ${id}`);
      });
    });
  return keys;
}
