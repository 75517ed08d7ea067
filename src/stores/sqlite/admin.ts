/**
 * Administrative writes: retry, cancel, promote, remove, clean, drain, pause.
 *
 * Single-job operations locate the row first (by queue and public id) and then decide by
 * its state, all inside one write transaction, so the check and the write are atomic.
 * Bulk deletes are bounded by `limit` so one call never holds the write lock for long.
 *
 * Each operation that changed something appends one event: `retried`, `cancelled`,
 * `promoted`, `removed` (clean and drain: with `count` and the first REMOVED_IDS_CAP ids),
 * `paused`/`resumed` (only when the flag changed). removeJob, clean, drain and setPaused
 * get no `now` from the contract, so their events are stamped with this process's clock.
 */
import type {
  AdminOutcome,
  BulkRetryParams,
  CleanParams,
  DrainParams,
  JobRef,
  RetryParams,
} from '../../store/contract.ts';
import type { StatementSync } from 'node:sqlite';
import { deleteLogs, type StoreContext } from './context.ts';
import { EventBatch, REMOVED_IDS_CAP } from './events.ts';
import type { JobLocator } from './lookup.ts';
import { FIRST_FINISHED_CODE, STATE, stateName } from './rows.ts';

const CLEAR_LEASE = 'lease_owner = NULL, lease_token = NULL, lease_until = NULL';
/** Back to a fresh start; errors are kept so the job's history stays visible. ?1 now */
const RESET_TO_WAITING = `state = ${STATE.waiting}, attempts_made = 0, stalls = 0, run_at = ?1, finished_at = NULL, result = NULL, ${CLEAR_LEASE}`;

const APPLIED = Object.freeze({ status: 'applied' as const });
const NOT_FOUND = Object.freeze({ status: 'not_found' as const });

function invalid(state: number): AdminOutcome {
  return { status: 'invalid_state', state: stateName(state) };
}

type DeletedRow = [seq: number, key: string | null];

/** An event whose items carry ids only, for the first `n` rows (sorted by seq, so mostly runs). */
function idsEvent(type: 'retried' | 'removed', queue: string, rows: readonly DeletedRow[], n: number): EventBatch {
  const batch = new EventBatch(type);
  for (let i = 0; i < n; i++) {
    const [seq, key] = rows[i]!;
    batch.add(queue, { id: key ?? String(seq) }, key === null ? seq : -1);
  }
  return batch;
}

export class Admin {
  readonly #ctx: StoreContext;
  readonly #locator: JobLocator;

  constructor(ctx: StoreContext, locator: JobLocator) {
    this.#ctx = ctx;
    this.#locator = locator;
  }

