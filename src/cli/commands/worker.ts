/**
 * `conveyor worker --handlers <folder|module>`: runs job handlers (src/cli/handlers.ts) in
 * one library `Worker` over every queue that has a handler, either on the store directly
 * (`--url`, as `Conveyor.open`) or through a conveyor server (`--server` + `--key`, as
 * `Conveyor.connect`). SIGTERM/SIGINT close it gracefully and say which jobs it waits for.
 *
 * Output: a start banner, then a status line (rewritten at most once a second on a
 * terminal, a line every 5 s otherwise), failures as lines of their own; `--json` prints one
 * JSON object per event instead. Shutdown notes go to stderr.
 */
import path from 'node:path';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { VERSION } from '../../version.ts';
import type { Job } from '../../engine/job.ts';
import type { Worker } from '../../engine/worker.ts';
import { maskKey, maskUrl, resolveConfig, type Setting } from '../config.ts';
import { CliError, UsageError, errorContext, formatError } from '../errors.ts';
import { describeQueue, loadHandlers, type QueueHandlers } from '../handlers.ts';
import { LiveLine, count, rate } from '../live.ts';
import { formatDuration, note, printJson, printLine } from '../output.ts';
import { intParser, parseDuration } from '../parse.ts';
import { examples, withJson, withUrl } from '../shared.ts';

interface WorkerFlags {
  handlers: string;
  queues?: string[];
  concurrency: number;
  lease?: number;
  url?: string;
  server?: string;
  key?: string;
  shutdownTimeout: number;
  json?: boolean;
}

/** Failure lines printed per second at most; the rest are counted and summed up. */
const FAILURE_LINES_PER_SECOND = 5;
/** Off a terminal, the status line is printed this often (when something changed). */
const PLAIN_STATUS_EVERY_MS = 5000;
/** While shutting down, "still waiting for …" this often. */
const STILL_WAITING_EVERY_MS = 5000;

function queueList(text: string): string[] {
  const list = text
    .split(',')
    .map((q) => q.trim())
    .filter((q) => q !== '');
  if (list.length === 0) throw new InvalidArgumentError('give one or more queue names, comma-separated, e.g. --queues payments,email');
  return list;
}

function errorText(err: unknown): string {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return typeof code === 'string' && !err.message.startsWith(code) ? `${code}: ${err.message}` : err.message;
  }
  return String(err);
}

/** Where the worker gets its jobs: a store, or a server over HTTP. */
type Target = { kind: 'store'; url: Setting<string> } | { kind: 'server'; server: Setting<string>; key: Setting<string | null> };

function chooseTarget(flags: WorkerFlags): Target {
  if (flags.url !== undefined && flags.server !== undefined) {
    throw new UsageError('--url and --server both given: a worker runs either on the store directly (--url) or through a conveyor server over HTTP (--server), not both');
  }
  const config = resolveConfig({ url: flags.url, server: flags.server, key: flags.key });
  // A server named by flag, or by CONVEYOR_SERVER when no --url says otherwise, means HTTP.
  if (flags.server !== undefined || (flags.url === undefined && config.server.value !== null)) {
    return { kind: 'server', server: config.server as Setting<string>, key: config.apiKey };
  }
  if (flags.key !== undefined) throw new UsageError('--key is the API key for --server; a worker on the store (--url) needs none', 'pass --server <url> to work through a conveyor server, or drop --key');
  errorContext.url = config.url;
  return { kind: 'store', url: config.url };
}

function fromWhere(s: Setting<unknown>): string {
  return s.source === 'default' ? 'the default' : s.source;
}

