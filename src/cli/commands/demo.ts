/**
 * `conveyor demo` (and `npm start`): the whole system in one command. A fresh embedded
 * SQLite store, the HTTP server with the dashboard, workers and a producer modelled on an
 * online shop (src/demo/): orders → payments (some fail and retry with backoff, a few fail
 * for good) → notifications (email and sms, mixed priorities, some delayed). Prints the
 * URLs, then a live summary line; SIGTERM/SIGINT stop it gracefully (exit 0).
 */
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { VERSION } from '../../version.ts';
import { parsePort, resolveConfig } from '../config.ts';
import { errorContext, formatError } from '../errors.ts';
import { LiveLine } from '../live.ts';
import { formatDuration, note, printJson, printLine } from '../output.ts';
import { parseDuration } from '../parse.ts';
import { examples, withJson } from '../shared.ts';

interface DemoFlags {
  port?: number;
  db: string;
  rate: number;
  duration?: number;
  json?: boolean;
}

const DEFAULT_DB = path.join('.conveyor', 'demo.db');
/** Off a terminal (a log file, CI), the summary is printed this often. */
const PLAIN_SUMMARY_EVERY_MS = 5000;

function portFlag(text: string): number {
  try {
    return parsePort(text, '--port');
  } catch (err) {
    throw new InvalidArgumentError(err instanceof Error ? err.message : String(err));
  }
}

function rateFlag(text: string): number {
  const n = Number(text);
  if (!Number.isFinite(n) || n <= 0 || n > 10_000) throw new InvalidArgumentError(`'${text}' must be a number of orders per second, more than 0 and at most 10000.`);
  return n;
}

