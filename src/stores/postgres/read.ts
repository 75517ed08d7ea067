/**
 * Read-only operations: jobs, pages of jobs, logs, counts, queues.
 *
 * Each is one statement, so it reads one consistent snapshot (a page and its total, a
 * queue's six counts). Every query names one state with a literal term, so PostgreSQL can
 * use that state's partial index; a listing over several states runs one bounded query per
 * state and merges them by id, which keeps each on an index instead of sorting the whole
 * queue.
 */
import { JOB_STATES } from '../../job.ts';
import type { JobRecord, JobState } from '../../job.ts';
import type { JobCounts, JobPage, JobRef, ListJobsParams, LogPage, QueueInfo } from '../../store/contract.ts';
import { queueIdSql, type StoreContext, type Tables } from './context.ts';
import { COL, doneColumns, idCondition, isFinishedCode, liveColumns, num, STATE, toJobRecord } from './rows.ts';
import { ValidationError } from '../../errors.ts';

function zeroCounts(): JobCounts {
  return { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 };
}

/** Six scalar counts of one queue (its id in `queueExpr`), each on its state's index. */
function countsSql(t: Tables, queueExpr: string): string {
  return JOB_STATES.map((s) => {
    const code = STATE[s];
    return `(SELECT count(*) FROM ${isFinishedCode(code) ? t.done : t.jobs} WHERE queue = ${queueExpr} AND state = ${code}) AS ${s}`;
  }).join(',\n');
}

/** Cursors are the last id of the previous page; anything unparsable starts from the beginning. */
function parseCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  if (!/^[0-9]{1,15}$/.test(cursor)) {
    throw new ValidationError('INVALID_ARGUMENT', `invalid cursor ${JSON.stringify(cursor.slice(0, 40))}: pass back the nextCursor of a previous page, or omit it for the first page`);
  }
  return Number(cursor);
}

export class Reader {
  readonly #ctx: StoreContext;
  readonly #counts: string;
  readonly #listQueues: string;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { t } = ctx;
    this.#counts = `SELECT ${countsSql(t, queueIdSql(t, '$1'))}`;
    this.#listQueues = `
      SELECT q.name, q.paused, c.*
      FROM ${t.queues} q CROSS JOIN LATERAL (SELECT ${countsSql(t, 'q.id')}) c
      ORDER BY q.name`;
  }

  async getJob(ref: JobRef): Promise<JobRecord | null> {
    const { t } = this.#ctx;
    const id = idCondition(ref.id, '$2');
    const rows = await this.#ctx.db.arrays(
      `SELECT ${liveColumns()} FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}
       UNION ALL
       SELECT ${doneColumns()} FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}`,
      [ref.queue, id.value],
    );
    const row = rows[0];
    return row === undefined ? null : toJobRecord(row, ref.queue);
  }

  async listJobs(params: ListJobsParams): Promise<JobPage> {
    const { t } = this.#ctx;
    const limit = Math.max(0, Math.floor(params.limit));
    if (limit === 0) return { jobs: [], nextCursor: null };
    const desc = params.order !== 'asc';
    const cursor = parseCursor(params.cursor) ?? (desc ? Number.MAX_SAFE_INTEGER : 0);
    // An empty list means no filter.
    const states: readonly JobState[] = params.states.length === 0 ? JOB_STATES : [...new Set(params.states)];
    const name = params.name ?? null;
    // One bounded query per state, run as one statement (one snapshot); $1 queue, $2 cursor, $3 limit + 1, $4 name.
    const parts = states.map((state) => {
      const code = STATE[state];
      const finished = isFinishedCode(code);
      return `(SELECT ${finished ? doneColumns() : liveColumns()} FROM ${finished ? t.done : t.jobs}
        WHERE queue = ${queueIdSql(t, '$1')} AND state = ${code} AND id ${desc ? '<' : '>'} $2::bigint
          ${name === null ? '' : 'AND name = $4'}
        ORDER BY id ${desc ? 'DESC' : 'ASC'} LIMIT $3)`;
    });
    const values: (string | number)[] = [params.queue, cursor, limit + 1];
    if (name !== null) values.push(name);
    const rows = await this.#ctx.db.arrays(parts.join('\nUNION ALL\n'), values);
    rows.sort(desc ? (a, b) => num(b[COL.id]) - num(a[COL.id]) : (a, b) => num(a[COL.id]) - num(b[COL.id]));
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return {
      jobs: page.map((row) => toJobRecord(row, params.queue)),
      nextCursor: more ? String(num(page[page.length - 1]![COL.id])) : null,
    };
  }

  /** The page and the total come from one snapshot. */
  async getLogs(params: JobRef & { readonly offset: number; readonly limit: number }): Promise<LogPage> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    const limit = Math.max(0, Math.floor(params.limit));
    const offset = Math.max(0, Math.floor(params.offset));
    const rows = await this.#ctx.db.arrays(
      `WITH j AS (
         SELECT id FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}
         UNION ALL
         SELECT id FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}
       )
       SELECT (SELECT count(*) FROM ${t.logs} WHERE job_id IN (SELECT id FROM j)) AS total, l.at, l.message
       FROM (SELECT 1) one
       LEFT JOIN LATERAL (
         SELECT id, at, message FROM ${t.logs} WHERE job_id IN (SELECT id FROM j) ORDER BY id LIMIT $3 OFFSET $4
       ) l ON true
       ORDER BY l.id`,
      [params.queue, id.value, limit, offset],
    );
    const total = num(rows[0]?.[0] ?? 0);
    const entries = rows.filter((r) => r[1] !== null).map((r) => ({ at: num(r[1]), message: r[2] as string }));
    return { entries, total };
  }

  async countJobs(queue: string): Promise<JobCounts> {
    const rows = await this.#ctx.db.rows<Record<JobState, number>>(this.#counts, [queue]);
    return this.#toCounts(rows[0]);
  }

  /** Queues with neither jobs nor a pause flag are left out. */
  async listQueues(): Promise<QueueInfo[]> {
    const rows = await this.#ctx.db.rows<Record<JobState, number> & { name: string; paused: boolean }>(this.#listQueues);
    const out: QueueInfo[] = [];
    for (const row of rows) {
      const counts = this.#toCounts(row);
      if (!row.paused && JOB_STATES.every((s) => counts[s] === 0)) continue;
      out.push({ name: row.name, paused: row.paused, counts });
    }
    return out;
  }

  async isPaused(queue: string): Promise<boolean> {
    const rows = await this.#ctx.db.rows<{ paused: boolean }>(`SELECT paused FROM ${this.#ctx.t.queues} WHERE name = $1`, [queue]);
    return rows[0]?.paused === true;
  }

  #toCounts(row: Record<JobState, number> | undefined): JobCounts {
    const counts = zeroCounts();
    if (row !== undefined) for (const s of JOB_STATES) counts[s] = num(row[s]);
    return counts;
  }
}
