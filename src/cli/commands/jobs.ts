/** `conveyor jobs ls|show|retry|rm|cancel|promote`: look at jobs and act on them through the library's Queue methods. */
import { InvalidArgumentError, Option, type Command } from 'commander';
import type { Job } from '../../engine/job.ts';
import { ConveyorError } from '../../errors.ts';
import type { Queue } from '../../engine/queue.ts';
import { JOB_STATES, type JobState } from '../../job.ts';
import { errorContext, formatError } from '../errors.ts';
import { formatTime, note, printJson, printLine, printTable } from '../output.ts';
import { intParser } from '../parse.ts';
import { commandPath, examples, withJson, withUrl } from '../shared.ts';
import { requireQueue, withConveyor } from '../store.ts';

interface CommonFlags {
  url?: string;
  json?: boolean;
}

/** `--state failed,delayed` or `all`. */
function parseStates(text: string): JobState[] {
  if (text.trim() === 'all') return [...JOB_STATES];
  const states = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  for (const s of states) {
    if (!JOB_STATES.includes(s as JobState)) throw new InvalidArgumentError(`unknown state '${s}': states are ${JOB_STATES.join(', ')}, or all.`);
  }
  if (states.length === 0) throw new InvalidArgumentError(`give one or more of ${JOB_STATES.join(', ')}, or all.`);
  return states as JobState[];
}

function shorten(text: string, max = 60): string {
  const one = text.replace(/\s+/g, ' ');
  return one.length > max ? `${one.slice(0, max - 1)}…` : one;
}

/** The most telling fact about a job in its state, for the listing's last column. */
function detail(job: Job): string {
  switch (job.state) {
    case 'failed':
      return shorten(job.failedReason ?? '');
    case 'delayed':
      return `runs at ${formatTime(job.runAt)}${job.errors.length > 0 ? `, after: ${shorten(job.failedReason ?? '', 40)}` : ''}`;
    case 'active':
      return job.lease ? `lease until ${formatTime(job.lease.expiresAt)}` : '';
    case 'completed':
      return job.result === null ? '' : shorten(`result ${JSON.stringify(job.result)}`);
    case 'waiting':
      return job.priority === 0 ? '' : `priority ${job.priority}`;
    case 'cancelled':
      return '';
  }
}

function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2) ?? 'null';
}

/** One id after another; failures are reported per id and make the exit code 1. */
async function eachId(
  cmd: Command,
  queueName: string,
  ids: readonly string[],
  opts: CommonFlags,
  verb: string,
  act: (queue: Queue, id: string) => Promise<void>,
): Promise<void> {
  const results = await withConveyor(opts, async (cv) => {
    const queue = cv.queue(queueName);
    const out: Array<{ id: string; ok: boolean; error?: { code: string; message: string } }> = [];
    for (const id of ids) {
      try {
        await act(queue, id);
        out.push({ id, ok: true });
        if (!opts.json) printLine(`${verb} ${queueName}/${id}`);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        out.push({ id, ok: false, error: { code: typeof code === 'string' ? code : 'ERROR', message: err instanceof Error ? err.message : String(err) } });
        const lines = formatError(err, { ...errorContext, command: commandPath(cmd) });
        process.stderr.write(`conveyor: ${lines.join('\n  ')}\n`);
      }
    }
    return out;
  });
  if (opts.json) printJson({ queue: queueName, results });
  if (results.some((r) => !r.ok)) process.exitCode = 1;
}

