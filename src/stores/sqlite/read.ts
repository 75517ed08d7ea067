/**
 * Read-only operations: jobs, pages of jobs, logs, counts, queues.
 *
 * Every query names one state with the literal term of that state's partial index
 * (`state = 0`, …, `state >= 3 AND state = 4`), so SQLite can use that index. A listing
 * over several states runs one bounded query per state and merges them by seq, which keeps
 * every query on an index instead of sorting the whole queue.
 */
import type { JobRecord, JobState } from '../../job.ts';
import { JOB_STATES } from '../../job.ts';
import type { JobCounts, JobPage, JobRef, ListJobsParams, LogPage, QueueInfo } from '../../store/contract.ts';
import type { StoreContext } from './context.ts';
import { ByIdStatement, type JobLocator } from './lookup.ts';
import { COL, FIRST_FINISHED_CODE, JOB_COLUMNS, STATE, toJobRecord, type JobRow } from './rows.ts';
import { ValidationError } from '../../errors.ts';

function stateTerm(state: JobState): string {
  const code = STATE[state];
  return code >= FIRST_FINISHED_CODE ? `state >= 3 AND state = ${code}` : `state = ${code}`;
}

/**
 * One page of one state, by seq from the cursor: ?1 queue, ?2 cursor, ?3 limit, ?4 name.
 *
 * Finished states have an index in seq order (jobs_finished). The live states' indexes are
 * in claim, due-time or expiry order, so their page is chosen from the index first (for
 * waiting and delayed without a name filter, from index entries alone, no row reads) and
 * only then are the rows read. INDEXED BY keeps SQLite from walking the whole table
 * backwards by rowid instead, which it prefers because that avoids a sort.
 */
function listSql(code: number, desc: boolean, byName: boolean): string {
  const seqFrom = `seq ${desc ? '<' : '>'} ?2`;
  const order = `ORDER BY seq ${desc ? 'DESC' : 'ASC'} LIMIT ?3`;
  const nameTerm = byName ? 'AND name = ?4' : '';
  if (code >= FIRST_FINISHED_CODE) {
    return `SELECT ${JOB_COLUMNS} FROM jobs WHERE queue = ?1 AND state >= 3 AND state = ${code} AND ${seqFrom} ${nameTerm} ${order}`;
  }
  const index = code === STATE.waiting ? 'jobs_claim' : code === STATE.delayed ? 'jobs_delayed' : 'jobs_leases';
  return `SELECT ${JOB_COLUMNS} FROM jobs WHERE seq IN (
    SELECT seq FROM jobs INDEXED BY ${index} WHERE queue = ?1 AND state = ${code} AND ${seqFrom} ${nameTerm} ${order})`;
}

const COUNTS_SQL = `SELECT ${JOB_STATES.map(
  (s) => `(SELECT count(*) FROM jobs WHERE queue = ?1 AND ${stateTerm(s)}) AS ${s}`,
).join(', ')}`;

function zeroCounts(): JobCounts {
  return { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 };
}

/** Cursors are the last seq of the previous page; anything unparsable starts from the beginning. */
function parseCursor(cursor: string | undefined): number | null {
  if (cursor === undefined) return null;
  if (!/^[0-9]{1,15}$/.test(cursor)) {
    throw new ValidationError('INVALID_ARGUMENT', `invalid cursor ${JSON.stringify(cursor.slice(0, 40))}: pass back the nextCursor of a previous page, or omit it for the first page`);
  }
  return Number(cursor);
}

export class Reader {
  readonly #ctx: StoreContext;
  readonly #locator: JobLocator;
  readonly #getJob: ByIdStatement;

  constructor(ctx: StoreContext, locator: JobLocator) {
    this.#ctx = ctx;
    this.#locator = locator;
    this.#getJob = new ByIdStatement(ctx, `SELECT ${JOB_COLUMNS} FROM jobs WHERE $ID AND queue = ?2`, '?1', true);
  }

