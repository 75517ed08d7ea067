/**
 * enqueueMany: the producer's hot path.
 *
 * Jobs without a caller-chosen id (the common case) are written with multi-row INSERTs of
 * up to MAX_CHUNK rows, one cached statement per chunk size, and their ids are derived
 * from the rowid of the last inserted row instead of being read back. That is safe because
 * (1) the whole call runs in one BEGIN IMMEDIATE transaction, so no other connection can
 * insert in between, (2) a single INSERT … VALUES inserts its rows in order, and (3) each
 * new rowid is one more than the largest in the table (SQLite never fills gaps and the jobs
 * table has no triggers; see migrations.ts for why that largest seq never goes backwards),
 * so the rows of one statement get consecutive
 * seqs ending at last_insert_rowid(). `changes` is checked to catch the impossible anyway.
 *
 * Jobs with a caller-chosen id are deduplicated one by one against live jobs, in list
 * order, so the first of two identical ids in one batch wins and the second sees it.
 *
 * Every call appends one `added` event per queue listing the jobs it created (duplicates
 * are left out; a call that created nothing appends nothing).
 */
import type { EnqueueResult, NewJob } from '../../store/contract.ts';
import type { StatementSync } from 'node:sqlite';
import { deleteLogs, type StoreContext } from './context.ts';
import { EventBatch } from './events.ts';
import { encodeOpts, FIRST_FINISHED_CODE, STATE } from './rows.ts';

const COLUMNS = 'queue, name, data, opts, state, priority, max_attempts, run_at, created_at, lease_ms';
const PARAMS_PER_ROW = 10;
const ROW_PLACEHOLDERS = '(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)';
/** Rows per multi-row INSERT; remainders use power-of-two sizes so few statements get cached. */
const MAX_CHUNK = 100;

/** The values of COLUMNS for one job, in order (the multi-row path inlines the same list). */
function rowValues(job: NewJob, queueId: number, now: number): Array<string | number | null> {
  return [
    queueId,
    job.name,
    job.data,
    encodeOpts(job.opts),
    job.runAt > now ? STATE.delayed : STATE.waiting,
    job.priority,
    job.opts.attempts,
    job.runAt,
    now,
    job.opts.leaseMs ?? null,
  ];
}

interface ExistingKey {
  readonly seq: number;
  readonly state: number;
}

