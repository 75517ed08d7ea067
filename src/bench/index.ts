/**
 * The benchmark behind `conveyor bench`, runnable against any store URL so users can
 * measure their own setup. The scenarios are in ./scenarios.ts; this module runs them, each
 * on a Conveyor of its own, and cleans up after them.
 *
 * Where the jobs go:
 *   - no URL: a fresh SQLite file per scenario in the OS temp folder, removed afterwards
 *   - a URL: each scenario uses a queue of its own, `bench.<scenario>.<run id>`, and deletes
 *     that queue's jobs when it is done (also when it fails), so the store is left as it was.
 *     Nothing else in the store is read or written; the schema is not created or dropped.
 *
 * The repository's developer benchmark (bench/bench.ts, `npm run bench`) has more
 * scenarios and raw-driver baselines; this one is the part that makes sense on any store.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { Conveyor } from '../engine/conveyor.ts';
import { redactUrl } from '../store/open.ts';
import { VERSION } from '../version.ts';
import { SCENARIOS, type BenchRow, type PhaseProgress } from './scenarios.ts';

export { SCENARIOS, percentiles, payload, type BenchRow, type Metric, type PhaseProgress, type Scenario, type ScenarioContext } from './scenarios.ts';

/** Names of the scenarios, in the order they run. */
export const SCENARIO_IDS: readonly string[] = SCENARIOS.map((s) => s.id);

/** Receives progress and results as the run goes (the CLI draws bars and lines from it). */
export interface BenchReporter {
  /** A scenario starts. */
  scenarioStart?(id: string, description: string): void;
  /** One phase of it starts (prefill, adds, drain, …): return its progress display. */
  phase?(id: string, label: string, total: number, unit: string): PhaseProgress;
  /** A scenario ended, with its row or its error. */
  scenarioEnd?(id: string, result: { row: BenchRow } | { error: unknown }, seconds: number): void;
}

export interface BenchOptions {
  /** The store; default: a fresh temporary SQLite file per scenario. */
  readonly url?: string | undefined;
  /** Scenario ids (default all, in SCENARIO_IDS order). */
  readonly scenarios?: readonly string[] | undefined;
  /** Multiplies job counts (default 1). */
  readonly scale?: number | undefined;
  /** Passed to Conveyor.open for a given URL (default true; the CLI passes false). */
  readonly migrate?: boolean | undefined;
  readonly reporter?: BenchReporter | undefined;
}

export interface BenchReport {
  readonly meta: {
    readonly date: string;
    readonly conveyor: string;
    readonly node: string;
    readonly cpus: string;
    readonly os: string;
    /** The URL with its password masked, or a note that temporary files were used. */
    readonly store: string;
    readonly scale: number;
    readonly scenarios: readonly string[];
  };
  readonly rows: readonly BenchRow[];
  readonly failures: ReadonlyArray<{ readonly scenario: string; readonly error: string }>;
}

const NO_PROGRESS: PhaseProgress = { update: () => undefined, stop: () => undefined };

function checkOptions(options: BenchOptions): { ids: string[]; scale: number } {
  const ids = options.scenarios === undefined ? [...SCENARIO_IDS] : [...options.scenarios];
  for (const id of ids) {
    if (!SCENARIO_IDS.includes(id)) throw new RangeError(`unknown scenario '${id}'; scenarios: ${SCENARIO_IDS.join(', ')}`);
  }
  const scale = options.scale ?? 1;
  if (!(typeof scale === 'number' && Number.isFinite(scale) && scale > 0)) throw new RangeError(`scale must be a positive number, got ${String(scale)}`);
  return { ids, scale };
}

/** Deletes every job of a bench queue (waiting, delayed and finished; nothing is active by then). */
async function removeJobs(cv: Conveyor, queue: string): Promise<void> {
  const q = cv.queue(queue);
  await q.drain({ delayed: true });
  for (const state of ['completed', 'failed', 'cancelled'] as const) await q.clean({ state });
}

/** Runs the benchmark. Rejects only on bad options; a failing scenario is reported in `failures`. */
export async function runBench(options: BenchOptions = {}): Promise<BenchReport> {
  const { ids, scale } = checkOptions(options);
  const reporter = options.reporter ?? {};
  const runId = `${process.pid.toString(36)}${Date.now().toString(36)}`;
  const rows: BenchRow[] = [];
  const failures: Array<{ scenario: string; error: string }> = [];
  for (const id of ids) {
    const scenario = SCENARIOS.find((s) => s.id === id)!;
    reporter.scenarioStart?.(id, scenario.description);
    const t0 = performance.now();
    let tmp: string | undefined;
    let cv: Conveyor | undefined;
    const queue = `bench.${id}.${runId}`;
    try {
      if (options.url === undefined) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-bench-${id}-`));
        cv = await Conveyor.open({ url: `sqlite://${path.join(tmp, 'bench.db')}` });
      } else {
        cv = await Conveyor.open({ url: options.url, migrate: options.migrate ?? true });
      }
      const opened = cv;
      const row = await scenario.run({
        cv: opened,
        queue,
        scale,
        phase: (label, total, unit) => reporter.phase?.(id, label, total, unit) ?? NO_PROGRESS,
      });
      rows.push(row);
      reporter.scenarioEnd?.(id, { row }, (performance.now() - t0) / 1000);
    } catch (error) {
      failures.push({ scenario: id, error: error instanceof Error ? error.message : String(error) });
      reporter.scenarioEnd?.(id, { error }, (performance.now() - t0) / 1000);
    } finally {
      try {
        if (cv !== undefined && tmp === undefined) await removeJobs(cv, queue);
      } catch (error) {
        failures.push({ scenario: id, error: `cleaning up queue ${queue}: ${error instanceof Error ? error.message : String(error)}` });
      }
      await cv?.close({ timeoutMs: 5000 }).catch(() => undefined);
      if (tmp !== undefined) fs.rmSync(tmp, { recursive: true, force: true });
    }
  }
  return {
    meta: {
      date: new Date().toISOString(),
      conveyor: VERSION,
      node: process.version,
      cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown cpu'}`,
      os: `${os.type()} ${os.release()}`,
      store: options.url === undefined ? 'a fresh temporary SQLite file per scenario' : redactUrl(options.url),
      scale,
      scenarios: ids,
    },
    rows,
    failures,
  };
}

/** The report as an aligned table (scenario, jobs, result, details), as `conveyor bench` prints it. */
export function formatTable(rows: readonly BenchRow[]): string {
  const header = ['scenario', 'jobs', 'result', 'details'];
  const cells = rows.map((r) => [r.scenario, r.jobs.toLocaleString('en-US'), r.headline, r.details]);
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i]!.length)));
  return [header, ...cells]
    .map((c) => c.map((x, i) => (i === 1 || i === 2 ? x.padStart(widths[i]!) : i === 3 ? x : x.padEnd(widths[i]!))).join('  ').trimEnd())
    .join('\n');
}
