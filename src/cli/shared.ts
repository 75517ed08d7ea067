/** Options and help text shared by the command modules. */
import { Option, type Command } from 'commander';

/** `--url`: the store (no commander default: src/cli/config.ts applies env and defaults). */
export function withUrl(cmd: Command): Command {
  return cmd.option('--url <url>', 'store URL (sqlite://path, a file path, or postgres://…); default: $CONVEYOR_URL, $DATABASE_URL, sqlite://.conveyor/conveyor.db');
}

export function withJson(cmd: Command): Command {
  return cmd.option('--json', 'print machine-readable JSON on stdout');
}

export function withProgress(cmd: Command): Command {
  return cmd.addOption(new Option('--no-progress', 'no progress bar or progress lines on stderr'));
}

/** Appends an "Examples:" block to the command's --help. */
export function examples(cmd: Command, lines: readonly string[]): Command {
  return cmd.addHelpText('after', `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`);
}

/** The command as typed, e.g. `conveyor jobs ls`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}
