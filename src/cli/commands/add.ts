/**
 * `conveyor add <queue> [name]`: add one job (`--data`), or many from a file of JSON lines
 * (`--file jobs.ndjson`) with a progress bar. Job options come from flags (and `--opts` JSON);
 * the library validates everything before anything is written.
 *
 * A file is read twice when it can be: first to check every line (a bad line is a usage
 * error naming the line, and nothing is added), then to add the jobs in batches. Standard
 * input (`--file -`) is read once into memory.
 */
import fs from 'node:fs';
import readline from 'node:readline';
import type { Command } from 'commander';
import type { BulkJob } from '../../engine/queue.ts';
import type { JobOptions } from '../../options.ts';
import { checkJobName, checkQueueName, DEFAULT_MAX_PAYLOAD_BYTES, normalizeJobOptions, serializeJson } from '../../options.ts';
import { isConveyorError } from '../../errors.ts';
import { CliError, UsageError } from '../errors.ts';
import { formatDuration, printJson, printLine, startProgress } from '../output.ts';
import { intParser, jsonObjectParser, parseBackoff, parseDuration, parseRetention, parseTime, readData, readStdin } from '../parse.ts';
import { examples, withJson, withProgress, withUrl } from '../shared.ts';
import { withConveyor } from '../store.ts';

const DEFAULT_NAME = 'default';

interface AddFlags {
  url?: string;
  json?: boolean;
  progress?: boolean;
  data?: string;
  file?: string;
  batchSize?: number;
  opts?: Record<string, unknown>;
  priority?: number;
  delay?: number;
  runAt?: number;
  attempts?: number;
  backoff?: JobOptions['backoff'];
  timeout?: number;
  jobId?: string;
  removeOnComplete?: JobOptions['removeOnComplete'];
  removeOnFail?: JobOptions['removeOnFail'];
  lease?: number;
}

/** `--opts` first, then each flag given on top of it. */
function jobOptions(flags: AddFlags): JobOptions {
  const out: Record<string, unknown> = { ...(flags.opts ?? {}) };
  const set = (key: keyof JobOptions, value: unknown) => {
    if (value !== undefined) out[key] = value;
  };
  set('priority', flags.priority);
  set('delay', flags.delay);
  set('runAt', flags.runAt);
  set('attempts', flags.attempts);
  set('backoff', flags.backoff);
  set('timeout', flags.timeout);
  set('jobId', flags.jobId);
  set('removeOnComplete', flags.removeOnComplete);
  set('removeOnFail', flags.removeOnFail);
  set('leaseMs', flags.lease);
  return out as JobOptions;
}

interface LineJob {
  name: string;
  data: unknown;
  opts: JobOptions;
}

/**
 * One line of a jobs file: `{"name"?, "data"?, "opts"?}`. Options from the line override the
 * command's flags. Validated as the library will (names, options, payload size), so a bad
 * line is found before anything is written.
 */
