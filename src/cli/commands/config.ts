/** `conveyor config`: the resolved configuration, where each value came from, secrets masked. */
import { InvalidArgumentError, type Command } from 'commander';
import { maskedConfig, parsePort, resolveConfig } from '../config.ts';
import { printJson, printLine, printTable } from '../output.ts';
import { examples, withJson, withUrl } from '../shared.ts';

export function registerConfig(program: Command): void {
  const cmd = program
    .command('config')
    .description('show the configuration commands would use, and where each value comes from (flag, environment or default); secrets are masked')
    .option('--host <address>', 'as for conveyor serve')
    .option('--port <n>', 'as for conveyor serve', (text: string) => {
      try {
        return parsePort(text, '--port');
      } catch (err) {
        throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
      }
    })
    .option('--server <url>', "a conveyor server's URL, for commands that work over HTTP")
    .option('--key <key>', 'an API key for that server');
  withUrl(cmd);
  withJson(cmd);
  examples(cmd, ['conveyor config', 'DATABASE_URL=postgres://app:secret@db/app conveyor config --json', 'conveyor config --url sqlite:///var/lib/app/jobs.db']);
  cmd.addHelpText(
    'after',
    '\nPrecedence: flags, then environment (CONVEYOR_URL, then DATABASE_URL; CONVEYOR_HOST, CONVEYOR_PORT, CONVEYOR_SERVER, CONVEYOR_API_KEY), then defaults.\n',
  );
  cmd.action(async (flags: { url?: string; host?: string; port?: number; server?: string; key?: string; json?: boolean }) => {
    const shown = await maskedConfig(resolveConfig(flags));
    if (flags.json) {
      printJson(shown);
      return;
    }
    const envName: Record<string, string> = { url: 'CONVEYOR_URL, DATABASE_URL', host: 'CONVEYOR_HOST', port: 'CONVEYOR_PORT', server: 'CONVEYOR_SERVER', apiKey: 'CONVEYOR_API_KEY' };
    printTable(
      ['setting', 'value', 'from'],
      Object.entries(shown).map(([k, s]) => [`${k} (${envName[k]})`, s.value === null ? '(not set)' : String(s.value), s.source]),
    );
    if (shown.url?.note) printLine(`\nstore: ${shown.url.note}`);
  });
}