  getJob(ref: JobRef): JobRecord | null {
    const queueId = this.#ctx.queues.idOf(ref.queue);
    if (queueId === undefined) return null;
    const [stmt, id] = this.#getJob.for(ref.id);
    const row = stmt.get(id, queueId) as unknown as JobRow | undefined;
    return row === undefined ? null : toJobRecord(row, ref.queue);
  }

  listJobs(params: ListJobsParams): JobPage {
    const queueId = this.#ctx.queues.idOf(params.queue);
    const limit = Math.max(0, Math.floor(params.limit));
    if (queueId === undefined || limit === 0) return { jobs: [], nextCursor: null };
    const desc = params.order !== 'asc';
    const cursor = parseCursor(params.cursor) ?? (desc ? Number.MAX_SAFE_INTEGER : 0);
    // An empty list means no filter.
    const states = params.states.length === 0 ? JOB_STATES : [...new Set(params.states)];

    const name = params.name ?? null;
    let rows: JobRow[] = [];
    for (const state of states) {
      const stmt = this.#ctx.statements.get(listSql(STATE[state], desc, name !== null), true);
      // One extra row tells whether another page exists.
      const part = (
        name === null ? stmt.all(queueId, cursor, limit + 1) : stmt.all(queueId, cursor, limit + 1, name)
      ) as unknown as JobRow[];
      rows = rows.length === 0 ? part : rows.concat(part);
    }
    rows.sort(desc ? (a, b) => b[COL.seq] - a[COL.seq] : (a, b) => a[COL.seq] - b[COL.seq]);
    const more = rows.length > limit;
    const page = more ? rows.slice(0, limit) : rows;
    return {
      jobs: page.map((row) => toJobRecord(row, params.queue)),
      nextCursor: more ? String(page[page.length - 1]![COL.seq]) : null,
    };
  }

  /** Call inside a snapshot read, so the page and the total agree. */
  getLogs(params: JobRef & { readonly offset: number; readonly limit: number }): LogPage {
    const job = this.#locator.locate(params.queue, params.id);
    if (job === undefined) return { entries: [], total: 0 };
    const total = (
      this.#ctx.statements.get('SELECT count(*) AS n FROM job_logs WHERE job_seq = ?').get(job.seq) as { n: number }
    ).n;
    const limit = Math.max(0, Math.floor(params.limit));
    const offset = Math.max(0, Math.floor(params.offset));
    const entries =
      limit === 0
        ? []
        : (this.#ctx.statements
            .get('SELECT at, message FROM job_logs WHERE job_seq = ? ORDER BY id LIMIT ? OFFSET ?')
            .all(job.seq, limit, offset) as Array<{ at: number; message: string }>).map((r) => ({
            at: r.at,
            message: r.message,
          }));
    return { entries, total };
  }

  countJobs(queue: string): JobCounts {
    const queueId = this.#ctx.queues.idOf(queue);
    return queueId === undefined ? zeroCounts() : this.#counts(queueId);
  }

  /** Call inside a snapshot read. Queues with neither jobs nor a pause flag are left out. */
  listQueues(): QueueInfo[] {
    const queues = this.#ctx.statements.get('SELECT id, name, paused FROM queues ORDER BY name').all() as Array<{
      id: number;
      name: string;
      paused: number;
    }>;
    const out: QueueInfo[] = [];
    for (const q of queues) {
      const counts = this.#counts(q.id);
      const paused = q.paused !== 0;
      if (!paused && JOB_STATES.every((s) => counts[s] === 0)) continue;
      out.push({ name: q.name, paused, counts });
    }
    return out;
  }

  isPaused(queue: string): boolean {
    const row = this.#ctx.statements.get('SELECT paused FROM queues WHERE name = ?').get(queue) as
      | { paused: number }
      | undefined;
    return row !== undefined && row.paused !== 0;
  }

  #counts(queueId: number): JobCounts {
    const row = this.#ctx.statements.get(COUNTS_SQL).get(queueId) as Record<JobState, number>;
    const counts = zeroCounts();
    for (const s of JOB_STATES) counts[s] = row[s];
    return counts;
  }
}
