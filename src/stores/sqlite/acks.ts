/**
 * The worker's writes after a claim: complete, fail, extend, progress, logs, and stall
 * recovery.
 *
 * Fencing: an acknowledgement applies only while the job is still `active` with the lease
 * token it was claimed with. The check is part of each UPDATE's WHERE clause, so it is
 * atomic with the write, and a miss is reported as `stale` (never thrown). Items carry no
 * queue: a key plus a random token is unambiguous, and a seq is unique anyway.
 *
 * Events: complete, fail, release and recover append one event per queue for the jobs
 * they moved, updateProgress one `progress` event; stale items are left out. The items of
 * completions and failures need the attempt's number and start time, which come from what
 * this store's claim remembered (AttemptStarts), or from the row for leases claimed
 * elsewhere.
 */
import type { StatementSync } from 'node:sqlite';
import type {
  AddLogsParams,
  CompleteParams,
  ExtendOutcome,
  ExtendParams,
  FailOutcome,
  FailParams,
  JobWriteOutcome,
  LeaseOutcome,
  LeaseRef,
  ProgressParams,
  RecoveredJob,
  RecoverParams,
} from '../../store/contract.ts';
import { deleteLogs, prepare, type StoreContext } from './context.ts';
import { EventBatch, type AttemptStart } from './events.ts';
import { ByIdStatement, JobLocator, type LocatedJob } from './lookup.ts';
import { leaseRef, parseLeaseToken, publicId, STATE } from './rows.ts';

const CLEAR_LEASE = 'lease_owner = NULL, lease_token = NULL, lease_until = NULL';
/** Active jobs whose lease has expired (?1 now); a lease is still held at `lease_until = now`. */
const EXPIRED = 'FROM jobs WHERE state = 1 AND lease_until < ?1';
/** `param`: a JSON array of queue ids. */
const inQueues = (param: string): string => `queue IN (SELECT value FROM json_each(${param}))`;

const APPLIED = Object.freeze({ status: 'applied' as const });
const STALE = Object.freeze({ status: 'stale' as const });
const NOT_FOUND = Object.freeze({ status: 'not_found' as const });

export class Acks {
  readonly #ctx: StoreContext;
  readonly #locator: JobLocator;
  // ?1 result, ?2 now, ?3 id, ?4 token
  readonly #complete: ByIdStatement;
  // ?1 id, ?2 token
  readonly #deleteLeased: ByIdStatement;
  // ?1 state, ?2 run_at (null keeps it), ?3 finished_at, ?4 error JSON, ?5 id, ?6 token
  readonly #fail: ByIdStatement;
  // ?1 now, ?2 default lease ms, ?3 id, ?4 token
  readonly #extend: ByIdStatement;
  // ?1 id, ?2 token
  readonly #release: ByIdStatement;
  #recoverAll: StatementSync | undefined;
  #recoverSome: StatementSync | undefined;
  // ?1 seq, ?2 token
  #attemptOf: StatementSync | undefined;

