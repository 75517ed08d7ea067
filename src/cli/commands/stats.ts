/**
 * `conveyor stats`: counts by state and rates per queue, sampled every `--interval`.
 *
 * Where the numbers come from: the store's queue listing (`store.listQueues()` through the
 * Conveyor, the same call as `conveyor queues`), or with `--server` a server's
 * `GET /api/v1/queues`. Rates (completed/s, failed/s) are differences between successive
 * samples, so a first sample (and `--once`) has none, and jobs deleted between two samples
 * (retention, `queues clean`) or retried out of `failed` are not counted (a drop counts as 0).
 *
 * Output:
 *   - on a terminal: one view redrawn in place (cursor moved back up, lines overwritten and
 *     cleared to their end, one write per frame, so nothing flickers); Ctrl-C ends it, exit 0
 *   - otherwise (a pipe, a log file): plain `key=value` lines, one per queue per sample
 *   - `--json`: one JSON object per sample (one line each)
 *   - `--once`: one sample, as a table (or one JSON object), then exit
 */
import { InvalidArgumentError, Option, type Command } from 'commander';
import { isConveyorError } from '../../errors.ts';
import type { JobCounts, QueueInfo } from '../../store/contract.ts';
import { checkQueueName, didYouMean } from '../../options.ts';
import { describeStoreUrl, maskUrl, resolveConfig } from '../config.ts';
import { CliError, UsageError, errorContext } from '../errors.ts';
import { formatTime, note, printJson, printLine } from '../output.ts';
import { intParser, parseDuration } from '../parse.ts';
import { examples, withUrl } from '../shared.ts';

const COLUMNS = ['waiting', 'delayed', 'active', 'completed', 'failed'] as const;
const MIN_INTERVAL_MS = 100;

interface StatsFlags {
  url?: string;
  server?: string;
  key?: string;
  queues?: string[];
  interval: number;
  once?: boolean;
  json?: boolean;
  samples?: number;
}

/** One queue in one sample. */
export interface QueueStats {
  readonly name: string;
  readonly paused: boolean;
  /** False for a queue named in `--queues` that the store does not list (no jobs yet). */
  readonly exists: boolean;
  readonly counts: Pick<JobCounts, (typeof COLUMNS)[number]>;
  /** Per second since the previous sample; null in the first sample (or a queue new in this one). */
  readonly completedPerSec: number | null;
  readonly failedPerSec: number | null;
}

/** One sample: what `--json` prints per interval. */
export interface StatsSample {
  /** Epoch ms of the sample. */
  readonly at: number;
  /** The store URL (password masked) or the server URL. */
  readonly source: string;
  readonly intervalMs: number;
  /** Ms since the previous sample (the rates' window); null in the first. */
  readonly elapsedMs: number | null;
  readonly queues: readonly QueueStats[];
  readonly totals: { readonly counts: QueueStats['counts']; readonly completedPerSec: number | null; readonly failedPerSec: number | null };
}

/** Reads the queue listing: from the store, or from a server. */
interface Source {
  /** For people: what is being watched. */
  readonly label: string;
  /** For JSON: the store URL (masked) or server URL. */
  readonly id: string;
  read(): Promise<readonly QueueInfo[]>;
  close(): Promise<void>;
}

function parseQueues(text: string): string[] {
  const names = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new InvalidArgumentError('give one or more queue names, separated by commas.');
  for (const name of names) {
    try {
      checkQueueName(name);
    } catch (err) {
      throw new InvalidArgumentError(`${err instanceof Error ? err.message : String(err)}.`);
    }
  }
  return [...new Set(names)];
}

function parseInterval(text: string): number {
  const ms = parseDuration(text);
  if (ms < MIN_INTERVAL_MS) throw new InvalidArgumentError(`'${text}' is too short: the interval is at least ${MIN_INTERVAL_MS}ms.`);
  return ms;
}

// ------------------------------------------------------------------------- sources

async function storeSource(flags: StatsFlags): Promise<Source> {
  const url = resolveConfig({ url: flags.url }).url;
  errorContext.url = url;
  // Loaded here, not at the top: --help and usage errors need no store code.
  const { Conveyor } = await import('../../engine/conveyor.ts');
  const cv = await Conveyor.open({ url: url.value, migrate: false });
  return {
    label: `${maskUrl(url.value)} (${await describeStoreUrl(url.value)})`,
    id: maskUrl(url.value),
    read: async () => cv.store.listQueues(),
    close: () => cv.close(),
  };
}