/** The server's answer to "who am I" for this key: fails early on a missing, wrong or too weak key. */
async function checkServerAccess(base: string, server: Setting<string>, key: Setting<string | null>): Promise<void> {
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1/whoami`, { headers: key.value === null ? {} : { authorization: `Bearer ${key.value}` }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    throw new CliError(`could not reach the server at ${maskUrl(server.value)} (from ${fromWhere(server)}): ${errorText(err)}`, 'check that `conveyor serve` runs there');
  }
  if (res.status === 404) return; // a server without the endpoint: the first claim will tell
  const create = 'create one where the store is: conveyor keys create --name worker --scopes consume; then pass it with --key or CONVEYOR_API_KEY';
  if (res.status === 401) {
    throw new CliError(
      key.value === null
        ? `the server at ${maskUrl(server.value)} requires an API key, and none was given`
        : `the server at ${maskUrl(server.value)} refused the API key ${maskKey(key.value)} (from ${fromWhere(key)}): unknown, revoked or expired`,
      create,
    );
  }
  if (!res.ok) return;
  const body = (await res.json().catch(() => null)) as { scopes?: unknown } | null;
  const scopes = Array.isArray(body?.scopes) ? (body.scopes as string[]) : null;
  if (scopes !== null && !scopes.includes('consume') && !scopes.includes('admin')) {
    throw new CliError(`the API key ${maskKey(key.value ?? '')} has the scopes ${scopes.join(', ') || '(none)'}, and a worker needs 'consume'`, create);
  }
}

interface Opened {
  worker: Worker;
  close(timeoutMs: number): Promise<void>;
  describe: string;
}

async function open(target: Target, queues: readonly string[], dispatch: (job: Job, context: Parameters<QueueHandlers['handler']>[1]) => unknown, flags: WorkerFlags): Promise<Opened> {
  // Started by the caller once its listeners are on (an early job would otherwise go unreported).
  const options = { concurrency: flags.concurrency, ...(flags.lease === undefined ? {} : { leaseMs: flags.lease }), name: 'cli', autorun: false };
  if (target.kind === 'store') {
    const { Conveyor } = await import('../../engine/conveyor.ts');
    const cv = await Conveyor.open({ url: target.url.value, migrate: false });
    try {
      const worker = cv.worker(queues, dispatch, options);
      return { worker, close: (timeoutMs) => cv.close({ timeoutMs }), describe: `store     ${maskUrl(target.url.value)} (from ${fromWhere(target.url)})` };
    } catch (err) {
      await cv.close().catch(() => undefined);
      throw err;
    }
  }
  const { Conveyor } = await import('../../engine/conveyor.ts');
  let rc: Awaited<ReturnType<typeof Conveyor.connect>>;
  try {
    rc = await Conveyor.connect({ server: target.server.value, ...(target.key.value === null ? {} : { apiKey: target.key.value }) });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'INVALID_ARGUMENT') throw new UsageError(`--server: ${errorText(err)}`);
    throw new CliError(`could not reach the server at ${maskUrl(target.server.value)} (from ${fromWhere(target.server)}): ${errorText(err)}`, 'check that `conveyor serve` runs there and that the URL is right (`conveyor config` shows where it came from)');
  }
  await checkServerAccess(rc.server, target.server, target.key);
  const worker = rc.worker(queues, dispatch, options);
  const key = target.key.value === null ? 'no API key' : `API key ${maskKey(target.key.value)} (from ${fromWhere(target.key)})`;
  return { worker, close: (timeoutMs) => rc.close({ timeoutMs }), describe: `server    ${maskUrl(rc.server)} over HTTP (from ${fromWhere(target.server)}), ${key}` };
}

export function registerWorker(program: Command): void {
  const cmd = program
    .command('worker')
    .description('run job handlers from a folder (one file per queue) or a module, on the store directly or through a server over HTTP')
    .requiredOption('--handlers <path>', 'a folder of handler files named after their queues (jobs/payments.ts handles queue payments), or one module exporting { queue: handler }. TypeScript works as it is (Node >= 22.18)')
    .option('--queues <list>', 'only these queues, comma-separated (default: every queue with a handler)', queueList)
    .addOption(new Option('--concurrency <n>', 'jobs running at once, all queues together').argParser(intParser(1, 10_000)).default(10))
    .option('--lease <duration>', "how long a job is held before it counts as stalled, renewed every third of it (default 30s; at least 1s over HTTP)", parseDuration)
    .option('--server <url>', 'work through a conveyor server (conveyor serve) instead of the store. Default: $CONVEYOR_SERVER')
    .option('--key <key>', 'API key for --server, with the consume scope. Default: $CONVEYOR_API_KEY')
    .addOption(new Option('--shutdown-timeout <duration>', 'on SIGTERM/SIGINT, how long running jobs may take to finish; then they are abandoned to be retried, exit 1').argParser(parseDuration).default(30_000, '30s'));
  withUrl(cmd);
  withJson(cmd);
  examples(cmd, [
    'conveyor worker --handlers ./jobs                          # jobs/payments.ts handles queue payments, …',
    'conveyor worker --handlers ./jobs --queues payments --concurrency 20',
    "conveyor worker --handlers ./handlers.ts --url 'postgres://app:secret@db/app'",
    'conveyor worker --handlers ./jobs --server http://jobs.internal:8080 --key "$CONVEYOR_API_KEY"',
    'conveyor worker --handlers ./jobs --json | jq -c \'select(.event == "failed")\'',
  ]);
  cmd.addHelpText(
    'after',
    `
A handler file (jobs/payments.ts handles queue "payments"):
  export default async function (job, { signal, log, progress }) {
    return { charged: job.data.amount };
  }
or one function per job name: export default { charge: async (job) => …, refund: async (job) => … }
('*' catches the other names). One module for several queues: export default { payments: fn, email: { welcome: fn } }.

The store: --url, else $CONVEYOR_SERVER (then the worker goes over HTTP), else $CONVEYOR_URL / $DATABASE_URL,
else sqlite://.conveyor/conveyor.db. SIGTERM or SIGINT (Ctrl-C): no new jobs, running ones finish (up to
--shutdown-timeout), then exit 0; a second signal exits at once with 1.
`,
  );
  cmd.action(async (flags: WorkerFlags) => {
    const target = chooseTarget(flags);
    const loaded = await loadHandlers(flags.handlers);
    let selected: readonly QueueHandlers[] = loaded.queues;
    if (flags.queues !== undefined) {
      const byName = new Map(loaded.queues.map((q) => [q.queue, q]));
      const missing = flags.queues.filter((q) => !byName.has(q));
      if (missing.length > 0) {
        throw new UsageError(
          `--queues names ${missing.map((q) => `'${q}'`).join(', ')}, which ${missing.length === 1 ? 'has' : 'have'} no handler in ${path.relative(process.cwd(), loaded.path) || '.'}`,
          `queues with handlers: ${loaded.queues.map((q) => q.queue).join(', ')}`,
        );
      }
      selected = [...new Set(flags.queues)].map((q) => byName.get(q)!);
    }
    const handlers = new Map(selected.map((q) => [q.queue, q.handler]));
    const dispatch = (job: Job, context: Parameters<QueueHandlers['handler']>[1]) => handlers.get(job.queueName)!(job, context);

    const opened = await open(
      target,
      selected.map((q) => q.queue),
      dispatch,
      flags,
    );
    const { worker } = opened;
    const json = flags.json === true;
    const live = new LiveLine(process.stdout);
    const started = Date.now();
    const totals = { completed: 0, failed: 0, retried: 0, stalled: 0, leaseLost: 0 };
    /** Jobs whose handler started and that have no outcome yet: `queue/id` → start time. */
    const running = new Map<string, { queue: string; id: string; name: string; since: number }>();
    const keyOf = (job: Job) => `${job.queueName}/${job.id}`;

    if (json) {
      printJson({
        event: 'started',
        at: started,
        version: VERSION,
        pid: process.pid,
        workerId: worker.id,
        handlers: loaded.path,
        queues: selected.map((q) => ({ queue: q.queue, source: q.source, names: q.names, catchAll: q.catchAll })),
        ...(target.kind === 'store' ? { store: maskUrl(target.url.value) } : { server: maskUrl(target.server.value) }),
        concurrency: flags.concurrency,
        leaseMs: flags.lease ?? 30_000,
      });
    } else {
      printLine(`conveyor worker ${VERSION}: ${selected.length} ${selected.length === 1 ? 'queue' : 'queues'} from ${path.relative(process.cwd(), loaded.path) || '.'} (${loaded.kind === 'folder' ? 'a file per queue' : 'one module'})`);
      const width = Math.max(...selected.map((q) => q.queue.length)) + 2;
      for (const q of selected) printLine(`  ${q.queue.padEnd(width)}${q.source}: ${describeQueue(q).slice(q.queue.length + 1).replace(/^\(|\)$/g, '')}`);
      printLine(`  ${opened.describe}`);
      printLine(`  concurrency ${flags.concurrency}, lease ${formatDuration(flags.lease ?? 30_000)}, worker ${worker.id}`);
      printLine('Press Ctrl-C to stop (running jobs finish first).');
    }

    // ---- events
    let failureLinesThisSecond = 0;
    let failureLinesSecond = 0;
    let failuresNotShown = 0;
    let lastErrorText = '';
    let lastErrorAt = 0;
    let errorsNotShown = 0;
    worker.on('active', (job) => {
      running.set(keyOf(job), { queue: job.queueName, id: job.id, name: job.name, since: Date.now() });
      if (json) printJson({ event: 'active', at: Date.now(), queue: job.queueName, id: job.id, name: job.name, attempt: job.attemptsMade + 1 });
    });
    worker.on('completed', (job) => {
      const r = running.get(keyOf(job));
      running.delete(keyOf(job));
      totals.completed++;
      if (json) printJson({ event: 'completed', at: Date.now(), queue: job.queueName, id: job.id, name: job.name, attempt: job.attemptsMade + 1, durationMs: r === undefined ? null : Date.now() - r.since });
    });
    worker.on('failed', (job, err, willRetry) => {
      running.delete(keyOf(job));
      if (willRetry) totals.retried++;
      else totals.failed++;
      const attempt = job.attemptsMade + 1;
      if (json) {
        printJson({ event: 'failed', at: Date.now(), queue: job.queueName, id: job.id, name: job.name, attempt, maxAttempts: job.maxAttempts, willRetry, error: { name: err.name, message: err.message } });
        return;
      }
      const second = Math.floor(Date.now() / 1000);
      if (second !== failureLinesSecond) {
        failureLinesSecond = second;
        failureLinesThisSecond = 0;
      }
      if (failureLinesThisSecond >= FAILURE_LINES_PER_SECOND) {
        failuresNotShown++;
        return;
      }
      failureLinesThisSecond++;
      live.print(`failed ${job.queueName}/${job.id} ${job.name} (attempt ${attempt}/${job.maxAttempts}${willRetry ? ', will retry' : ', no retries left'}): ${err.message.split('\n')[0]}`);
    });
    worker.on('leaseLost', (job) => {
      running.delete(keyOf(job));
      totals.leaseLost++;
      if (json) printJson({ event: 'leaseLost', at: Date.now(), queue: job.queueName, id: job.id, name: job.name });
      else live.print(`lease lost ${job.queueName}/${job.id} ${job.name}: the store no longer had it leased to this worker (expired or cancelled); its outcome here was discarded`);
    });
    worker.on('stalled', (id, queue, state) => {
      totals.stalled++;
      if (json) printJson({ event: 'stalled', at: Date.now(), queue, id, to: state });
      else live.print(`stalled ${queue}/${id}: a worker's lease expired; the job went back to ${state}`);
    });
    worker.on('error', (err) => {
      const text = errorText(err);
      if (json) {
        printJson({ event: 'error', at: Date.now(), message: text });
        return;
      }
      // The same error again and again (a store or server down): once every 5 s.
      const now = Date.now();
      if (text === lastErrorText && now - lastErrorAt < 5000) {
        errorsNotShown++;
        return;
      }
      live.print(`error: ${text}${errorsNotShown > 0 ? ` (${errorsNotShown} more like it)` : ''}; retrying`);
      lastErrorText = text;
      lastErrorAt = now;
      errorsNotShown = 0;
    });

    // ---- status line
    let lastCompleted = 0;
    let lastAt = started;
    let lastShown = '';
    let lastPlainAt = started;
    const status = () => {
      const now = Date.now();
      const perSecond = ((totals.completed - lastCompleted) * 1000) / Math.max(1, now - lastAt);
      const text =
        `completed ${count(totals.completed)}, failed ${count(totals.failed)}` +
        (totals.retried > 0 ? ` (+${count(totals.retried)} retried)` : '') +
        `, running ${running.size}, ${rate(perSecond)} jobs/s` +
        (failuresNotShown > 0 ? `, ${count(failuresNotShown)} failure lines not shown` : '');
      if (live.tty) {
        live.update(`${new Date(now).toISOString().slice(11, 19)}  ${text}`);
        lastCompleted = totals.completed;
        lastAt = now;
      } else if (now - lastPlainAt >= PLAIN_STATUS_EVERY_MS) {
        const key = `${totals.completed}/${totals.failed}/${totals.retried}/${running.size}`;
        if (key !== lastShown) live.update(`${new Date(now).toISOString().slice(0, 19)}Z  ${text}`);
        lastShown = key;
        lastPlainAt = now;
        lastCompleted = totals.completed;
        lastAt = now;
      }
    };
    worker.run();
    const statusTimer = json ? undefined : setInterval(status, 1000);
    // Worker timers do not hold the process open (they are unref'd); this does, until a signal.
    const keepAlive = setInterval(() => undefined, 1 << 30);

    // ---- shutdown
    let stopping = false;
    const list = (items: ReadonlyArray<{ queue: string; id: string; name: string; since: number }>, now: number) =>
      items
        .slice(0, 10)
        .map((r) => `${r.queue}/${r.id} ${r.name}, running ${formatDuration(now - r.since)}`)
        .join('; ') + (items.length > 10 ? `; and ${items.length - 10} more` : '');
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        note(`conveyor worker: ${signal} again: exiting at once (running jobs are abandoned; their leases expire and they run again)`);
        process.exit(1);
      }
      stopping = true;
      clearInterval(statusTimer);
      clearInterval(keepAlive);
      live.end();
      const at = Date.now();
      const now = [...running.values()];
      if (json) printJson({ event: 'stopping', at, signal, running: now.map((r) => ({ queue: r.queue, id: r.id, name: r.name, runningMs: at - r.since })) });
      note(
        `conveyor worker: ${signal}: stopping. No new jobs are taken; prefetched ones go back to their queues. ` +
          (now.length === 0
            ? 'No job is running.'
            : `Waiting for ${now.length} running ${now.length === 1 ? 'job' : 'jobs'} to finish (${list(now, at)}), at most ${formatDuration(flags.shutdownTimeout)} (--shutdown-timeout).`) +
          ` Send ${signal} again to exit at once.`,
      );
      const still = setInterval(() => {
        const left = [...running.values()];
        if (left.length > 0) note(`conveyor worker: still waiting for ${left.length} running ${left.length === 1 ? 'job' : 'jobs'}: ${list(left, Date.now())}`);
      }, STILL_WAITING_EVERY_MS);
      still.unref();
      opened.close(flags.shutdownTimeout).then(
        () => {
          clearInterval(still);
          const abandoned = [...running.values()];
          const took = formatDuration(Date.now() - at);
          const summary = `${count(totals.completed)} completed, ${count(totals.failed)} failed${totals.retried > 0 ? `, ${count(totals.retried)} retried` : ''} since it started ${formatDuration(Date.now() - started)} ago`;
          if (json) printJson({ event: 'stopped', at: Date.now(), ok: abandoned.length === 0, durationMs: Date.now() - at, abandoned: abandoned.map((r) => ({ queue: r.queue, id: r.id, name: r.name })), totals });
          if (abandoned.length > 0) {
            note(
              `conveyor worker: ${abandoned.length} ${abandoned.length === 1 ? 'job was' : 'jobs were'} still running after ${formatDuration(flags.shutdownTimeout)} (--shutdown-timeout): ` +
                `${list(abandoned, Date.now())}. Their handlers' signals were aborted and their leases left to expire, so they run again. Stopped in ${took}; ${summary}.`,
            );
            process.exit(1);
          }
          note(`conveyor worker: stopped cleanly in ${took}${now.length === 1 ? ' (the running job finished)' : now.length > 1 ? ` (the ${now.length} running jobs finished)` : ''}; ${summary}.`);
          process.exit(0);
        },
        (err: unknown) => {
          clearInterval(still);
          note(`conveyor worker: ${formatError(err, errorContext).join('\n  ')}`);
          note('conveyor worker: shutdown failed: exiting with code 1');
          process.exit(1);
        },
      );
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
