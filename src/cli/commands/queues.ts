/** `conveyor queues ls|pause|resume|clean|retry-failed|drain`: queue administration through the library's Queue methods. */
import { Option, type Command } from 'commander';
import type { Queue } from '../../engine/queue.ts';
import type { QueueInfo } from '../../store/contract.ts';
import { formatDuration, note, printJson, printLine, printTable, startProgress } from '../output.ts';
import { intParser, parseDuration } from '../parse.ts';
import { examples, withJson, withProgress, withUrl } from '../shared.ts';
import { requireQueue, withConveyor } from '../store.ts';

const STATE_COLUMNS = ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'] as const;
/** Jobs per store call in bulk operations, so none holds a lock for long (the library's own page size). */
const CHUNK = 1000;

interface CommonFlags {
  url?: string;
  json?: boolean;
  progress?: boolean;
}

function printQueues(queues: readonly QueueInfo[]): void {
  if (queues.length === 0) {
    printLine('no queues yet (a queue appears with its first job: conveyor add <queue> --data …)');
    return;
  }
  printTable(
    ['queue', ...STATE_COLUMNS],
    queues.map((q) => [q.name + (q.paused ? ' (paused)' : ''), ...STATE_COLUMNS.map((s) => String(q.counts[s]))]),
    new Set([1, 2, 3, 4, 5, 6]),
  );
}

/**
 * Runs a chunked bulk operation with progress: `step(limit)` handles up to `limit` jobs and
 * says how many it did; it stops when a step does less than asked, when `max` is reached,
 * or after `expected` jobs (jobs arriving meanwhile wait for the next run, so a queue that
 * refills as fast as it empties cannot keep the command running).
 */
async function chunked(label: string, expected: number, max: number | undefined, progress: boolean, step: (limit: number) => Promise<number>): Promise<number> {
  const bound = Math.min(max ?? Infinity, expected);
  const bar = startProgress(label, Math.min(expected, max ?? Infinity), 'jobs', { enabled: progress });
  let done = 0;
  try {
    while (done < bound) {
      const limit = Math.min(CHUNK, bound - done);
      const n = await step(limit);
      done += n;
      bar.update(done);
      if (n < limit) break;
    }
  } finally {
    bar.stop(done);
  }
  return done;
}

