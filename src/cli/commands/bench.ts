/**
 * `conveyor bench`: the user-facing benchmark (src/bench/) against any store, so users can
 * measure their own setup. Progress on stderr (bars on a terminal, plain lines otherwise),
 * the table on stdout at the end, every figure as JSON with `--json FILE` (`-`: stdout).
 * Timings are reported, never judged: the exit code is 1 only when a scenario failed (an
 * error, or a correctness check such as a job that did not complete exactly once).
 */
import fs from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { describeStoreUrl, maskUrl, resolveConfig } from '../config.ts';
import { CliError, UsageError, errorContext } from '../errors.ts';
import { note, printJson, printLine, startProgress } from '../output.ts';
import { examples, withProgress, withUrl } from '../shared.ts';

/** The scenario names, kept here so --help needs no store code (src/bench/ lists the same; the test checks). */
export const SCENARIO_NAMES = ['serial', 'concurrent', 'bulk', 'drain', 'latency'] as const;

interface BenchFlags {
  url?: string;
  scenarios?: string[];
  scale: number;
  json?: string;
  progress?: boolean;
}

function parseScenarios(text: string): string[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new InvalidArgumentError(`give one or more of ${SCENARIO_NAMES.join(', ')}, separated by commas.`);
  for (const n of names) {
    if (!(SCENARIO_NAMES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown scenario '${n}': scenarios are ${SCENARIO_NAMES.join(', ')}.`);
  }
  return [...new Set(names)];
}

function parseScale(text: string): number {
  const n = Number(text.trim());
  if (!(Number.isFinite(n) && n > 0 && n <= 100)) throw new InvalidArgumentError(`'${text}' must be a number above 0 and at most 100 (1 is the full run, 0.1 a tenth of the jobs).`);
  return n;
}

export function registerBench(program: Command): void {
  const cmd = program
    .command('bench')
    .description('benchmark a store: enqueue (serial, concurrent, bulk), drain throughput, enqueue-to-start latency')
    .option('--scenarios <names>', `comma-separated, from ${SCENARIO_NAMES.join(', ')} (default: all)`, parseScenarios)
    .option('--scale <factor>', 'multiply job counts, e.g. 0.1 for a quick run (default 1: about 1 min on SQLite)', parseScale, 1)
    .option('--json <file>', 'also write every figure as JSON to this file (- prints it on stdout instead of the table)');
  withUrl(cmd);
  withProgress(cmd);
  cmd.addHelpText(
    'after',
    `
Without --url (or CONVEYOR_URL / DATABASE_URL) each scenario runs on a fresh temporary
SQLite file. With a store URL, each scenario uses a queue of its own (bench.<scenario>.<run>)
and deletes its jobs afterwards; nothing else in the store is touched, and a PostgreSQL
schema must exist (conveyor migrate). The bench adds load: run it on your own setup, not
on a busy production database.`,
  );
  examples(cmd, [
    'conveyor bench                                             # temporary SQLite files',
    'conveyor bench --scale 0.1 --scenarios serial,drain        # a quick look',
    "conveyor bench --url 'postgres://app:secret@db:5432/app?schema=jobs' --json bench.json",
    'conveyor bench --url sqlite:///var/lib/app/jobs.db?durability=full --scenarios serial',
  ]);
  cmd.action(async (flags: BenchFlags) => {
    const url = resolveConfig({ url: flags.url }).url;
    const given = url.source === 'default' ? undefined : url.value;
    if (given !== undefined) errorContext.url = url;
    const progress = flags.progress !== false;
    if (flags.json !== undefined && flags.json !== '-' && flags.json.trim() === '') throw new UsageError('--json needs a file name (or - for stdout)');

    const { runBench, formatTable } = await import('../../bench/index.ts');
    if (given !== undefined) {
      // Open the store once first: a wrong URL or a missing schema fails at once, with what to do.
      const { Conveyor } = await import('../../engine/conveyor.ts');
      const cv = await Conveyor.open({ url: given, migrate: false });
      await cv.close();
    }
    const where = given === undefined ? 'fresh temporary SQLite files' : `${maskUrl(given)} (${await describeStoreUrl(given)}, from ${url.source}); jobs go to queues bench.<scenario>.<run> and are deleted afterwards`;
    note(`conveyor bench: ${where}; scale ${flags.scale}`);

    const report = await runBench({
      url: given,
      scenarios: flags.scenarios,
      scale: flags.scale,
      migrate: false,
      reporter: {
        scenarioStart: (id, description) => {
          if (progress) note(`${id}: ${description}`);
        },
        phase: (id, label, total, unit) => startProgress(`  ${id} ${label}`, total, unit, { enabled: progress }),
        scenarioEnd: (id, result, secs) => {
          if ('row' in result) note(`  ${id}: ${result.row.headline}${result.row.ok ? '' : ' (CHECK FAILED)'} (${secs.toFixed(1)} s)`);
          else note(`  ${id}: FAILED: ${result.error instanceof Error ? result.error.message : String(result.error)}`);
        },
      },
    });

    if (flags.json === '-') printJson(report);
    else {
      const m = report.meta;
      printLine(`conveyor ${m.conveyor} bench, ${m.date}: Node ${m.node}, ${m.cpus}, ${m.os}`);
      printLine(`store: ${m.store}; scale ${m.scale}`);
      printLine();
      if (report.rows.length > 0) printLine(formatTable(report.rows));
      if (flags.json !== undefined) {
        try {
          fs.writeFileSync(flags.json, `${JSON.stringify(report, null, 2)}\n`);
        } catch (err) {
          throw new CliError(`cannot write --json ${flags.json}: ${err instanceof Error ? err.message : String(err)}`, 'check the path and its permissions (relative paths start from the current directory)');
        }
        note(`wrote ${flags.json}`);
      }
    }
    const failedChecks = report.rows.filter((r) => !r.ok).map((r) => r.id);
    if (report.failures.length > 0 || failedChecks.length > 0) {
      for (const f of report.failures) note(`conveyor: bench scenario ${f.scenario} failed: ${f.error}`);
      for (const id of failedChecks) note(`conveyor: bench scenario ${id}: a correctness check failed (see its details)`);
      process.exitCode = 1;
    }
  });
}