  /*
   * The hot acknowledgements (complete, fail, release) are plain UPDATE/DELETEs judged by
   * `changes`, without RETURNING and without a lookup first: in node:sqlite a RETURNING
   * clause measured ~4 µs per execution, as much as the update itself. What they need to
   * know about the job afterwards (its queue for signals, its seq to delete its logs) is
   * read from the lease token, which embeds both (see leaseRef).
   */
  constructor(ctx: StoreContext, locator: JobLocator) {
    this.#ctx = ctx;
    this.#locator = locator;
    const leasedBy = 'state = 1 AND lease_token = ?2';
    this.#complete = new ByIdStatement(
      ctx,
      `UPDATE jobs SET state = ${STATE.completed}, result = ?1, finished_at = ?2, attempts_made = attempts_made + 1, ${CLEAR_LEASE}
       WHERE $ID AND state = 1 AND lease_token = ?4`,
      '?3',
    );
    this.#deleteLeased = new ByIdStatement(ctx, `DELETE FROM jobs WHERE $ID AND ${leasedBy}`, '?1');
    this.#fail = new ByIdStatement(
      ctx,
      `UPDATE jobs SET state = ?1, run_at = coalesce(?2, run_at), finished_at = ?3, attempts_made = attempts_made + 1,
         errors = json_insert(coalesce(errors, '[]'), '$[#]', json(?4)), ${CLEAR_LEASE}
       WHERE $ID AND state = 1 AND lease_token = ?6`,
      '?5',
    );
    this.#extend = new ByIdStatement(
      ctx,
      'UPDATE jobs SET lease_until = ?1 + coalesce(lease_ms, ?2) WHERE $ID AND state = 1 AND lease_token = ?4 RETURNING lease_until',
      '?3',
      true,
    );
    // run_at is kept, so a released job keeps its place at the front of its queue.
    this.#release = new ByIdStatement(
      ctx,
      `UPDATE jobs SET state = ${STATE.waiting}, ${CLEAR_LEASE} WHERE $ID AND ${leasedBy}`,
      '?1',
    );
  }

  /**
   * Deletes a leased job and its logs. Returns the value the id was bound as (a number for a
   * generated id, see ByIdStatement), or null if the lease is stale.
   */
  #deleteLeasedJob(id: string, token: string): string | number | null {
    const [stmt, idValue] = this.#deleteLeased.for(id);
    if (Number(stmt.run(idValue, token).changes) === 0) return null;
    deleteLogs(this.#ctx, leaseRef(token).seq);
    return idValue;
  }

  #queueOf(token: string): string {
    return this.#ctx.queues.nameOf(leaseRef(token).queue);
  }

  /**
   * The attempt this token was issued for, ending it in the claim cache; undefined when
   * no active job holds the token (the ack is stale, and its write would change nothing).
   */
  #startOf(token: string): AttemptStart | undefined {
    const cached = this.#ctx.attempts.take(token);
    if (cached !== undefined) return cached;
    const ref = parseLeaseToken(token);
    if (ref === null) return undefined;
    this.#attemptOf ??= prepare(
      this.#ctx.db,
      'SELECT attempts_made, started_at FROM jobs WHERE seq = ?1 AND state = 1 AND lease_token = ?2',
      true,
    );
    const row = this.#attemptOf.get(ref.seq, token) as unknown as [number, number | null] | undefined;
    if (row === undefined) return undefined;
    return { queue: this.#ctx.queues.nameOf(ref.queue), attempt: row[0] + 1, startedAt: row[1] ?? 0 };
  }

  /** Runs inside a write transaction. */
  complete(params: CompleteParams): LeaseOutcome[] {
    const { now } = params;
    const signals = this.#ctx.signals.active ? this.#ctx.signals : null;
    const events = new EventBatch('completed');
    const out = new Array<LeaseOutcome>(params.items.length);
    for (let i = 0; i < params.items.length; i++) {
      const item = params.items[i]!;
      const start = this.#startOf(item.token);
      // The id as bound (a number: a generated id), or null when nothing changed.
      let bound: string | number | null = null;
      if (start === undefined) {
        // nothing holds this token
      } else if (item.remove) {
        bound = this.#deleteLeasedJob(item.id, item.token);
      } else {
        const [stmt, id] = this.#complete.for(item.id);
        if (Number(stmt.run(item.result, now, id, item.token).changes) > 0) bound = id;
      }
      if (bound === null || start === undefined) {
        out[i] = STALE;
        continue;
      }
      out[i] = APPLIED;
      const { queue } = start;
      const seq = typeof bound === 'number' ? bound : -1;
      events.add(queue, { id: item.id, attempt: start.attempt, durationMs: now - start.startedAt }, seq);
      if (signals !== null) signals.push({ type: 'finished', queue, id: item.id, state: 'completed' });
    }
    events.flush(this.#ctx.events, now);
    return out;
  }

  /** Runs inside a write transaction. */
  fail(params: FailParams): FailOutcome[] {
    const { now } = params;
    const signals = this.#ctx.signals.active ? this.#ctx.signals : null;
    const events = new EventBatch('failed');
    const out = new Array<FailOutcome>(params.items.length);
    for (let i = 0; i < params.items.length; i++) {
      const item = params.items[i]!;
      const { retryAt } = item;
      const state = retryAt === null ? 'failed' : retryAt > now ? 'delayed' : 'waiting';
      const start = this.#startOf(item.token);
      let bound: string | number | null = null;
      if (start === undefined) {
        // nothing holds this token
      } else if (retryAt === null && item.remove) {
        bound = this.#deleteLeasedJob(item.id, item.token);
      } else {
        const [stmt, id] = this.#fail.for(item.id);
        const finishedAt = retryAt === null ? now : null;
        const { changes } = stmt.run(STATE[state], retryAt, finishedAt, JSON.stringify(item.error), id, item.token);
        if (Number(changes) > 0) bound = id;
      }
      if (bound === null || start === undefined) {
        out[i] = STALE;
        continue;
      }
      out[i] = { status: 'applied', state };
      const { queue } = start;
      events.add(
        queue,
        { id: item.id, attempt: start.attempt, durationMs: now - start.startedAt, error: String(item.error.message), state },
        typeof bound === 'number' ? bound : -1,
      );
      if (signals !== null) {
        signals.push(
          retryAt === null ? { type: 'finished', queue, id: item.id, state } : { type: 'enqueued', queue, runAt: retryAt },
        );
      }
    }
    events.flush(this.#ctx.events, now);
    return out;
  }

  /** Runs inside a write transaction. */
  extend(params: ExtendParams): ExtendOutcome[] {
    const out = new Array<ExtendOutcome>(params.items.length);
    for (let i = 0; i < params.items.length; i++) {
      const item = params.items[i]!;
      const [stmt, id] = this.#extend.for(item.id);
      const row = stmt.get(params.now, params.leaseMs, id, item.token) as unknown as [number] | undefined;
      out[i] = row === undefined ? STALE : { status: 'applied', expiresAt: row[0] };
    }
    return out;
  }

  /**
   * Claimed-but-never-started jobs go back to waiting with attempts and stalls unchanged.
   * Runs inside a write transaction.
   */
  release(params: { readonly items: readonly LeaseRef[]; readonly now: number }): LeaseOutcome[] {
    const signals = this.#ctx.signals.active ? this.#ctx.signals : null;
    const events = new EventBatch('released');
    const out = new Array<LeaseOutcome>(params.items.length);
    const queues = new Set<string>();
    for (let i = 0; i < params.items.length; i++) {
      const item = params.items[i]!;
      const start = this.#ctx.attempts.take(item.token);
      const [stmt, id] = this.#release.for(item.id);
      const applied = Number(stmt.run(id, item.token).changes) > 0;
      out[i] = applied ? APPLIED : STALE;
      if (!applied) continue;
      const queue = start?.queue ?? this.#queueOf(item.token);
      events.add(queue, { id: item.id }, typeof id === 'number' ? id : -1);
      if (signals !== null) queues.add(queue);
    }
    events.flush(this.#ctx.events, params.now);
    for (const queue of queues) signals?.push({ type: 'enqueued', queue, runAt: params.now });
    return out;
  }

  /**
   * Without a transaction: whether recoverStalled would find nothing, so the periodic
   * check of an idle worker is one index probe and never takes the write lock.
   */
  nothingToRecover(params: RecoverParams): boolean {
    if (params.limit <= 0) return true;
    const ids = this.#queueIds(params.queues);
    if (ids === null) return this.#ctx.statements.get(`SELECT 1 ${EXPIRED} LIMIT 1`).get(params.now) === undefined;
    if (ids.length === 0) return true;
    return (
      this.#ctx.statements.get(`SELECT 1 ${EXPIRED} AND ${inQueues('?2')} LIMIT 1`).get(params.now, JSON.stringify(ids)) ===
      undefined
    );
  }

  /** Ids of the named queues that exist; null when no filter was given. */
  #queueIds(names: readonly string[] | undefined): number[] | null {
    if (names === undefined) return null;
    const ids: number[] = [];
    for (const name of names) {
      const id = this.#ctx.queues.idOf(name);
      if (id !== undefined) ids.push(id);
    }
    return ids;
  }

  /**
   * Expired leases → waiting (stalls + 1, attempts unchanged: the attempt never finished),
   * or → failed with a `stalled` AttemptError once stalls exceed maxStalls. One UPDATE;
   * SQLite evaluates every SET expression against the row's old values.
   * Runs inside a write transaction.
   */
  recover(params: RecoverParams): RecoveredJob[] {
    if (params.limit <= 0) return [];
    const ids = this.#queueIds(params.queues);
    if (ids !== null && ids.length === 0) return [];
    // ?1 now, ?2 maxStalls, ?3 message, ?4 limit, ?5 queue ids (JSON array)
    const set = `UPDATE jobs SET
        stalls = stalls + 1,
        state = CASE WHEN stalls + 1 > ?2 THEN ${STATE.failed} ELSE ${STATE.waiting} END,
        finished_at = CASE WHEN stalls + 1 > ?2 THEN ?1 ELSE NULL END,
        errors = CASE WHEN stalls + 1 > ?2
          THEN json_insert(coalesce(errors, '[]'), '$[#]',
                 json_object('message', ?3, 'at', ?1, 'attempt', attempts_made + 1, 'reason', 'stalled'))
          ELSE errors END,
        ${CLEAR_LEASE}`;
    const returning = 'RETURNING seq, key, queue, state';
    let rows: Array<{ seq: number; key: string | null; queue: number; state: number }>;
    const message = `job stalled more than ${params.maxStalls} times`;
    if (ids === null) {
      this.#recoverAll ??= this.#ctx.db.prepare(
        `${set} WHERE seq IN (SELECT seq ${EXPIRED} ORDER BY lease_until LIMIT ?4) ${returning}`,
      );
      rows = this.#recoverAll.all(params.now, params.maxStalls, message, params.limit) as typeof rows;
    } else {
      this.#recoverSome ??= this.#ctx.db.prepare(
        `${set} WHERE seq IN (SELECT seq ${EXPIRED} AND ${inQueues('?5')} ORDER BY lease_until LIMIT ?4) ${returning}`,
      );
      rows = this.#recoverSome.all(params.now, params.maxStalls, message, params.limit, JSON.stringify(ids)) as typeof rows;
    }
    rows.sort((a, b) => a.seq - b.seq);
    const signals = this.#ctx.signals.active ? this.#ctx.signals : null;
    const events = new EventBatch('stalled');
    const recovered = rows.map((row): RecoveredJob => {
      const queue = this.#ctx.queues.nameOf(row.queue);
      const id = publicId(row.key, row.seq);
      const state = row.state === STATE.failed ? 'failed' : 'waiting';
      events.add(queue, { id, state }, row.key === null ? row.seq : -1);
      signals?.push(
        state === 'failed' ? { type: 'finished', queue, id, state } : { type: 'enqueued', queue, runAt: params.now },
      );
      return { id, queue, state };
    });
    events.flush(this.#ctx.events, params.now);
    return recovered;
  }

  /** Runs inside a write transaction. */
  updateProgress(params: ProgressParams): JobWriteOutcome {
    const job = this.#writable(params.queue, params.id, params.token);
    if (job.status !== 'applied') return job;
    this.#ctx.statements.get('UPDATE jobs SET progress = ? WHERE seq = ?').run(params.progress, job.seq);
    // ProgressParams carries no `now`: the event is stamped with this process's clock.
    this.#ctx.events.append(Date.now(), params.queue, 'progress', [{ id: params.id, progress: params.progress }]);
    return APPLIED;
  }

  /** Runs inside a write transaction. */
  addLogs(params: AddLogsParams): JobWriteOutcome {
    const job = this.#writable(params.queue, params.id, params.token);
    if (job.status !== 'applied') return job;
    const insert = this.#ctx.statements.get('INSERT INTO job_logs (job_seq, at, message) VALUES (?, ?, ?)');
    for (const entry of params.entries) insert.run(job.seq, entry.at, entry.message);
    return APPLIED;
  }

  /** A job may be written with a token only while that lease is current, without one always. */
  #writable(
    queue: string,
    id: string,
    token: string | undefined,
  ): { status: 'applied'; seq: number } | typeof STALE | typeof NOT_FOUND {
    const job: LocatedJob | undefined = this.#locator.locate(queue, id);
    if (job === undefined) return NOT_FOUND;
    if (token !== undefined && (job.state !== STATE.active || job.lease_token !== token)) return STALE;
    return { status: 'applied', seq: job.seq };
  }
}
