/**
 * Administrative writes: retry, cancel, promote, remove, clean, drain, pause.
 *
 * Each is ONE statement: the write (often a move between `jobs` and `jobs_done`) and, in
 * the same snapshot, the job's current state for the answer when the write did not apply
 * (`invalid_state` or `not_found`). The state check is part of the write's WHERE clause,
 * so check and write are atomic. If a concurrent write changed the job after the
 * statement's snapshot was taken (the write then skips it, but the snapshot still shows
 * a state that would have allowed it), the statement runs again with a fresh snapshot.
 * Each also appends its event (retried, cancelled, promoted, removed, paused/resumed) in the
 * same statement, from the rows it changed, so a refused or empty operation writes none.
 * Bulk deletes and retries are bounded by `limit` and skip rows other transactions hold
 * (SKIP LOCKED), so they never wait on, or hold up, claims.
 */
import type { AdminOutcome, BulkRetryParams, CleanParams, DrainParams, JobRef, RetryParams, StoreSignal } from '../../store/contract.ts';
import { queueIdSql, type StoreContext } from './context.ts';
import { appendEventsSql, type AppendSpec } from './events.ts';
import { idCondition, isFinishedCode, num, STATE, stateName } from './rows.ts';

/** Most ids a `removed` event of `clean`/`drain` lists (it carries the count of all). */
const REMOVED_IDS_CAP = 1000;

const APPLIED = Object.freeze({ status: 'applied' as const });
const NOT_FOUND = Object.freeze({ status: 'not_found' as const });
/** How often a single-job statement is re-run after a concurrent change made its snapshot disagree. */
const MAX_RUNS = 3;

/** What a single-job statement reports: whether it applied, and the job's state in its snapshot (null: none). */
interface Verdict {
  readonly applied: number;
  readonly state: number | null;
}