function parseLine(text: string, where: string, defaults: { name: string; opts: JobOptions }): LineJob {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${where}: not valid JSON: ${err instanceof Error ? err.message : String(err)}; nothing was added`, 'each line must be one JSON object: {"name":"welcome","data":{...},"opts":{"attempts":3}}');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new UsageError(`${where}: expected a JSON object {"name"?, "data"?, "opts"?}; nothing was added`);
  }
  const line = value as Record<string, unknown>;
  for (const key of Object.keys(line)) {
    if (key !== 'name' && key !== 'data' && key !== 'opts') throw new UsageError(`${where}: unknown field '${key}' (lines have name, data and opts); nothing was added`);
  }
  if (line.opts !== undefined && (typeof line.opts !== 'object' || line.opts === null || Array.isArray(line.opts))) {
    throw new UsageError(`${where}: opts must be a JSON object; nothing was added`);
  }
  const job: LineJob = {
    name: line.name === undefined ? defaults.name : (line.name as string),
    data: line.data === undefined ? null : line.data,
    opts: { ...defaults.opts, ...((line.opts as JobOptions | undefined) ?? {}) },
  };
  try {
    checkJobName(job.name);
    normalizeJobOptions(job.opts, undefined, Date.now());
    serializeJson(job.data, DEFAULT_MAX_PAYLOAD_BYTES);
  } catch (err) {
    if (isConveyorError(err)) throw new UsageError(`${where}: ${err.code}: ${err.message}; nothing was added`);
    throw err;
  }
  return job;
}

/** Non-empty lines of a file (or standard input) with their line numbers. */
async function* lines(file: string, stdinText: string | undefined): AsyncGenerator<{ n: number; text: string }> {
  if (stdinText !== undefined) {
    let n = 0;
    for (const text of stdinText.split('\n')) {
      n++;
      if (text.trim() !== '') yield { n, text };
    }
    return;
  }
  const rl = readline.createInterface({ input: fs.createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let n = 0;
  for await (const text of rl) {
    n++;
    if (text.trim() !== '') yield { n, text };
  }
}

export function registerAdd(program: Command): void {
  const cmd = program
    .command('add <queue> [name]')
    .description(`add a job to a queue (name defaults to '${DEFAULT_NAME}'), or many from a file of JSON lines`)
    .option('--data <json|@file|->', 'the job data as JSON, @path to read it from a file, or - for standard input (default: null)')
    .option('--file <path|->', 'add many jobs: one JSON object per line, {"name"?, "data"?, "opts"?}; - reads standard input')
    .option('--batch-size <n>', 'jobs per write with --file (default 500)', intParser(1, 10_000))
    .option('--priority <n>', 'higher runs first, -1000000 to 1000000 (default 0)', intParser(-1_000_000, 1_000_000))
    .option('--delay <duration>', 'wait before the job may run, e.g. 30s, 5m, 2h (plain numbers are ms)', parseDuration)
    .option('--run-at <time>', 'when the job may run: ISO date or epoch ms (instead of --delay)', parseTime)
    .option('--attempts <n>', 'total tries, the first included (default 1)', intParser(1))
    .option('--backoff <spec>', 'wait between attempts: exponential:1s, fixed:500ms, or JSON', parseBackoff)
    .option('--timeout <duration>', 'how long one attempt may run', parseDuration)
    .option('--job-id <id>', 'your own id: adding a job whose id is still live returns that job and writes nothing')
    .option('--remove-on-complete <spec>', 'true, a number of jobs to keep, or JSON {"count":n,"age":seconds}', parseRetention)
    .option('--remove-on-fail <spec>', 'same as --remove-on-complete, for failed jobs', parseRetention)
    .option('--lease <duration>', "lease length for this job (overrides the worker's)", parseDuration)
    .option('--opts <json>', 'any job options as one JSON object; the flags above override it', jsonObjectParser('--opts'));
  withUrl(cmd);
  withJson(cmd);
  withProgress(cmd);
  examples(cmd, [
    `conveyor add email welcome --data '{"to":"ada@example.com"}' --attempts 5 --backoff exponential:1s`,
    'conveyor add reports nightly --data @report.json --delay 10m',
    `echo '{"to":"bob@example.com"}' | conveyor add email welcome --data -`,
    'conveyor add email --file jobs.ndjson --attempts 3        # flags are defaults for every line',
    `conveyor add email welcome --job-id user-42-welcome --data '{}' --json`,
  ]);
  cmd.action(async (queueName: string, name: string | undefined, flags: AddFlags) => {
    checkQueueName(queueName);
    const opts = jobOptions(flags);
    if (flags.file !== undefined) {
      if (flags.data !== undefined) throw new UsageError('give either --data (one job) or --file (many), not both');
      await addFile(queueName, name ?? DEFAULT_NAME, opts, flags);
      return;
    }
    if (flags.batchSize !== undefined) throw new UsageError('--batch-size goes with --file');
    const data = flags.data === undefined ? null : await readData(flags.data);
    const before = Date.now();
    const job = await withConveyor(flags, async (cv) => cv.queue(queueName).add(name ?? DEFAULT_NAME, data, opts));
    // With --job-id, a job still live under that id is returned instead, and nothing is written.
    const added = opts.jobId === undefined || job.createdAt >= before;
    if (flags.json) printJson({ ...job.toJSON(), added });
    else if (added) printLine(`added job ${job.id} to ${queueName} (${job.name}, ${job.state})`);
    else printLine(`job ${job.id} is still ${job.state} in ${queueName}, so nothing was added (a live job keeps its --job-id)`);
  });
}

async function addFile(queueName: string, name: string, opts: JobOptions, flags: AddFlags): Promise<void> {
  const file = flags.file!;
  const label = file === '-' ? 'standard input' : file;
  let stdinText: string | undefined;
  if (file === '-') stdinText = await readStdin();
  else {
    try {
      if (!fs.statSync(file).isFile()) throw new UsageError(`--file ${file} is not a file`);
    } catch (err) {
      if (err instanceof UsageError) throw err;
      throw new UsageError(`cannot read --file ${file}: ${err instanceof Error ? err.message : String(err)}`, 'check the path (relative paths start from the current directory)');
    }
  }
  const defaults = { name, opts };
  // Pass 1: check every line, count them.
  let total = 0;
  for await (const { n, text } of lines(file, stdinText)) {
    parseLine(text, `${label}:${n}`, defaults);
    total++;
  }
  if (total === 0) throw new UsageError(`${label} has no jobs (one JSON object per line)`);
  // Pass 2: add in batches, each one atomic.
  const batchSize = flags.batchSize ?? 500;
  const started = Date.now();
  let added = 0;
  let firstId: string | null = null;
  let lastId: string | null = null;
  let addedThroughLine = 0;
  await withConveyor(flags, async (cv) => {
    const queue = cv.queue(queueName);
    const bar = startProgress(`add ${queueName}`, total, 'jobs', { enabled: flags.progress !== false });
    let batch: Array<BulkJob<unknown>> = [];
    let batchLastLine = 0;
    const flush = async () => {
      if (batch.length === 0) return;
      try {
        const jobs = await queue.addBulk(batch);
        firstId ??= jobs[0]?.id ?? null;
        lastId = jobs.at(-1)?.id ?? lastId;
      } catch (err) {
        bar.stop();
        const message = err instanceof Error ? err.message : String(err);
        const code = isConveyorError(err) ? `${err.code}: ` : '';
        throw new CliError(
          `${code}${message} (after adding ${added} of ${total} jobs from ${label}; this batch of ${batch.length} was not added)`,
          added > 0 ? `lines up to ${addedThroughLine} were added; to resume, add the rest: tail -n +${addedThroughLine + 1} ${file === '-' ? '<your file>' : file} | conveyor add ${queueName} --file - (with the same flags)` : undefined,
        );
      }
      added += batch.length;
      addedThroughLine = batchLastLine;
      batch = [];
      bar.update(added);
    };
    for await (const { n, text } of lines(file, stdinText)) {
      const job = parseLine(text, `${label}:${n}`, defaults);
      batch.push({ name: job.name, data: job.data, opts: job.opts });
      batchLastLine = n;
      if (batch.length >= batchSize) await flush();
    }
    await flush();
    bar.stop();
  });
  const ms = Date.now() - started;
  if (flags.json) printJson({ queue: queueName, added, firstId, lastId, durationMs: ms });
  else printLine(`added ${added} jobs to ${queueName} in ${formatDuration(ms)} (${Math.round(added / Math.max(ms / 1000, 0.001))} jobs/s)`);
}