  #sql(sql: string, arrays = false): StatementSync {
    return this.#ctx.statements.get(sql, arrays);
  }

  retryJob(params: RetryParams): AdminOutcome {
    const job = this.#locator.locate(params.queue, params.id);
    if (job === undefined) return NOT_FOUND;
    if (job.state < FIRST_FINISHED_CODE) return invalid(job.state);
    this.#sql(`UPDATE jobs SET ${RESET_TO_WAITING} WHERE seq = ?2`).run(params.now, job.seq);
    this.#ctx.events.append(params.now, params.queue, 'retried', [{ id: params.id }]);
    this.#enqueued(params.queue, params.now);
    return APPLIED;
  }

  retryMany(params: BulkRetryParams): number {
    const queueId = this.#ctx.queues.idOf(params.queue);
    if (queueId === undefined || params.limit <= 0) return 0;
    const state = STATE[params.state ?? 'failed'];
    const rows = this.#sql(
      `UPDATE jobs SET ${RESET_TO_WAITING} WHERE seq IN (
         SELECT seq FROM jobs WHERE queue = ?2 AND state >= 3 AND state = ?3 ORDER BY seq LIMIT ?4)
       RETURNING seq, key`,
      true,
    ).all(params.now, queueId, state, params.limit) as unknown as DeletedRow[];
    if (rows.length === 0) return 0;
    rows.sort((a, b) => a[0] - b[0]);
    idsEvent('retried', params.queue, rows, rows.length).flush(this.#ctx.events, params.now);
    this.#enqueued(params.queue, params.now);
    return rows.length;
  }

  cancelJob(params: RetryParams): AdminOutcome {
    const job = this.#locator.locate(params.queue, params.id);
    if (job === undefined) return NOT_FOUND;
    if (job.state >= FIRST_FINISHED_CODE) return invalid(job.state);
    // Clearing the lease makes the current holder's acknowledgements stale.
    this.#sql(`UPDATE jobs SET state = ${STATE.cancelled}, finished_at = ?1, ${CLEAR_LEASE} WHERE seq = ?2`).run(
      params.now,
      job.seq,
    );
    // The revoked lease will never be acknowledged here: forget what its claim remembered.
    if (job.lease_token !== null) this.#ctx.attempts.take(job.lease_token);
    this.#ctx.events.append(params.now, params.queue, 'cancelled', [{ id: params.id }]);
    if (this.#ctx.signals.active) {
      this.#ctx.signals.push({ type: 'finished', queue: params.queue, id: params.id, state: 'cancelled' });
    }
    return APPLIED;
  }

  promoteJob(params: RetryParams): AdminOutcome {
    const job = this.#locator.locate(params.queue, params.id);
    if (job === undefined) return NOT_FOUND;
    if (job.state !== STATE.delayed) return invalid(job.state);
    this.#sql(`UPDATE jobs SET state = ${STATE.waiting}, run_at = ?1 WHERE seq = ?2`).run(params.now, job.seq);
    this.#ctx.events.append(params.now, params.queue, 'promoted', [{ id: params.id }]);
    this.#enqueued(params.queue, params.now);
    return APPLIED;
  }

  removeJob(params: JobRef): AdminOutcome {
    const job = this.#locator.locate(params.queue, params.id);
    if (job === undefined) return NOT_FOUND;
    if (job.state === STATE.active) return invalid(job.state);
    this.#sql('DELETE FROM jobs WHERE seq = ?').run(job.seq);
    deleteLogs(this.#ctx, job.seq);
    this.#ctx.events.append(Date.now(), params.queue, 'removed', [{ id: params.id }]);
    return APPLIED;
  }

  /**
   * "Newest" means most recently inserted (highest seq): that order is what the indexes
   * hold, so a clean walks an index instead of sorting every job of the state by time.
   * Age is judged by finished_at for finished states and created_at for waiting/delayed.
   */
  clean(params: CleanParams): number {
    const queueId = this.#ctx.queues.idOf(params.queue);
    if (queueId === undefined || params.limit <= 0) return 0;
    const code = STATE[params.state];
    // The literal state term lets SQLite use the matching partial index.
    const stateTerm =
      code >= FIRST_FINISHED_CODE ? `state >= 3 AND state = ${code}` : `state = ${code}`;
    const ageColumn = code >= FIRST_FINISHED_CODE ? 'finished_at' : 'created_at';
    const keep = Math.max(0, Math.floor(params.keep ?? 0));
    // ?1 queue, ?2 olderThan (null: any age), ?3 keep, ?4 limit
    const rows = this.#sql(
      `DELETE FROM jobs WHERE seq IN (
         SELECT seq FROM jobs
         WHERE queue = ?1 AND ${stateTerm}
           AND (?2 IS NULL OR ${ageColumn} <= ?2)
           AND (?3 = 0 OR seq < coalesce(
             (SELECT seq FROM jobs WHERE queue = ?1 AND ${stateTerm} ORDER BY seq DESC LIMIT 1 OFFSET ?3 - 1), -1))
         ORDER BY seq LIMIT ?4)
       RETURNING seq, key`,
      true,
    ).all(queueId, params.olderThan ?? null, keep, params.limit) as unknown as DeletedRow[];
    this.#removed(params.queue, rows);
    return rows.length;
  }

  drain(params: DrainParams): number {
    const queueId = this.#ctx.queues.idOf(params.queue);
    if (queueId === undefined || params.limit <= 0) return 0;
    // Waiting first (claim-index order), then delayed; never active.
    let rows = this.#deleteState(queueId, STATE.waiting, params.limit);
    if (params.includeDelayed && rows.length < params.limit) {
      const delayed = this.#deleteState(queueId, STATE.delayed, params.limit - rows.length);
      rows = rows.length === 0 ? delayed : rows.concat(delayed);
    }
    this.#removed(params.queue, rows);
    return rows.length;
  }

  #deleteState(queueId: number, code: typeof STATE.waiting | typeof STATE.delayed, limit: number): DeletedRow[] {
    return this.#sql(
      `DELETE FROM jobs WHERE seq IN (SELECT seq FROM jobs WHERE queue = ?1 AND state = ${code} LIMIT ?2) RETURNING seq, key`,
      true,
    ).all(queueId, limit) as unknown as DeletedRow[];
  }

  /** After a bulk delete: the rows' logs and high-water mark, and one `removed` event. */
  #removed(queue: string, rows: DeletedRow[]): void {
    if (rows.length === 0) return;
    for (const row of rows) deleteLogs(this.#ctx, row[0]);
    // RETURNING yields rows in no guaranteed order; list the oldest first.
    rows.sort((a, b) => a[0] - b[0]);
    idsEvent('removed', queue, rows, Math.min(rows.length, REMOVED_IDS_CAP)).flush(this.#ctx.events, Date.now(), rows.length);
  }

  setPaused(queue: string, paused: boolean): void {
    const id = this.#ctx.queues.ensure(queue);
    const flag = paused ? 1 : 0;
    const { changes } = this.#sql('UPDATE queues SET paused = ?1 WHERE id = ?2 AND paused <> ?1').run(flag, id);
    if (Number(changes) > 0) this.#ctx.events.append(Date.now(), queue, paused ? 'paused' : 'resumed', []);
    if (this.#ctx.signals.active) this.#ctx.signals.push({ type: paused ? 'paused' : 'resumed', queue });
  }

  #enqueued(queue: string, runAt: number): void {
    if (this.#ctx.signals.active) this.#ctx.signals.push({ type: 'enqueued', queue, runAt });
  }
}