export class Admin {
  readonly #ctx: StoreContext;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
  }

  /**
   * A CTE appending this operation's event about the rows of `from` (with `id` and `key`
   * columns), in queue `$1`, items `{ "id" }`; a capped list (clean, drain) holds the lowest ids.
   */
  #event(type: AppendSpec['type'], from: string, at: string, countAndCap?: number): string {
    return `ev AS (${appendEventsSql(this.#ctx.t, {
      at,
      type,
      from,
      queue: { constant: '$1::text' },
      ...(countAndCap === undefined ? {} : { countAndCap, capOrder: 'id' }),
    })})`;
  }

  /** `SELECT state` of the job in either table, in the statement's snapshot. `$1` queue name, id in `$2`. */
  #stateOf(id: { sql: string }): string {
    const { t } = this.#ctx;
    return `coalesce(
      (SELECT state FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}),
      (SELECT state FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}))`;
  }

  /**
   * Runs a single-job statement until its answer is consistent: applied, no such job, or a
   * snapshot state for which the write rightly did not apply (`allowed` says which states
   * the write accepts; seeing one of those unapplied means a concurrent change).
   */
  async #single(sql: string, values: readonly (string | number)[], allowed: (state: number) => boolean): Promise<AdminOutcome> {
    for (let run = 1; ; run++) {
      const row = (await this.#ctx.db.rows<{ applied: number; state: number | null }>(sql, values))[0] as Verdict | undefined;
      if (row === undefined) throw new Error('admin statement returned no row');
      if (num(row.applied) > 0) return APPLIED;
      if (row.state === null) return NOT_FOUND;
      if (!allowed(row.state) || run >= MAX_RUNS) return { status: 'invalid_state', state: stateName(row.state) };
    }
  }

  /** A finished job goes back to waiting: attempts and stalls reset, errors kept (history). */
  async retryJob(params: RetryParams): Promise<{ outcome: AdminOutcome; signals: StoreSignal[] }> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    const sql = `
      WITH moved AS (
        DELETE FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}
        RETURNING id, queue, key, name, data, opts, priority, max_attempts, created_at, lease_ms, started_at, progress, errors
      ),
      revived AS (${this.#reviveInsert('$3::bigint')}),
      ${this.#event('retried', 'moved', '$3::bigint')}
      SELECT (SELECT count(*) FROM moved) AS applied, ${this.#stateOf(id)} AS state`;
    const outcome = await this.#single(sql, [params.queue, id.value, params.now], isFinishedCode);
    return { outcome, signals: outcome.status === 'applied' ? [{ type: 'enqueued', queue: params.queue, runAt: params.now }] : [] };
  }

  /** Reinserts the rows of a `moved` CTE (from jobs_done) as fresh waiting jobs due at `runAt`. */
  #reviveInsert(runAt: string): string {
    const { t } = this.#ctx;
    return `INSERT INTO ${t.jobs} (id, queue, key, name, data, opts, state, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, errors)
      SELECT id, queue, key, name, data, opts, ${STATE.waiting}, priority, 0, max_attempts, 0, ${runAt}, created_at, lease_ms, started_at, progress, errors
      FROM moved`;
  }

  async retryMany(params: BulkRetryParams): Promise<{ count: number; signals: StoreSignal[] }> {
    if (params.limit <= 0) return { count: 0, signals: [] };
    const { t } = this.#ctx;
    const state = STATE[params.state ?? 'failed'];
    const sql = `
      WITH moved AS (
        DELETE FROM ${t.done} WHERE id IN (
          SELECT id FROM ${t.done} WHERE queue = ${queueIdSql(t, '$1')} AND state = ${state}
          ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED)
        RETURNING id, queue, key, name, data, opts, priority, max_attempts, created_at, lease_ms, started_at, progress, errors
      ),
      revived AS (${this.#reviveInsert('$3::bigint')}),
      ${this.#event('retried', 'moved', '$3::bigint')}
      SELECT count(*) AS n FROM moved`;
    const rows = await this.#ctx.db.rows<{ n: number }>(sql, [params.queue, params.limit, params.now]);
    const count = num(rows[0]?.n ?? 0);
    return { count, signals: count > 0 ? [{ type: 'enqueued', queue: params.queue, runAt: params.now }] : [] };
  }

  /** Waiting, delayed or active → cancelled. Deleting the live row revokes the lease: the holder's acks find nothing. */
  async cancelJob(params: RetryParams): Promise<{ outcome: AdminOutcome; signals: StoreSignal[] }> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    const sql = `
      WITH moved AS (
        DELETE FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}
        RETURNING id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, errors
      ),
      kept AS (
        INSERT INTO ${t.done} (id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, errors, state, finished_at)
        SELECT id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, errors,
               ${STATE.cancelled}, $3::bigint
        FROM moved
      ),
      ${this.#event('cancelled', 'moved', '$3::bigint')}
      SELECT (SELECT count(*) FROM moved) AS applied, ${this.#stateOf(id)} AS state`;
    const outcome = await this.#single(sql, [params.queue, id.value, params.now], (s) => !isFinishedCode(s));
    const signals: StoreSignal[] = outcome.status === 'applied' ? [{ type: 'finished', queue: params.queue, id: params.id, state: 'cancelled' }] : [];
    return { outcome, signals };
  }

  /** A delayed job becomes waiting, due now. */
  async promoteJob(params: RetryParams): Promise<{ outcome: AdminOutcome; signals: StoreSignal[] }> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    const sql = `
      WITH promoted AS (
        UPDATE ${t.jobs} SET state = ${STATE.waiting}, run_at = $3::bigint
        WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND state = ${STATE.delayed}
        RETURNING id, key
      ),
      ${this.#event('promoted', 'promoted', '$3::bigint')}
      SELECT (SELECT count(*) FROM promoted) AS applied, ${this.#stateOf(id)} AS state`;
    const outcome = await this.#single(sql, [params.queue, id.value, params.now], (s) => s === STATE.delayed);
    return { outcome, signals: outcome.status === 'applied' ? [{ type: 'enqueued', queue: params.queue, runAt: params.now }] : [] };
  }

  /**
   * Deletes a job that is not active, with its logs. `at`: the event's time (JobRef
   * carries no `now`, so the caller stamps it with its clock).
   */
  async removeJob(params: JobRef, at: number): Promise<AdminOutcome> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    const sql = `
      WITH l AS (
        DELETE FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND state <> ${STATE.active} RETURNING id, key
      ),
      d AS (
        DELETE FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} RETURNING id, key
      ),
      logs AS (
        DELETE FROM ${t.logs} WHERE job_id IN (SELECT id FROM l UNION ALL SELECT id FROM d)
      ),
      ${this.#event('removed', '(SELECT id, key FROM l UNION ALL SELECT id, key FROM d) r', '$3::bigint')}
      SELECT (SELECT count(*) FROM l) + (SELECT count(*) FROM d) AS applied, ${this.#stateOf(id)} AS state`;
    return this.#single(sql, [params.queue, id.value, at], (s) => s !== STATE.active);
  }

  /**
   * "Newest" means most recently inserted (highest id): the order the indexes hold, so a
   * clean walks an index instead of sorting every job of the state by time. Age is judged
   * by finished_at for finished states and created_at for waiting/delayed.
   */
  async clean(params: CleanParams, at: number): Promise<number> {
    if (params.limit <= 0) return 0;
    const { t } = this.#ctx;
    const code = STATE[params.state];
    const finished = isFinishedCode(code);
    const table = finished ? t.done : t.jobs;
    const ageColumn = finished ? 'finished_at' : 'created_at';
    const keep = Math.max(0, Math.floor(params.keep ?? 0));
    // $1 queue name, $2 olderThan (null: any age), $3 keep, $4 limit, $5 the event's time
    const sql = `
      WITH victims AS (
        SELECT id FROM ${table}
        WHERE queue = ${queueIdSql(t, '$1')} AND state = ${code}
          AND ($2::bigint IS NULL OR ${ageColumn} <= $2::bigint)
          AND ($3::int = 0 OR id < coalesce(
            (SELECT id FROM ${table} WHERE queue = ${queueIdSql(t, '$1')} AND state = ${code}
             ORDER BY id DESC LIMIT 1 OFFSET greatest($3::int - 1, 0)), -1))
        ORDER BY id LIMIT $4 FOR UPDATE SKIP LOCKED
      ),
      removed AS (
        DELETE FROM ${table} WHERE id IN (SELECT id FROM victims) RETURNING id, key
      ),
      logs AS (
        DELETE FROM ${t.logs} WHERE job_id IN (SELECT id FROM removed)
      ),
      ${this.#event('removed', 'removed', '$5::bigint', REMOVED_IDS_CAP)}
      SELECT count(*) AS n FROM removed`;
    const rows = await this.#ctx.db.rows<{ n: number }>(sql, [params.queue, params.olderThan ?? null, keep, params.limit, at]);
    return num(rows[0]?.n ?? 0);
  }

  /** Deletes up to `limit` waiting jobs (claim order first), then delayed ones if asked. Never active ones. */
  async drain(params: DrainParams, at: number): Promise<number> {
    if (params.limit <= 0) return 0;
    const { t } = this.#ctx;
    // $1 queue name, $2 limit, $3 include delayed, $4 the event's time
    const sql = `
      WITH w AS (
        SELECT id, 0 AS rank FROM ${t.jobs} WHERE queue = ${queueIdSql(t, '$1')} AND state = ${STATE.waiting}
        LIMIT $2 FOR UPDATE SKIP LOCKED
      ),
      d AS (
        SELECT id, 1 AS rank FROM ${t.jobs} WHERE $3::boolean AND queue = ${queueIdSql(t, '$1')} AND state = ${STATE.delayed}
        LIMIT $2 FOR UPDATE SKIP LOCKED
      ),
      victims AS (
        SELECT id FROM (SELECT * FROM w UNION ALL SELECT * FROM d) v ORDER BY rank LIMIT $2
      ),
      removed AS (
        DELETE FROM ${t.jobs} WHERE id IN (SELECT id FROM victims) RETURNING id, key
      ),
      logs AS (
        DELETE FROM ${t.logs} WHERE job_id IN (SELECT id FROM removed)
      ),
      ${this.#event('removed', 'removed', '$4::bigint', REMOVED_IDS_CAP)}
      SELECT count(*) AS n FROM removed`;
    const rows = await this.#ctx.db.rows<{ n: number }>(sql, [params.queue, params.limit, params.includeDelayed, at]);
    return num(rows[0]?.n ?? 0);
  }

  /**
   * Sets the pause flag; appends a `paused`/`resumed` event only when the flag changed. The
   * queue's row is made first if it is new (a new queue is not paused), so the flag itself
   * changes by an UPDATE whose WHERE, re-checked on the latest row version, tells exactly
   * whether this call changed it, even against concurrent callers. `at`: the event's time
   * (these params carry no `now`).
   */
  async setPaused(queue: string, paused: boolean, at: number): Promise<StoreSignal[]> {
    const { t } = this.#ctx;
    const queueId = (await this.#ctx.queues.ensure([queue])).get(queue)!;
    // $1 queue name, $2 paused, $3 the event's time, $4 queue id
    await this.#ctx.db.rows(
      `WITH changed AS (
         UPDATE ${t.queues} SET paused = $2::boolean WHERE id = $4::int AND paused <> $2::boolean RETURNING 1
       )
       INSERT INTO ${t.events} (at, queue, type, jobs)
       SELECT $3::bigint, $1::text, CASE WHEN $2::boolean THEN 'paused' ELSE 'resumed' END, '[]' FROM changed`,
      [queue, paused, at, queueId],
    );
    return [{ type: paused ? 'paused' : 'resumed', queue }];
  }
}