/** The server's errors turned into messages about the server (not a store) with what to do next. */
function serverError(err: unknown, server: string, keySource: string | null): unknown {
  if (!isConveyorError(err)) return err;
  switch (err.code) {
    case 'STORE_UNAVAILABLE':
      return new CliError(
        `${err.code}: ${err.message}`,
        `check that \`conveyor serve\` is running at ${server} and reachable from here (the URL comes from --server or CONVEYOR_SERVER); or read the store directly with --url`,
      );
    case 'UNAUTHORIZED':
      return new CliError(
        `${err.code}: ${err.message}`,
        keySource === null
          ? 'this server requires an API key: pass --key or set CONVEYOR_API_KEY (create one with `conveyor keys create --name stats --scopes read`)'
          : `the server does not accept the key from ${keySource} (revoked, expired or mistyped?); \`conveyor keys ls\` on its store lists the keys`,
      );
    case 'FORBIDDEN':
      return new CliError(`${err.code}: ${err.message}`, 'the key needs the read scope (or admin): create one with `conveyor keys create --name stats --scopes read`');
    default:
      return err;
  }
}

async function serverSource(server: string, key: { value: string | null; source: string }): Promise<Source> {
  const { HttpClient } = await import('../../client/http.ts');
  const client = new HttpClient({ server, apiKey: key.value ?? undefined, requestTimeoutMs: 10_000 });
  const keySource = key.value === null ? null : key.source;
  return {
    label: `${client.base} (conveyor server)`,
    id: client.base,
    read: async () => {
      try {
        const body = await client.request<{ queues: QueueInfo[] }>('GET', '/api/v1/queues', undefined, { operation: 'list queues' });
        if (!Array.isArray(body?.queues)) throw new CliError(`the server at ${client.base} answered GET /api/v1/queues without a queue list`, 'check that --server is the base URL of a conveyor server, e.g. http://127.0.0.1:8080');
        return body.queues;
      } catch (err) {
        throw serverError(err, client.base, keySource);
      }
    },
    close: async () => undefined,
  };
}

async function openSource(flags: StatsFlags): Promise<Source> {
  const config = resolveConfig({ url: flags.url, server: flags.server, key: flags.key });
  if (flags.url !== undefined && flags.server !== undefined) throw new UsageError('give either --url (read the store) or --server (ask a server), not both');
  // --server, or CONVEYOR_SERVER unless --url says to read a store.
  if (config.server.value !== null && flags.url === undefined) return serverSource(config.server.value, config.apiKey);
  if (flags.key !== undefined) throw new UsageError('--key goes with --server (an API key for a conveyor server)');
  return storeSource(flags);
}

// ------------------------------------------------------------------------- samples

const ZERO: QueueStats['counts'] = { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0 };

function perSec(now: number, before: number, secs: number): number {
  return Math.max(0, now - before) / secs;
}

/** A sample from a queue listing and the previous sample (for rates). */
export function makeSample(list: readonly QueueInfo[], at: number, previous: StatsSample | null, options: { source: string; intervalMs: number; only?: readonly string[] | undefined }): StatsSample {
  const byName = new Map(list.map((q) => [q.name, q]));
  const names = options.only ?? list.map((q) => q.name);
  const before = new Map((previous?.queues ?? []).filter((q) => q.exists).map((q) => [q.name, q]));
  const secs = previous === null ? 0 : (at - previous.at) / 1000;
  const queues = names.map((name): QueueStats => {
    const info = byName.get(name);
    const counts = info === undefined ? ZERO : { waiting: info.counts.waiting, delayed: info.counts.delayed, active: info.counts.active, completed: info.counts.completed, failed: info.counts.failed };
    const prev = before.get(name);
    const rated = prev !== undefined && secs > 0;
    return {
      name,
      paused: info?.paused ?? false,
      exists: info !== undefined,
      counts,
      completedPerSec: rated ? perSec(counts.completed, prev.counts.completed, secs) : info === undefined && previous !== null ? 0 : null,
      failedPerSec: rated ? perSec(counts.failed, prev.counts.failed, secs) : info === undefined && previous !== null ? 0 : null,
    };
  });
  const sum = (f: (q: QueueStats) => number): number => queues.reduce((a, q) => a + f(q), 0);
  const rates = queues.filter((q) => q.completedPerSec !== null);
  return {
    at,
    source: options.source,
    intervalMs: options.intervalMs,
    elapsedMs: previous === null ? null : at - previous.at,
    queues,
    totals: {
      counts: { waiting: sum((q) => q.counts.waiting), delayed: sum((q) => q.counts.delayed), active: sum((q) => q.counts.active), completed: sum((q) => q.counts.completed), failed: sum((q) => q.counts.failed) },
      completedPerSec: rates.length === 0 ? null : rates.reduce((a, q) => a + q.completedPerSec!, 0),
      failedPerSec: rates.length === 0 ? null : rates.reduce((a, q) => a + (q.failedPerSec ?? 0), 0),
    },
  };
}

