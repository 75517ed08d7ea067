#!/usr/bin/env node
/**
 * The `conveyor` command: program setup and exit codes. Each command group lives in its own
 * module under src/cli/commands/; configuration precedence (flags, then environment, then
 * defaults) is src/cli/config.ts. Parsing is commander's; its errors are usage errors.
 *
 * Exit codes: 0 ok, 1 error, 2 usage (see src/cli/errors.ts and docs/cli.md).
 */
import { Command, CommanderError } from 'commander';
import { VERSION } from '../version.ts';
import { registerAdd } from './commands/add.ts';
import { registerConfig } from './commands/config.ts';
import { registerDemo } from './commands/demo.ts';
import { registerJobs } from './commands/jobs.ts';
import { registerKeys } from './commands/keys.ts';
import { registerLater } from './commands/later.ts';
import { registerMigrate } from './commands/migrate.ts';
import { registerQueues } from './commands/queues.ts';
import { registerServe } from './commands/serve.ts';
import { registerStats } from './commands/stats.ts';
import { registerBench } from './commands/bench.ts';
import { registerWorker } from './commands/worker.ts';
import { EXIT_OK, EXIT_USAGE, errorContext, exitCodeFor, formatError } from './errors.ts';
import { commandPath } from './shared.ts';

const FOOTER = `
Configuration (every command): flags first, then the environment, then defaults.
  store URL   --url, $CONVEYOR_URL, then $DATABASE_URL, else sqlite://.conveyor/conveyor.db
  server      --host / --port, $CONVEYOR_HOST / $CONVEYOR_PORT, else 127.0.0.1:8080
  'conveyor config' shows the values in use and where each came from.

Exit codes: 0 ok, 1 error, 2 usage (unknown command or flag, missing argument, bad value).
Run 'conveyor <command> --help' for a command's flags and examples. Docs: docs/cli.md.

Examples:
  conveyor migrate --url sqlite:///var/lib/app/jobs.db
  conveyor serve --port 8080
  conveyor add email welcome --data '{"to":"ada@example.com"}' --attempts 3
  conveyor jobs ls email --state failed
  conveyor keys create --name deploy --scopes produce
`;

function visit(cmd: Command, fn: (c: Command) => void): void {
  fn(cmd);
  for (const c of cmd.commands) visit(c, fn);
}

function buildProgram(): Command {
  const program = new Command('conveyor');
  program
    .description('conveyor: background jobs for Node.js. Operate a store (SQLite or PostgreSQL), run the HTTP server, manage API keys.')
    .version(VERSION, '-v, --version', 'print the version')
    .helpOption('-h, --help', 'show help with examples')
    .exitOverride()
    .configureOutput({ outputError: (text, write) => write(`conveyor: ${text.replace(/^error: /, '')}`) })
    .showSuggestionAfterError(true);
  registerServe(program);
  registerWorker(program);
  registerDemo(program);
  registerMigrate(program);
  registerQueues(program);
  registerJobs(program);
  registerAdd(program);
  registerKeys(program);
  registerConfig(program);
  registerStats(program);
  registerBench(program);
  registerLater(program);
  program.addHelpText('after', FOOTER);
  visit(program, (cmd) => {
    cmd.showHelpAfterError(`Run '${commandPath(cmd)} --help' for usage and examples.`);
  });
  program.hook('preAction', (_program, action) => {
    errorContext.command = commandPath(action);
  });
  return program;
}

function printError(err: unknown): void {
  process.stderr.write(`conveyor: ${formatError(err, errorContext).join('\n  ')}\n`);
  if (process.env.CONVEYOR_DEBUG && err instanceof Error && err.stack) process.stderr.write(`${err.stack}\n`);
}

/** Runs the command line; resolves with the exit code (a running `serve` resolves once it has started). */
async function run(argv: readonly string[]): Promise<number> {
  const program = buildProgram();
  if (argv.length === 0) {
    program.outputHelp();
    return EXIT_OK;
  }
  try {
    await program.parseAsync([...argv], { from: 'user' });
    return typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help or version asked for (commander's exit code 0): 0. Everything else commander
      // rejects (unknown command or option, missing argument or subcommand, a value its
      // parser refused) is a usage error, already printed with a hint: 2.
      return err.exitCode === 0 ? EXIT_OK : EXIT_USAGE;
    }
    printError(err);
    return exitCodeFor(err);
  }
}

// `conveyor jobs ls … | head`: a closed pipe ends the command quietly, as in other tools.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw err;
});

const code = await run(process.argv.slice(2));
process.exitCode = code;