export function registerJobs(program: Command): void {
  const jobs = program.command('jobs').description("list a queue's jobs, show one, and retry, remove, cancel or promote jobs");
  examples(jobs, ['conveyor jobs ls email --state failed', 'conveyor jobs show email 42', 'conveyor jobs retry email 42 43']);

  const ls = jobs
    .command('ls <queue>')
    .description("one page of a queue's jobs, newest first")
    .option('--state <states>', `comma-separated states (${JOB_STATES.join(', ')}) or all`, parseStates)
    .option('--name <name>', 'only jobs with this name')
    .option('--limit <n>', 'page size, 1-1000 (default 50)', intParser(1, 1000))
    .option('--cursor <cursor>', 'the next page: the cursor printed after the previous page')
    .addOption(new Option('--order <order>', 'newest (desc) or oldest (asc) first').choices(['desc', 'asc']).default('desc'));
  withUrl(ls);
  withJson(ls);
  examples(ls, [
    'conveyor jobs ls email',
    'conveyor jobs ls email --state failed,cancelled --limit 20',
    'conveyor jobs ls email --state waiting --order asc --json',
    'conveyor jobs ls email --cursor <cursor from the previous page>',
  ]);
  ls.action(async (queueName: string, opts: CommonFlags & { state?: JobState[]; name?: string; limit?: number; cursor?: string; order: 'asc' | 'desc' }) => {
    const page = await withConveyor(opts, async (cv) => {
      await requireQueue(cv, queueName);
      return cv.queue(queueName).getJobs(opts.state, {
        limit: opts.limit ?? 50,
        order: opts.order,
        ...(opts.name === undefined ? {} : { name: opts.name }),
        ...(opts.cursor === undefined ? {} : { cursor: opts.cursor }),
      });
    });
    if (opts.json) {
      printJson({ jobs: page.jobs.map((j) => j.toJSON()), nextCursor: page.nextCursor });
      return;
    }
    if (page.jobs.length === 0) printLine(`no ${opts.state === undefined ? '' : `${opts.state.join('/')} `}jobs in ${queueName}`);
    else {
      printTable(
        ['id', 'name', 'state', 'attempts', 'created', 'detail'],
        page.jobs.map((j) => [j.id, shorten(j.name, 30), j.state, `${j.attemptsMade}/${j.maxAttempts}`, formatTime(j.createdAt), detail(j)]),
      );
    }
    if (page.nextCursor !== null) note(`more: conveyor jobs ls ${queueName} --cursor ${page.nextCursor}${opts.state === undefined ? '' : ` --state ${opts.state.join(',')}`}`);
  });

  const show = jobs.command('show <queue> <id>').description('everything about one job: data, options, attempts and errors, progress, result, logs');
  withUrl(show);
  withJson(show);
  examples(show, ['conveyor jobs show email 42', "conveyor jobs show email 42 --json | jq '.job.errors'"]);
  show.action(async (queueName: string, id: string, opts: CommonFlags) => {
    const found = await withConveyor(opts, async (cv) => {
      const queue = cv.queue(queueName);
      const job = await queue.getJob(id);
      if (job === null) return null;
      const logs = await queue.getJobLogs(id);
      return { job, logs };
    });
    if (found === null) {
      throw new ConveyorError('JOB_NOT_FOUND', `no job ${id} in queue ${queueName}`, { details: { queue: queueName, id } });
    }
    const { job, logs } = found;
    if (opts.json) {
      printJson({ job: job.toJSON(), logs: logs.entries, logsTotal: logs.total });
      return;
    }
    const rows: Array<[string, string]> = [
      ['id', job.id],
      ['queue', job.queueName],
      ['name', job.name],
      ['state', job.state],
      ['priority', String(job.priority)],
      ['attempts', `${job.attemptsMade} of ${job.maxAttempts}${job.stalls > 0 ? `, stalled ${job.stalls}×` : ''}`],
      ['created', formatTime(job.createdAt)],
      ['runs at', formatTime(job.runAt)],
      ['started', formatTime(job.startedAt)],
      ['finished', formatTime(job.finishedAt)],
    ];
    if (job.lease) rows.push(['lease', `${job.lease.owner} until ${formatTime(job.lease.expiresAt)}`]);
    for (const [k, v] of rows) printLine(`${k.padEnd(9)} ${v}`);
    printLine(`options   ${JSON.stringify(job.opts)}`);
    printLine(`data      ${pretty(job.data).replace(/\n/g, '\n          ')}`);
    if (job.progress !== null) printLine(`progress  ${JSON.stringify(job.progress)}`);
    if (job.result !== null) printLine(`result    ${pretty(job.result).replace(/\n/g, '\n          ')}`);
    if (job.errors.length > 0) {
      printLine('errors');
      for (const e of job.errors) {
        printLine(`  attempt ${e.attempt} at ${formatTime(e.at)}${e.reason ? ` (${e.reason})` : ''}: ${e.name ? `${e.name}: ` : ''}${e.message}`);
      }
    }
    if (logs.entries.length > 0) {
      printLine(`logs${logs.total > logs.entries.length ? ` (first ${logs.entries.length} of ${logs.total})` : ''}`);
      for (const entry of logs.entries) printLine(`  ${formatTime(entry.at)} ${entry.message}`);
    }
  });

  const actions: ReadonlyArray<{ name: string; verb: string; description: string; act: (queue: Queue, id: string) => Promise<void> }> = [
    { name: 'retry', verb: 'retried', description: 'move finished jobs (completed, failed, cancelled) back to waiting with fresh attempts', act: (q, id) => q.retryJob(id) },
    {
      name: 'rm',
      verb: 'removed',
      description: 'delete jobs that are not running (cancel an active job first)',
      act: async (q, id) => {
        if (!(await q.removeJob(id))) {
              throw new ConveyorError('JOB_NOT_FOUND', `cannot remove job ${id}: no such job in queue ${q.name}`, { details: { queue: q.name, id } });
        }
      },
    },
    { name: 'cancel', verb: 'cancelled', description: "cancel waiting, delayed or active jobs (an active job's handler sees its signal abort at the next lease renewal)", act: (q, id) => q.cancel(id) },
    { name: 'promote', verb: 'promoted', description: 'make delayed jobs due now', act: (q, id) => q.promote(id) },
  ];
  for (const a of actions) {
    const cmd = jobs.command(`${a.name} <queue> <id...>`).description(a.description);
    withUrl(cmd);
    withJson(cmd);
    examples(cmd, [`conveyor jobs ${a.name} email 42`, `conveyor jobs ${a.name} email 42 43 44 --json`]);
    cmd.action(async (queueName: string, ids: string[], opts: CommonFlags) => eachId(cmd, queueName, ids, opts, a.verb, a.act));
  }
}
