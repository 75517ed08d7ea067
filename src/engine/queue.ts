/**
 * `Queue`: the producer and admin side of one named queue. Validates at the door, then
 * delegates every operation to the Store; no storage logic lives here.
 */
import { ConveyorError, ValidationError } from '../errors.ts';
import { JOB_STATES, type JobRecord, type JobState } from '../job.ts';
import type { AdminOutcome, EnqueueResult, JobCounts, NewJob, Store, StoreSignal, TransactionClient } from '../store/contract.ts';
import { checkInteger, checkJobName, checkQueueName, normalizeJobOptions, serializeJson, type JobOptions } from '../options.ts';
import type { EnqueueBatcher } from './enqueue-batcher.ts';
import { Job } from './job.ts';

export interface QueueOptions {
  /** Options applied to every job of this queue unless the job sets its own. */
  readonly defaultJobOptions?: JobOptions;
}

export interface BulkJob<Data> {
  readonly name: string;
  readonly data: Data;
  readonly opts?: JobOptions;
}

export interface GetJobsOptions {
  /** Page size, 1-1000. Default 100. */
  readonly limit?: number;
  /** `nextCursor` of the previous page. */
  readonly cursor?: string;
  /** `desc` (newest first, default) or `asc`. */
  readonly order?: 'asc' | 'desc';
  /** Only jobs with this name. */
  readonly name?: string;
}

export interface CleanOptions {
  /** Which state to clean. Default `completed`. */
  readonly state?: 'completed' | 'failed' | 'cancelled' | 'waiting' | 'delayed';
  /** Only jobs finished (or, for waiting/delayed, created) at least this many ms ago. Default 0. */
  readonly olderThanMs?: number;
  /** Keep the newest N regardless of age. */
  readonly keep?: number;
  /** Stop after removing this many. Default: no limit. */
  readonly limit?: number;
}

export interface QueueDeps {
  readonly store: Store;
  readonly batcher: EnqueueBatcher;
  readonly maxPayloadBytes: number;
  readonly assertOpen: () => void;
}

/** Store-side page size for bulk admin operations, so none holds a lock for long. */
const ADMIN_CHUNK = 1000;

/** Jobs an add answered with because their `jobId` was live: nothing was written for them. */
const duplicates = new WeakSet<Job<any, any>>();

/** Marks a job an add answered with because its `jobId` was live (also used by the HTTP client). */
export function markDuplicate<T extends Job<any, any>>(job: T): T {
  duplicates.add(job);
  return job;
}

/** Whether `add`/`addBulk` returned this job because its `jobId` was still live (nothing was added). */
export function wasDuplicate(job: Job<any, any>): boolean {
  return duplicates.has(job);
}

/** A queue's name and default job options, checked: the same rules for Queue and the HTTP client's RemoteQueue. */
export function checkQueueSetup(name: string, options: QueueOptions | undefined): { name: string; defaultJobOptions: JobOptions | undefined } {
  const checked = checkQueueName(name);
  if (options?.defaultJobOptions !== undefined) normalizeJobOptions(options.defaultJobOptions, undefined, Date.now());
  return { name: checked, defaultJobOptions: options?.defaultJobOptions };
}

/** Prepares every item of an `addBulk` call, with the same messages wherever jobs are added. */
export function prepareBulk<Data, T>(jobs: ReadonlyArray<BulkJob<Data>>, prepare: (name: string, data: Data, opts: JobOptions | undefined) => T, method = 'addBulk'): T[] {
  if (!Array.isArray(jobs)) throw new ValidationError('INVALID_ARGUMENT', `${method} takes an array of { name, data, opts? }`);
  return jobs.map((j, i) => {
    if (typeof j !== 'object' || j === null) throw new ValidationError('INVALID_ARGUMENT', `${method}: item ${i} must be { name, data, opts? }`);
    return prepare(j.name, j.data, j.opts);
  });
}

export class Queue<Data = unknown, Result = unknown> {
  readonly name: string;
  readonly defaultJobOptions: JobOptions | undefined;
  readonly #deps: QueueDeps;

  constructor(name: string, options: QueueOptions | undefined, deps: QueueDeps) {
    ({ name: this.name, defaultJobOptions: this.defaultJobOptions } = checkQueueSetup(name, options));
    this.#deps = deps;
  }

