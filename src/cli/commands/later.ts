/**
 * Commands planned for the rest of issue 6. They are listed in `conveyor --help` so nobody
 * wonders whether they exist, and exit 1 with what to use meanwhile.
 */
import type { Command } from 'commander';
import { CliError } from '../errors.ts';

const LATER: ReadonlyArray<{ name: string; description: string; meanwhile: string }> = [];

export function registerLater(program: Command): void {
  for (const l of LATER) {
    if (program.commands.some((c) => c.name() === l.name)) continue; // there now
    program
      .command(l.name)
      .description(l.description)
      .allowUnknownOption()
      .allowExcessArguments()
      .action(() => {
        throw new CliError(`conveyor ${l.name} is not available yet in this version (it is planned)`, l.meanwhile);
      });
  }
}
