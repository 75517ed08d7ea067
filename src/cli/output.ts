/**
 * Output helpers: JSON for scripts, aligned tables for people, and progress for long
 * operations (a bar on a terminal, plain lines otherwise). Data goes to stdout; progress,
 * notes and errors go to stderr, so `--json` output can be piped as it is.
 */
import cliProgress from 'cli-progress';

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

export function printLine(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** A note for people (stderr), so stdout stays data. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

/** Columns aligned by their widest cell; `right` lists columns to right-align (numbers). */
export function printTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>, right: ReadonlySet<number> = new Set()): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const row of [header, ...rows]) {
    const cells = row.map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)));
    printLine(cells.join('  ').trimEnd());
  }
}

/** Epoch ms → `2030-01-31 09:00:00Z`; null → `-`. */
export function formatTime(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  return `${new Date(ms).toISOString().slice(0, 19).replace('T', ' ')}Z`;
}

/** Milliseconds → `1.2 s`, `350 ms`, `3 min`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}

export interface Progress {
  /** Sets the count done so far. */
  update(done: number): void;
  /** Ends the progress display; `total`, when given, replaces the expected total (an estimate that turned out smaller or larger). */
  stop(total?: number): void;
}

/**
 * Progress of a long operation on stderr: a bar when stderr is a terminal, else a plain line
 * at most once a second (and at the end), so logs of scripts and CI stay readable.
 * `enabled: false` (the `--no-progress` flag) prints nothing.
 */
export function startProgress(label: string, total: number, unit: string, options: { enabled?: boolean } = {}): Progress {
  if (options.enabled === false) return { update: () => undefined, stop: () => undefined };
  if (process.stderr.isTTY) {
    const bar = new cliProgress.SingleBar(
      {
        format: `${label} {bar} {percentage}% | {value}/{total} ${unit} | {rate}/s | eta {eta_formatted}`,
        stream: process.stderr,
        hideCursor: true,
        etaBuffer: 50,
        fps: 10,
      },
      cliProgress.Presets.shades_classic,
    );
    const started = Date.now();
    bar.start(total, 0, { rate: '0' });
    let current = 0;
    return {
      update: (done) => {
        current = done;
        const seconds = (Date.now() - started) / 1000;
        bar.update(done, { rate: seconds > 0 ? Math.round(done / seconds).toString() : '0' });
      },
      stop: (t) => {
        if (t !== undefined) {
          bar.setTotal(t);
          bar.update(current);
        }
        bar.stop();
      },
    };
  }
  let last = 0;
  let current = 0;
  let max = total;
  let printed = -1;
  const started = Date.now();
  const line = () => {
    printed = current;
    const pct = max > 0 ? Math.floor((current / max) * 100) : 100;
    process.stderr.write(`${label}: ${current}/${max} ${unit} (${pct}%) after ${formatDuration(Date.now() - started)}\n`);
  };
  return {
    update: (done) => {
      current = done;
      const now = Date.now();
      if (now - last >= 1000) {
        last = now;
        line();
      }
    },
    stop: (t) => {
      if (t !== undefined) max = t;
      if (printed !== current) line();
    },
  };
}