function round2(x: number | null): number | null {
  return x === null ? null : Math.round(x * 100) / 100;
}

function jsonSample(s: StatsSample): StatsSample {
  return {
    ...s,
    queues: s.queues.map((q) => ({ ...q, completedPerSec: round2(q.completedPerSec), failedPerSec: round2(q.failedPerSec) })),
    totals: { ...s.totals, completedPerSec: round2(s.totals.completedPerSec), failedPerSec: round2(s.totals.failedPerSec) },
  };
}

// ------------------------------------------------------------------------ rendering

function rate(x: number | null): string {
  if (x === null) return '-';
  return x >= 100 ? Math.round(x).toString() : x.toFixed(1);
}

/** The table as lines: a header, a row per queue, a total row when there are several. */
export function tableLines(s: StatsSample): string[] {
  const header = ['queue', ...COLUMNS, 'completed/s', 'failed/s'];
  const row = (name: string, counts: QueueStats['counts'], c: number | null, f: number | null): string[] => [name, ...COLUMNS.map((k) => String(counts[k])), rate(c), rate(f)];
  const rows = s.queues.map((q) => row(q.name + (q.paused ? ' (paused)' : '') + (q.exists ? '' : ' (no jobs)'), q.counts, q.completedPerSec, q.failedPerSec));
  if (s.queues.length > 1) rows.push(row('total', s.totals.counts, s.totals.completedPerSec, s.totals.failedPerSec));
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  return [header, ...rows].map((r) => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd());
}

/** Plain lines for logs: one per queue, `key=value`. */
function plainLines(s: StatsSample): string[] {
  if (s.queues.length === 0) return [`${formatTime(s.at)} no queues yet`];
  return s.queues.map(
    (q) =>
      `${formatTime(s.at)} ${q.name} ${COLUMNS.map((k) => `${k}=${q.counts[k]}`).join(' ')} completed/s=${rate(q.completedPerSec)} failed/s=${rate(q.failedPerSec)}${q.paused ? ' paused' : ''}${q.exists ? '' : ' no-jobs'}`,
  );
}

const ESC = '\u001b[';

/**
 * The live view on a terminal. Each frame is written at once: the cursor goes back to the
 * frame's first line, every line is rewritten and cleared to its end, and whatever the
 * previous frame had below is cleared, so nothing blanks between frames. Lines are cut to
 * the terminal's width (a wrapped line would break the cursor arithmetic) and queues to its
 * height.
 */