export function registerDemo(program: Command): void {
  const cmd = program
    .command('demo')
    .description('see it work: a fresh embedded store, the server and dashboard, workers and a producer of an online shop (orders → payments → notifications), with a live summary')
    .option('--port <n>', 'port; default $CONVEYOR_PORT, else 8080 or the next free one (0: any free port)', portFlag)
    .option('--db <file>', `the SQLite file, deleted and created afresh at every start (default ${DEFAULT_DB})`, DEFAULT_DB)
    .addOption(new Option('--rate <n>', 'orders per second (each makes a payment and one to three notifications)').argParser(rateFlag).default(10))
    .option('--duration <duration>', 'stop by itself after this long (e.g. 30s); default: run until Ctrl-C', parseDuration);
  withJson(cmd);
  examples(cmd, [
    'conveyor demo                        # or npm start in a clone; then open the dashboard URL it prints',
    'conveyor demo --rate 50              # more traffic',
    'conveyor demo --port 0 --duration 20s',
    'npx conveyor-queue demo              # from anywhere, with the published package',
  ]);
  cmd.addHelpText('after', '\nCtrl-C (SIGINT) or SIGTERM stop it gracefully: the producer stops, running jobs finish, exit 0. The store stays\nin the --db file until the next start, for `conveyor jobs ls payments --state failed --url sqlite://.conveyor/demo.db`.\n');
  cmd.action(async (flags: DemoFlags) => {
    const config = resolveConfig({ port: flags.port });
    const dbUrl = `sqlite://${flags.db}`;
    errorContext.url = { value: dbUrl, source: flags.db === DEFAULT_DB ? 'default' : '--db' };
    const json = flags.json === true;
    const live = new LiveLine(process.stdout);
    const { startDemo } = await import('../../demo/run.ts');
    const started = Date.now();
    let lastError = '';
    let lastErrorAt = 0;
    const demo = await startDemo({
      dbPath: flags.db,
      port: config.port.value,
      // 8080 taken (another demo, another server)? The next free port, unless one was asked for.
      nextFreePort: config.port.source === 'default',
      rate: flags.rate,
      onError: (err, where) => {
        const text = `${where}: ${err instanceof Error ? err.message : String(err)}`;
        if (text === lastError && Date.now() - lastErrorAt < 5000) return;
        lastError = text;
        lastErrorAt = Date.now();
        if (json) printJson({ event: 'error', at: Date.now(), message: text });
        else live.print(`error in ${text}`);
      },
      onFirstCompleted: () => {
        const after = Date.now() - started;
        if (json) printJson({ event: 'flowing', at: Date.now(), afterMs: after });
        else live.print(`jobs are flowing: the first one completed ${formatDuration(after)} after start`);
      },
    });
    const { urls } = demo;
    if (json) {
      printJson({ event: 'started', at: Date.now(), url: demo.url, ...urls, store: dbUrl, rate: flags.rate, version: VERSION, pid: process.pid });
    } else {
      const row = (label: string, text: string) => printLine(`  ${label.padEnd(11)}${text}`);
      printLine(`conveyor demo ${VERSION}: an online shop's background jobs on the embedded SQLite store`);
      row('API', `${urls.api}  (OpenAPI: ${urls.openapi})`);
      row('dashboard', urls.dashboard === null ? '(this version has no dashboard)' : demo.dashboardBuilt ? urls.dashboard : `${urls.dashboard}  (not built: its pages say so; run npm run build in a clone)`);
      row('metrics', urls.metrics);
      row('health', urls.health);
      row('store', `${flags.db} (SQLite, emptied at every start; it stays there after you stop)`);
      row('flow', 'orders → payments → notifications (email, sms)');
      row('', 'payments: ≈6 % of attempts fail and retry with exponential backoff, ≈1.5 % are declined for good');
      row('', 'notifications: receipts, texts for express orders (higher priority), review requests delayed 5-20 s');
      row('producer', `${flags.rate} orders/s, and a burst of 100 every 30 s`);
      printLine(`Press Ctrl-C to stop.${live.tty ? '' : ` A summary line follows every ${PLAIN_SUMMARY_EVERY_MS / 1000} s.`}`);
    }

    // ---- the summary line
    let lastPlainAt = Date.now();
    let busy = false;
    const summarize = async (force = false) => {
      if (busy) return;
      busy = true;
      try {
        const now = Date.now();
        if (!force && !live.tty && !json && now - lastPlainAt < PLAIN_SUMMARY_EVERY_MS) return;
        if (!force && json && now - lastPlainAt < PLAIN_SUMMARY_EVERY_MS) return;
        lastPlainAt = now;
        const counts = await demo.counts();
        const perSecond = demo.tally.rate(now);
        if (json) {
          printJson({
            event: 'summary',
            at: now,
            completedPerSecond: Math.round(perSecond * 10) / 10,
            queues: Object.fromEntries([...demo.tally.byQueue].map(([q, t]) => [q, { ...t, counts: counts.find((c) => c.name === q)?.counts ?? null }])),
          });
          return;
        }
        const { summaryLine } = await import('../../demo/summary.ts');
        const elapsed = Math.round((now - started) / 1000);
        const clock = `${String(Math.floor(elapsed / 60)).padStart(2, '0')}:${String(elapsed % 60).padStart(2, '0')}`;
        live.update(`${clock}  ${summaryLine(demo.tally, counts, perSecond)}`);
      } catch (err) {
        live.print(`summary: ${err instanceof Error ? err.message : String(err)}`);
      } finally {
        busy = false;
      }
    };
    const timer = setInterval(() => void summarize(), 1000);

    // ---- stopping
    let stopping = false;
    const stop = (why: string) => {
      if (stopping) {
        note(`conveyor demo: ${why} again: exiting at once`);
        process.exit(1);
      }
      stopping = true;
      clearInterval(timer);
      live.end();
      const at = Date.now();
      const running = demo.workers.reduce((n, w) => n + w.activeJobs().length, 0);
      note(
        `conveyor demo: ${why}: stopping. The producer stops, ${running === 0 ? 'no job is running' : `${running} running ${running === 1 ? 'job finishes' : 'jobs finish'}`}, then the server and the store close.` +
          (why.startsWith('SIG') ? ` Send ${why} again to exit at once.` : ''),
      );
      const deadline = setTimeout(() => {
        note('conveyor demo: still not stopped after 30 s: exiting with code 1');
        process.exit(1);
      }, 30_000);
      deadline.unref();
      demo.stop().then(
        () => {
          clearTimeout(deadline);
          const t = [...demo.tally.byQueue].map(([q, c]) => `${c.completed.toLocaleString('en-US')} ${q}${c.failed > 0 ? ` (${c.failed} failed)` : ''}`).join(', ');
          if (json) printJson({ event: 'stopped', at: Date.now(), durationMs: Date.now() - at, ranMs: Date.now() - started, queues: Object.fromEntries(demo.tally.byQueue) });
          note(`conveyor demo: stopped cleanly in ${formatDuration(Date.now() - at)} after running ${formatDuration(at - started)}: completed ${t}.`);
          note(`  The store stays in ${flags.db} until the next demo: conveyor jobs ls payments --state failed --url ${dbUrl}`);
          process.exit(0);
        },
        (err: unknown) => {
          clearTimeout(deadline);
          note(`conveyor demo: ${formatError(err, errorContext).join('\n  ')}`);
          note('conveyor demo: shutdown failed: exiting with code 1');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', () => stop('SIGTERM'));
    process.on('SIGINT', () => stop('SIGINT'));
    if (flags.duration !== undefined) setTimeout(() => stop(`--duration ${formatDuration(flags.duration!)} reached`), flags.duration).unref();
  });
}