export function registerQueues(program: Command): void {
  const queues = program.command('queues').description('list queues and administer them: pause, resume, clean, retry failed jobs, drain');
  examples(queues, ['conveyor queues', 'conveyor queues ls --json', 'conveyor queues pause email', 'conveyor queues clean email --state failed --older-than 7d']);

  const ls = queues.command('ls', { isDefault: true }).description('list queues with job counts by state and the paused flag (the default)');
  withUrl(ls);
  withJson(ls);
  examples(ls, ['conveyor queues ls', 'conveyor queues --url sqlite:///var/lib/app/jobs.db', "conveyor queues ls --json | jq '.[] | select(.counts.failed > 0) | .name'"]);
  ls.action(async (opts: CommonFlags) => {
    const list = await withConveyor(opts, async (cv) => cv.store.listQueues());
    if (opts.json) printJson(list);
    else printQueues(list);
  });

  for (const paused of [true, false]) {
    const verb = paused ? 'pause' : 'resume';
    const cmd = queues
      .command(`${verb} <queue...>`)
      .description(paused ? 'stop every worker, in every process, from starting new jobs of these queues (running jobs finish)' : 'let workers take jobs from these queues again');
    withUrl(cmd);
    withJson(cmd);
    examples(cmd, [`conveyor queues ${verb} email`, `conveyor queues ${verb} email sms --json`]);
    cmd.action(async (names: string[], opts: CommonFlags) => {
      await withConveyor(opts, async (cv) => {
        for (const name of names) await (paused ? cv.queue(name).pause() : cv.queue(name).resume());
      });
      if (opts.json) printJson({ ok: true, paused, queues: names });
      else for (const name of names) printLine(`${paused ? 'paused' : 'resumed'} ${name}`);
    });
  }

  const clean = queues
    .command('clean <queue>')
    .description('delete finished jobs (or waiting/delayed ones) by state and age')
    .addOption(new Option('--state <state>', 'which jobs').choices(['completed', 'failed', 'cancelled', 'waiting', 'delayed']).default('completed'))
    .option('--older-than <duration>', 'only jobs finished (waiting/delayed: created) at least this long ago, e.g. 7d, 12h', parseDuration)
    .option('--keep <n>', 'keep the newest n jobs in that state regardless of age', intParser(0))
    .option('--limit <n>', 'delete at most n jobs', intParser(1));
  withUrl(clean);
  withJson(clean);
  withProgress(clean);
  examples(clean, [
    'conveyor queues clean email                                  # every completed job',
    'conveyor queues clean email --state failed --older-than 7d',
    'conveyor queues clean email --state completed --keep 1000 --json',
  ]);
  clean.action(async (name: string, opts: CommonFlags & { state: 'completed' | 'failed' | 'cancelled' | 'waiting' | 'delayed'; olderThan?: number; keep?: number; limit?: number }) => {
    const started = Date.now();
    const removed = await withConveyor(opts, async (cv) => {
      const info = await requireQueue(cv, name);
      const queue = cv.queue(name);
      const expected = Math.max(0, info.counts[opts.state] - (opts.keep ?? 0));
      return chunked(`clean ${name}`, expected, opts.limit, opts.progress !== false, (limit) =>
        queue.clean({ state: opts.state, limit, ...(opts.olderThan === undefined ? {} : { olderThanMs: opts.olderThan }), ...(opts.keep === undefined ? {} : { keep: opts.keep }) }),
      );
    });
    if (opts.json) printJson({ queue: name, state: opts.state, removed });
    else printLine(`removed ${removed} ${opts.state} job${removed === 1 ? '' : 's'} from ${name} in ${formatDuration(Date.now() - started)}`);
  });

  const retry = queues
    .command('retry-failed <queue>')
    .description('move failed jobs back to waiting with fresh attempts (their error history is kept)')
    .option('--limit <n>', 'retry at most n jobs', intParser(1));
  withUrl(retry);
  withJson(retry);
  withProgress(retry);
  examples(retry, ['conveyor queues retry-failed payments', 'conveyor queues retry-failed payments --limit 100 --json']);
  retry.action(async (name: string, opts: CommonFlags & { limit?: number }) => {
    const started = Date.now();
    const retried = await withConveyor(opts, async (cv) => {
      const info = await requireQueue(cv, name);
      const queue: Queue = cv.queue(name);
      // Bounded by the failed count at the start: jobs that fail again meanwhile are not retried twice.
      return chunked(`retry ${name}`, info.counts.failed, opts.limit, opts.progress !== false, (limit) => queue.retryFailed({ limit }));
    });
    if (opts.json) printJson({ queue: name, retried });
    else printLine(`retried ${retried} failed job${retried === 1 ? '' : 's'} of ${name} in ${formatDuration(Date.now() - started)}`);
  });

  const drain = queues
    .command('drain <queue>')
    .description('delete every waiting job of a queue (and delayed ones with --delayed); running jobs are untouched')
    .option('--delayed', 'also delete delayed jobs');
  withUrl(drain);
  withJson(drain);
  examples(drain, ['conveyor queues drain email', 'conveyor queues drain email --delayed --json']);
  drain.action(async (name: string, opts: CommonFlags & { delayed?: boolean }) => {
    const removed = await withConveyor(opts, async (cv) => {
      const info = await requireQueue(cv, name);
      const expected = info.counts.waiting + (opts.delayed ? info.counts.delayed : 0);
      if (!opts.json && expected >= 10 * CHUNK) note(`draining about ${expected} jobs from ${name}…`);
      return cv.queue(name).drain({ delayed: opts.delayed === true });
    });
    if (opts.json) printJson({ queue: name, removed, delayed: opts.delayed === true });
    else printLine(`removed ${removed} ${opts.delayed ? 'waiting and delayed' : 'waiting'} job${removed === 1 ? '' : 's'} from ${name}`);
  });
}