class LiveView {
  #lines = 0;
  #clear = false;
  readonly #out: NodeJS.WriteStream;
  readonly #onResize = (): void => {
    this.#clear = true;
  };

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
    out.write(`${ESC}?25l`); // hide the cursor
    out.on('resize', this.#onResize);
  }

  draw(lines: readonly string[]): void {
    // A terminal that reports no size (0) is taken as 80 × 24.
    const cols = Math.max(20, (this.#out.columns || 80) - 1);
    const rows = Math.max(5, (this.#out.rows || 24) - 1);
    let shown = lines.map((l) => (l.length > cols ? `${l.slice(0, cols - 1)}…` : l));
    if (shown.length > rows) shown = [...shown.slice(0, rows - 1), `… ${shown.length - rows + 1} more lines (make the window taller, or use --queues)`.slice(0, cols)];
    let frame = '';
    if (this.#clear) frame += `${ESC}H${ESC}2J`;
    else if (this.#lines > 0) frame += `\r${ESC}${this.#lines}A`;
    this.#clear = false;
    frame += shown.map((l) => `${l}${ESC}K\n`).join('');
    frame += `${ESC}J`;
    this.#out.write(frame);
    this.#lines = shown.length;
  }

  close(): void {
    this.#out.off('resize', this.#onResize);
    this.#out.write(`${ESC}?25h`); // the cursor back
  }
}

function header(source: Source, s: StatsSample | null, intervalMs: number, error: string | null): string[] {
  const at = s === null ? formatTime(Date.now()) : formatTime(s.at);
  const lines = [`conveyor stats  ${source.label}`, `${at}  every ${intervalMs >= 1000 ? `${intervalMs / 1000}s` : `${intervalMs}ms`}  Ctrl-C to quit`];
  if (error !== null) lines.push(`last sample failed (retrying): ${error.split('\n')[0]}`);
  return [...lines, ''];
}

// --------------------------------------------------------------------------- command

export function registerStats(program: Command): void {
  const cmd = program
    .command('stats')
    .description('a live view of job counts and rates per queue (completed/s, failed/s), from a store or a server')
    .option('--server <url>', "a conveyor server's base URL: read its GET /api/v1/queues instead of a store; default: $CONVEYOR_SERVER")
    .option('--key <key>', 'an API key for --server with the read scope; default: $CONVEYOR_API_KEY')
    .option('--queues <names>', 'only these queues, comma-separated (shown with zeros until they have jobs)', parseQueues)
    .addOption(new Option('--interval <duration>', 'time between samples, e.g. 500ms, 2s').argParser(parseInterval).default(1000, '1s'))
    .option('--once', 'print one table (or one JSON object) and exit; a single sample has no rates')
    .option('--samples <n>', 'stop after n samples', intParser(1))
    .option('--json', 'print one JSON object per sample, one per line');
  withUrl(cmd);
  examples(cmd, [
    'conveyor stats                                        # live view of the default store, every second',
    'conveyor stats --url postgres://app@db/app --queues email,payments --interval 5s',
    'conveyor stats --server http://127.0.0.1:8080 --key "$KEY"',
    'conveyor stats --once --json | jq \'.queues[] | select(.counts.failed > 0)\'',
    'conveyor stats --json --interval 10s >> stats.ndjson  # one JSON line per sample',
  ]);
  cmd.action(async (flags: StatsFlags) => {
    const samples = flags.once ? 1 : (flags.samples ?? Infinity);
    const source = await openSource(flags);
    try {
      await watch(source, flags, samples);
    } finally {
      await source.close();
    }
  });
}

async function watch(source: Source, flags: StatsFlags, samples: number): Promise<void> {
  const intervalMs = flags.interval;
  const live = !flags.json && !flags.once && process.stdout.isTTY === true;
  const options = { source: source.id, intervalMs, only: flags.queues };

  // The first sample is read before anything is drawn: a wrong URL, key or server fails at once (exit 1).
  const first = await source.read();
  let previous = makeSample(first, Date.now(), null, options);
  if (flags.queues !== undefined && !flags.json) {
    for (const q of previous.queues) {
      if (q.exists) continue;
      const suggestion = didYouMean(q.name, first.map((x) => x.name));
      note(`conveyor: no queue named '${q.name}' yet${suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`}; it shows zeros until it has jobs`);
    }
  }
  if (flags.once) {
    if (flags.json) printJson(jsonSample(previous));
    else if (previous.queues.length === 0) printLine('no queues yet (a queue appears with its first job: conveyor add <queue> --data …)');
    else for (const line of tableLines(previous)) printLine(line);
    return;
  }

  let stopped = false;
  let wake: (() => void) | undefined;
  const stop = (): void => {
    stopped = true;
    wake?.();
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const view = live ? new LiveView(process.stdout) : undefined;
  let lastError: string | null = null;
  const show = (s: StatsSample): void => {
    if (flags.json) printJson(jsonSample(s));
    else if (view) view.draw([...header(source, s, intervalMs, lastError), ...(s.queues.length === 0 ? ['no queues yet'] : tableLines(s))]);
    else for (const line of plainLines(s)) printLine(line);
  };
  try {
    show(previous);
    const started = Date.now();
    for (let n = 1; n < samples && !stopped; n++) {
      // On a fixed schedule from the start; a slow sample skips ticks rather than bunching up.
      const next = started + Math.ceil((Date.now() - started + 1) / intervalMs) * intervalMs;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, next - Date.now());
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
      if (stopped) break;
      try {
        previous = makeSample(await source.read(), Date.now(), previous, options);
        lastError = null;
        show(previous);
      } catch (err) {
        // A store or server that goes away mid-watch: say so and keep trying.
        lastError = err instanceof Error ? err.message : String(err);
        if (view) view.draw([...header(source, previous, intervalMs, lastError), ...tableLines(previous)]);
        else note(`conveyor: ${formatTime(Date.now())} sample failed (retrying): ${lastError}`);
      }
    }
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
    view?.close();
  }
}