  /**
   * Adds one job. Resolves once the job is durably stored. With a `jobId` that is still
   * live (waiting, delayed or active), resolves with that existing job and writes nothing.
   */
  async add(name: string, data: Data, opts?: JobOptions): Promise<Job<Data, Result>> {
    this.#deps.assertOpen();
    const job = this.#prepare(name, data, opts);
    const result = await this.#deps.batcher.add(job);
    if (result.status === 'duplicate') return markDuplicate((await this.getJob(result.id)) ?? this.#fresh(job, result.id));
    return this.#fresh(job, result.id);
  }

  /** Adds many jobs in one atomic write: all are stored, or none (on a store error). */
  async addBulk(jobs: ReadonlyArray<BulkJob<Data>>): Promise<Array<Job<Data, Result>>> {
    this.#deps.assertOpen();
    const prepared = prepareBulk(jobs, (name, data: Data, opts) => this.#prepare(name, data, opts));
    if (prepared.length === 0) return [];
    const results = await this.#deps.store.enqueueMany({ jobs: prepared, now: Date.now() });
    return this.#jobsFor(prepared, results);
  }

  /**
   * Adds one job inside your own database transaction (the outbox pattern): the job exists
   * if and only if that transaction commits, and workers hear of it only then. `client` is
   * the connection your transaction runs on, e.g. a `pg` `PoolClient` after `BEGIN`; conveyor
   * runs its statements on it and never commits, rolls back or releases it. Same validation
   * and `jobId` deduplication as `add` (also against jobs added earlier in the same
   * transaction), but no group commit. If it throws, your transaction is aborted: roll it back.
   * Needs a store with the `transactionalEnqueue` capability (PostgreSQL); others throw
   * `NOT_SUPPORTED`.
   */
  async addInTransaction(client: TransactionClient, name: string, data: Data, opts?: JobOptions): Promise<Job<Data, Result>> {
    const [job] = await this.#addInTransaction('addInTransaction', client, () => [this.#prepare(name, data, opts)]);
    return job!;
  }

  /** `addBulk` inside your own transaction: see `addInTransaction`. All jobs are written, or none. */
  async addBulkInTransaction(client: TransactionClient, jobs: ReadonlyArray<BulkJob<Data>>): Promise<Array<Job<Data, Result>>> {
    return this.#addInTransaction('addBulkInTransaction', client, () => prepareBulk(jobs, (name, data: Data, opts) => this.#prepare(name, data, opts), 'addBulkInTransaction'));
  }

  async #addInTransaction(method: string, client: TransactionClient, prepare: () => NewJob[]): Promise<Array<Job<Data, Result>>> {
    this.#deps.assertOpen();
    const store = this.#deps.store;
    if (!store.capabilities.has('transactionalEnqueue') || store.enqueueInTransaction === undefined) {
      throw new ConveyorError('NOT_SUPPORTED', `${method}: the ${store.kind} store cannot add jobs inside your own transaction; use a PostgreSQL store, or add the job after your transaction commits`, {
        details: { store: store.kind, capability: 'transactionalEnqueue' },
      });
    }
    if (typeof client !== 'object' || client === null || typeof (client as { query?: unknown }).query !== 'function') {
      throw new ValidationError('INVALID_ARGUMENT', `${method}: the first argument must be the database client your transaction runs on (an object with a query(text, values) method, such as a pg PoolClient)`);
    }
    const prepared = prepare();
    if (prepared.length === 0) return [];
    const results = await store.enqueueInTransaction(client, { jobs: prepared, now: Date.now() });
    return this.#jobsFor(prepared, results);
  }

  /**
   * Job objects for enqueue results. A duplicate is read back (it may have been added by
   * someone else); one added earlier in the caller's still-open transaction is not visible
   * yet, so it is described by the job just given.
   */
  async #jobsFor(prepared: readonly NewJob[], results: readonly EnqueueResult[]): Promise<Array<Job<Data, Result>>> {
    const out: Array<Job<Data, Result>> = [];
    for (let i = 0; i < prepared.length; i++) {
      const r = results[i]!;
      out.push(r.status === 'duplicate' ? markDuplicate((await this.getJob(r.id)) ?? this.#fresh(prepared[i]!, r.id)) : this.#fresh(prepared[i]!, r.id));
    }
    return out;
  }

  #prepare(name: string, data: Data, opts: JobOptions | undefined): NewJob {
    checkJobName(name);
    const now = Date.now();
    const n = normalizeJobOptions(opts, this.defaultJobOptions, now);
    const text = serializeJson(data, this.#deps.maxPayloadBytes);
    const job: { -readonly [K in keyof NewJob]: NewJob[K] } = { queue: this.name, name, data: text, opts: n.opts, priority: n.priority, runAt: n.runAt };
    if (n.id !== undefined) job.id = n.id;
    return job;
  }

  #fresh(job: NewJob, id: string): Job<Data, Result> {
    const now = Date.now();
    const record: JobRecord = {
      id,
      queue: job.queue,
      name: job.name,
      data: job.data,
      opts: job.opts,
      state: job.runAt > now ? 'delayed' : 'waiting',
      priority: job.priority,
      attemptsMade: 0,
      maxAttempts: job.opts.attempts,
      stalls: 0,
      runAt: job.runAt,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      lease: null,
      progress: null,
      result: null,
      errors: [],
    };
    return new Job<Data, Result>(record, this.#writer());
  }

  #writer() {
    return { backend: this.#deps.store, maxPayloadBytes: this.#deps.maxPayloadBytes };
  }

  async getJob(id: string): Promise<Job<Data, Result> | null> {
    this.#deps.assertOpen();
    const record = await this.#deps.store.getJob({ queue: this.name, id: String(id) });
    return record ? new Job<Data, Result>(record, this.#writer()) : null;
  }

  /** One page of jobs in the given states (all states when omitted). */
  async getJobs(states?: JobState | readonly JobState[], options: GetJobsOptions = {}): Promise<{ jobs: Array<Job<Data, Result>>; nextCursor: string | null }> {
    this.#deps.assertOpen();
    const list = states === undefined ? JOB_STATES : typeof states === 'string' ? [states] : states;
    for (const s of list) {
      if (!JOB_STATES.includes(s)) throw new ValidationError('INVALID_ARGUMENT', `unknown job state '${String(s)}'; states are ${JOB_STATES.join(', ')}`);
    }
    const page = await this.#deps.store.listJobs({
      queue: this.name,
      states: list,
      limit: options.limit === undefined ? 100 : checkInteger(options.limit, 'limit', 1, 1000),
      order: options.order ?? 'desc',
      ...(options.cursor === undefined ? {} : { cursor: options.cursor }),
      ...(options.name === undefined ? {} : { name: options.name }),
    });
    return { jobs: page.jobs.map((r) => new Job<Data, Result>(r, this.#writer())), nextCursor: page.nextCursor };
  }

  /** Jobs per state. */
  async getCounts(): Promise<JobCounts> {
    this.#deps.assertOpen();
    return this.#deps.store.countJobs({ queue: this.name });
  }

  /** BullMQ's name for `getCounts`. */
  getJobCounts(): Promise<JobCounts> {
    return this.getCounts();
  }

  async getJobLogs(id: string, options: { offset?: number; limit?: number } = {}) {
    this.#deps.assertOpen();
    return this.#deps.store.getLogs({ queue: this.name, id, offset: options.offset ?? 0, limit: options.limit ?? 1000 });
  }

  /** Stops every worker of this queue, in every process, from starting new jobs. */
  async pause(): Promise<void> {
    this.#deps.assertOpen();
    await this.#deps.store.setPaused({ queue: this.name, paused: true });
  }

  async resume(): Promise<void> {
    this.#deps.assertOpen();
    await this.#deps.store.setPaused({ queue: this.name, paused: false });
  }

  async isPaused(): Promise<boolean> {
    this.#deps.assertOpen();
    return this.#deps.store.isPaused({ queue: this.name });
  }

  /** Moves a finished (completed, failed, cancelled) job back to waiting with fresh attempts. */
  async retryJob(id: string): Promise<void> {
    this.#deps.assertOpen();
    this.#expectApplied(await this.#deps.store.retryJob({ queue: this.name, id, now: Date.now() }), id, 'retry');
  }

  /** Retries every failed job (in chunks); returns how many were moved. */
  async retryFailed(options: { limit?: number } = {}): Promise<number> {
    return this.#chunked(options.limit, (limit) => this.#deps.store.retryMany({ queue: this.name, state: 'failed', limit, now: Date.now() }));
  }

  /** Cancels a waiting, delayed or active job. An active job's handler sees its signal abort at the next lease renewal. */
  async cancel(id: string): Promise<void> {
    this.#deps.assertOpen();
    this.#expectApplied(await this.#deps.store.cancelJob({ queue: this.name, id, now: Date.now() }), id, 'cancel');
  }

  /** Makes a delayed job due now. */
  async promote(id: string): Promise<void> {
    this.#deps.assertOpen();
    this.#expectApplied(await this.#deps.store.promoteJob({ queue: this.name, id, now: Date.now() }), id, 'promote');
  }

  /** Deletes a job that is not running. Returns false if there was no such job. */
  async removeJob(id: string): Promise<boolean> {
    this.#deps.assertOpen();
    const outcome = await this.#deps.store.removeJob({ queue: this.name, id });
    if (outcome.status === 'not_found') return false;
    this.#expectApplied(outcome, id, 'remove');
    return true;
  }

  /** Deletes finished (or waiting/delayed) jobs by age; returns how many went. */
  async clean(options: CleanOptions = {}): Promise<number> {
    const state = options.state ?? 'completed';
    if (!['completed', 'failed', 'cancelled', 'waiting', 'delayed'].includes(state)) {
      throw new ValidationError('INVALID_ARGUMENT', `clean: state must be completed, failed, cancelled, waiting or delayed, got '${String(state)}'`);
    }
    const olderThanMs = options.olderThanMs === undefined ? 0 : checkInteger(options.olderThanMs, 'olderThanMs', 0, Number.MAX_SAFE_INTEGER);
    const keep = options.keep === undefined ? undefined : checkInteger(options.keep, 'keep', 0, Number.MAX_SAFE_INTEGER);
    const olderThan = Date.now() - olderThanMs;
    return this.#chunked(options.limit, (limit) =>
      this.#deps.store.clean({ queue: this.name, state, olderThan, limit, ...(keep === undefined ? {} : { keep }) }),
    );
  }

  /** Deletes every waiting job (and delayed ones with `{ delayed: true }`); running jobs are untouched. */
  async drain(options: { delayed?: boolean } = {}): Promise<number> {
    return this.#chunked(undefined, (limit) => this.#deps.store.drain({ queue: this.name, includeDelayed: options.delayed === true, limit }));
  }

  async #chunked(total: number | undefined, step: (limit: number) => number | PromiseLike<number>): Promise<number> {
    this.#deps.assertOpen();
    const max = total === undefined ? Infinity : checkInteger(total, 'limit', 1, Number.MAX_SAFE_INTEGER);
    let done = 0;
    while (done < max) {
      const limit = Math.min(ADMIN_CHUNK, max - done);
      const n = await step(limit);
      done += n;
      if (n < limit) break;
    }
    return done;
  }

  #expectApplied(outcome: AdminOutcome, id: string, action: string): void {
    if (outcome.status === 'applied') return;
    if (outcome.status === 'not_found') throw new ConveyorError('JOB_NOT_FOUND', `cannot ${action} job ${id}: no such job in queue ${this.name}`, { details: { queue: this.name, id } });
    throw new ConveyorError('INVALID_STATE', `cannot ${action} job ${id}: it is ${outcome.state}`, { details: { queue: this.name, id, state: outcome.state } });
  }

  /**
   * Resolves with the job's result once it completes; rejects with `JOB_FAILED` once it
   * fails for good (or is cancelled), or `WAIT_TIMEOUT` after `timeoutMs`. It subscribes
   * before it reads the job's state, so a completion can never slip between the two.
   */
  waitForResult(id: string, options: { timeoutMs?: number } = {}): Promise<Result> {
    this.#deps.assertOpen();
    const timeoutMs = options.timeoutMs === undefined ? 0 : checkInteger(options.timeoutMs, 'timeoutMs', 0, Number.MAX_SAFE_INTEGER);
    return new Promise<Result>((resolve, reject) => {
      let done = false;
      let pollDelay = 50;
      let pollTimer: ReturnType<typeof setTimeout> | undefined;
      let checking = false;
      let recheck = false;
      const finish = (fn: () => void) => {
        if (done) return;
        done = true;
        unsubscribe();
        clearTimeout(pollTimer);
        clearTimeout(deadline);
        fn();
      };
      const check = async () => {
        if (done) return;
        if (checking) {
          recheck = true;
          return;
        }
        checking = true;
        try {
          const record = await this.#deps.store.getJob({ queue: this.name, id });
          if (record === null) {
            finish(() => reject(new ConveyorError('JOB_NOT_FOUND', `job ${id} not found in queue ${this.name} (it may have been removed on completion)`, { details: { queue: this.name, id } })));
          } else if (record.state === 'completed') {
            finish(() => resolve((record.result === null ? undefined : JSON.parse(record.result)) as Result));
          } else if (record.state === 'failed' || record.state === 'cancelled') {
            const last = record.errors.at(-1);
            const message = record.state === 'cancelled' ? `job ${id} was cancelled` : `job ${id} failed: ${last?.message ?? 'unknown error'}`;
            finish(() => reject(new ConveyorError('JOB_FAILED', message, { details: { queue: this.name, id, state: record.state, error: last } })));
          }
        } catch (err) {
          finish(() => reject(err));
        } finally {
          checking = false;
        }
        if (recheck && !done) {
          recheck = false;
          void check();
        }
      };
      // Signals make this fast; the backing-off poll makes it certain even without them.
      const unsubscribe = this.#deps.store.subscribe((signal: StoreSignal) => {
        if ((signal.type === 'finished' && signal.queue === this.name && signal.id === id) || signal.type === 'changed') void check();
      });
      const poll = () => {
        pollTimer = setTimeout(() => {
          pollDelay = Math.min(1000, pollDelay * 2);
          void check().then(() => {
            if (!done) poll();
          });
        }, pollDelay);
      };
      const deadline =
        timeoutMs > 0
          ? setTimeout(() => finish(() => reject(new ConveyorError('WAIT_TIMEOUT', `job ${id} did not finish within ${timeoutMs} ms`, { details: { queue: this.name, id, timeoutMs } }))), timeoutMs)
          : undefined;
      void check();
      poll();
    });
  }
}