export class Enqueuer {
  readonly #ctx: StoreContext;
  /** Multi-row INSERT statements by row count. */
  readonly #inserts = new Map<number, StatementSync>();
  readonly #insertOne: StatementSync;
  #insertKeyed: StatementSync | undefined;
  #findKey: StatementSync | undefined;
  #deleteJob: StatementSync | undefined;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    this.#insertOne = this.#insertStatement(1);
  }

  /** Runs inside a write transaction. */
  enqueue(jobs: readonly NewJob[], now: number): EnqueueResult[] {
    const results = new Array<EnqueueResult>(jobs.length);
    const { queues } = this.#ctx;
    // Fast path: a single job without an id, the most common call of all.
    if (jobs.length === 1) {
      const job = jobs[0]!;
      if (job.id === undefined) {
        const r = this.#insertOne.run(...rowValues(job, queues.ensure(job.queue), now));
        const id = String(r.lastInsertRowid);
        results[0] = { status: 'created', id };
        this.#ctx.events.append(now, job.queue, 'added', [{ id, name: job.name, state: job.runAt > now ? 'delayed' : 'waiting' }]);
        if (this.#ctx.signals.active) this.#ctx.signals.push({ type: 'enqueued', queue: job.queue, runAt: job.runAt });
        return results;
      }
    }
    const events = new EventBatch('added');

    // Runs of consecutive id-less jobs are bulk-inserted; a job with an id ends the run so
    // that seqs (the claim tie-breaker) follow list order.
    let runStart = -1;
    for (let i = 0; i < jobs.length; i++) {
      if (jobs[i]!.id === undefined) {
        if (runStart < 0) runStart = i;
        continue;
      }
      if (runStart >= 0) {
        this.#insertRun(jobs, runStart, i, now, results, events);
        runStart = -1;
      }
      const job = jobs[i]!;
      const result = this.#insertWithKey(job, now);
      results[i] = result;
      if (result.status === 'created') {
        events.add(job.queue, { id: result.id, name: job.name, state: job.runAt > now ? 'delayed' : 'waiting' }, -1);
      }
    }
    if (runStart >= 0) this.#insertRun(jobs, runStart, jobs.length, now, results, events);

    events.flush(this.#ctx.events, now);
    if (this.#ctx.signals.active) this.#signal(jobs, results);
    return results;
  }

  #insertRun(jobs: readonly NewJob[], from: number, to: number, now: number, results: EnqueueResult[], events: EventBatch): void {
    const { queues } = this.#ctx;
    // Batches are usually for one queue: resolve its id once per run of equal names.
    let queueName: string | null = null;
    let queueId = 0;
    let i = from;
    while (i < to) {
      const left = to - i;
      const n = left >= MAX_CHUNK ? MAX_CHUNK : 2 ** Math.floor(Math.log2(left));
      const params = new Array<string | number | null>(n * PARAMS_PER_ROW);
      let p = 0;
      for (let k = i; k < i + n; k++) {
        const job = jobs[k]!;
        if (job.queue !== queueName) {
          queueName = job.queue;
          queueId = queues.ensure(queueName);
        }
        params[p++] = queueId;
        params[p++] = job.name;
        params[p++] = job.data;
        params[p++] = encodeOpts(job.opts);
        params[p++] = job.runAt > now ? STATE.delayed : STATE.waiting;
        params[p++] = job.priority;
        params[p++] = job.opts.attempts;
        params[p++] = job.runAt;
        params[p++] = now;
        params[p++] = job.opts.leaseMs ?? null;
      }
      const r = this.#statementFor(n).run(...params);
      if (Number(r.changes) !== n) throw new Error(`multi-row insert wrote ${String(r.changes)} rows, expected ${n}`);
      const first = Number(r.lastInsertRowid) - n + 1;
      for (let k = 0; k < n; k++) {
        const job = jobs[i + k]!;
        const id = String(first + k);
        results[i + k] = { status: 'created', id };
        events.add(job.queue, { id, name: job.name, state: job.runAt > now ? 'delayed' : 'waiting' }, first + k);
      }
      i += n;
    }
  }

  #insertWithKey(job: NewJob, now: number): EnqueueResult {
    const key = job.id!;
    const queueId = this.#ctx.queues.ensure(job.queue);
    this.#findKey ??= this.#ctx.db.prepare('SELECT seq, state FROM jobs WHERE key = ? AND queue = ?');
    const existing = this.#findKey.get(key, queueId) as ExistingKey | undefined;
    if (existing !== undefined) {
      if (existing.state < FIRST_FINISHED_CODE) return { status: 'duplicate', id: key };
      // A finished job with this id is replaced: the id names the new job from now on.
      this.#deleteJob ??= this.#ctx.db.prepare('DELETE FROM jobs WHERE seq = ?');
      this.#deleteJob.run(existing.seq);
      deleteLogs(this.#ctx, existing.seq);
    }
    this.#insertKeyed ??= this.#ctx.db.prepare(
      `INSERT INTO jobs (key, ${COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    this.#insertKeyed.run(key, ...rowValues(job, queueId, now));
    return { status: 'created', id: key };
  }

  /** One `enqueued` signal per queue, carrying the earliest runAt of the jobs created there. */
  #signal(jobs: readonly NewJob[], results: readonly EnqueueResult[]): void {
    const earliest = new Map<string, number>();
    for (let i = 0; i < jobs.length; i++) {
      if (results[i]!.status !== 'created') continue;
      const job = jobs[i]!;
      const prev = earliest.get(job.queue);
      if (prev === undefined || job.runAt < prev) earliest.set(job.queue, job.runAt);
    }
    for (const [queue, runAt] of earliest) this.#ctx.signals.push({ type: 'enqueued', queue, runAt });
  }

  #statementFor(rows: number): StatementSync {
    let stmt = this.#inserts.get(rows);
    if (stmt === undefined) {
      stmt = this.#insertStatement(rows);
      this.#inserts.set(rows, stmt);
    }
    return stmt;
  }

  #insertStatement(rows: number): StatementSync {
    const stmt = this.#ctx.db.prepare(
      `INSERT INTO jobs (${COLUMNS}) VALUES ${new Array<string>(rows).fill(ROW_PLACEHOLDERS).join(', ')}`,
    );
    this.#inserts.set(rows, stmt);
    return stmt;
  }
}
