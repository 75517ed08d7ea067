/**
 * Commands planned for the rest of issue 6. They are listed in `conveyor --help` so nobody
 * wonders whether they exist, and exit 1 with what to use meanwhile.
 */
import type { Command } from 'commander';
import { CliError } from '../errors.ts';

const LATER: ReadonlyArray<{ name: string; description: string; meanwhile: string }> = [
  {
    name: 'stats',
    description: '(not yet) a live view of counts and rates per queue',
    meanwhile: 'use `conveyor queues ls` (add --json for scripts), or the /metrics endpoint of `conveyor serve`',
  },
  {
    name: 'bench',
    description: '(not yet) the benchmark, against any store URL',
    meanwhile: 'in a clone of the repository, run `npm run bench` (bench/bench.ts; see docs/performance.md)',
  },
];

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
