import { Command } from 'commander';
import { dbCommand } from './db.js';
import { CliError } from './errors.js';
import { enqueueCommand, jobsCommand, queuesCommand, statsCommand } from './jobs.js';
import { keysCommand } from './keys.js';
import { migrateCommand } from './migrate.js';
import { ENV_HELP, serve, serveCommand, withServeOptions, type ServeOptions } from './serve.js';
import { workerCommand } from './worker.js';

/**
 * The `skipq` command line. Without a command it serves (so `npm start -- --jobs x`
 * keeps working); its serve options come before any command (`skipq --port 0 keys list`
 * ignores them), and each command takes only its own.
 */
export function createProgram(): Command {
  const program = withServeOptions(new Command('skipq'))
    .description('skipq: a type-safe job queue service on PostgreSQL. Without a command: serve (npm start -- [options])')
    .usage('[command] [options]')
    .enablePositionalOptions()
    .allowExcessArguments()
    .showSuggestionAfterError()
    .addHelpText(
      'after',
      `
Server commands (serve, migrate, keys, db) use DATABASE_URL, or the embedded database
under SKIPQ_DATA_DIR: while a server runs on it they use that server's (from
SKIPQ_DATA_DIR/server.json). Client commands (enqueue, jobs, queues, stats, worker) talk
to a running server: --url / SKIPQ_URL (default http://127.0.0.1:3000/trpc) and
--api-key / SKIPQ_API_KEY. "skipq <command> --help" describes each.
${ENV_HELP}`,
    )
    .action(async (opts: ServeOptions, command: Command) => {
      if (command.args.length > 0) throw new CliError(`unknown command ${JSON.stringify(command.args[0])} (skipq --help lists them)`, 2);
      await serve(opts);
    });
  for (const command of [serveCommand(), migrateCommand(), workerCommand(), enqueueCommand(), jobsCommand(), queuesCommand(), statsCommand(), keysCommand(), dbCommand()]) {
    program.addCommand(command);
  }
  // Commander's own refusals (an unknown option, a missing argument, a value not among the
  // choices) end as skipq's do: one "[skipq] ..." line on stderr and exit 2, the command line
  // being wrong (main.ts). Without this commander printed "error: ..." and exited 1 itself.
  const withSubcommands = (c: Command): Command[] => [c, ...c.commands.flatMap(withSubcommands)];
  for (const c of withSubcommands(program)) {
    c.exitOverride().configureOutput({ outputError: (message, write) => write(`[skipq] ${message.replace(/^error: /, '')}`) });
  }
  return program;
}
