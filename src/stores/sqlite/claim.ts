/**
 * claim: the worker's hot path.
 *
 * First a plain read (no lock) checks whether there is anything to claim: an idle worker's
 * poll then costs one SELECT and never takes the write lock, which other processes'
 * writers would have to wait for. Otherwise one write transaction
 *   1. skips paused (and unknown) queues,
 *   2. promotes due delayed jobs of the remaining queues to waiting,
 *   3. takes the first `limit` waiting jobs in claim order with one
 *      UPDATE … WHERE seq IN (SELECT … LIMIT n) RETURNING, walking the jobs_claim index,
 *   4. when fewer than `limit` were found, reads the earliest delayed runAt (`nextRunAt`),
 *   5. appends one `active` event per queue, and remembers each lease's attempt and start
 *      time for the acknowledgement's event (see AttemptStarts in events.ts).
 *
 * RETURNING yields rows in no guaranteed order, so they are sorted in JS afterwards.
 * Lease tokens are one random value per claim call plus the job's queue id and seq (see
 * leaseRef in rows.ts): unique per job and claim. The random part is 96 bits in 16
 * characters rather than a 36-character UUID, because a claim grows every row it touches
 * by the lease columns, and rows that outgrow their page make SQLite rebalance pages.
 */
import { randomBytes } from 'node:crypto';
import type { StatementSync } from 'node:sqlite';
import type { ClaimedJob, ClaimParams, ClaimResult } from '../../store/contract.ts';
import { prepare, type StoreContext } from './context.ts';
import { EventBatch, type AttemptStart } from './events.ts';
import { COL, compareClaimOrder, JOB_COLUMNS, LEASE_TOKEN_SQL, toJobRecord, type JobRow } from './rows.ts';

const CLAIM_ORDER = 'ORDER BY priority DESC, run_at, seq';
/** ?1 owner, ?2 random token part, ?3 now, ?4 default lease ms. */
const SET_ACTIVE = `UPDATE jobs SET state = 1, lease_owner = ?1, lease_token = ${LEASE_TOKEN_SQL}, lease_until = ?3 + coalesce(lease_ms, ?4), started_at = ?3`;

interface QueueFlags {
  readonly id: number;
  readonly paused: number;
}

const none = (): ClaimResult => ({ jobs: [], nextRunAt: null });

export class Claimer {
  readonly #ctx: StoreContext;
  readonly #queueFlags: StatementSync;
  readonly #promote: StatementSync;
  readonly #claimOne: StatementSync;
  readonly #nextRunAt: StatementSync;
  readonly #probe: StatementSync;
  /** Claim statements for k > 1 queues, by k. */
  readonly #claimMany = new Map<number, StatementSync>();

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { db } = ctx;
    this.#queueFlags = db.prepare('SELECT id, paused FROM queues WHERE name = ?');
    this.#promote = db.prepare('UPDATE jobs SET state = 0 WHERE queue = ? AND state = 2 AND run_at <= ?');
    // ?5 queue, ?6 limit
    this.#claimOne = prepare(
      db,
      `${SET_ACTIVE} WHERE seq IN (SELECT seq FROM jobs WHERE queue = ?5 AND state = 0 ${CLAIM_ORDER} LIMIT ?6) RETURNING ${JOB_COLUMNS}`,
      true,
    );
    this.#nextRunAt = db.prepare('SELECT min(run_at) AS t FROM jobs WHERE queue = ? AND state = 2');
    // [paused, has waiting jobs, earliest delayed runAt] of one queue, each an index probe.
    this.#probe = prepare(
      db,
      `SELECT paused,
         EXISTS (SELECT 1 FROM jobs WHERE queue = queues.id AND state = 0),
         (SELECT min(run_at) FROM jobs WHERE queue = queues.id AND state = 2)
       FROM queues WHERE name = ?`,
      true,
    );
  }

  /**
   * Without a transaction: the answer when nothing can be claimed (every queue paused,
   * unknown, or without waiting or due jobs), or null when a claim should be attempted.
   * A job added just after this read is simply picked up by the next claim, exactly as if
   * it had been added after the claim.
   */
  nothingToClaim(params: ClaimParams): ClaimResult | null {
    if (params.limit <= 0 || params.queues.length === 0) return none();
    let nextRunAt: number | null = null;
    for (const name of params.queues) {
      const row = this.#probe.get(name) as unknown as [paused: number, waiting: number, delayed: number | null] | undefined;
      if (row === undefined || row[0] !== 0) continue;
      const [, waiting, delayed] = row;
      if (waiting !== 0 || (delayed !== null && delayed <= params.now)) return null;
      if (delayed !== null && (nextRunAt === null || delayed < nextRunAt)) nextRunAt = delayed;
    }
    return { jobs: [], nextRunAt };
  }

  /** Runs inside a write transaction. */
  claim(params: ClaimParams): ClaimResult {
    const { limit, now } = params;
    if (limit <= 0 || params.queues.length === 0) return none();

    // 1. Unpaused queues that exist (a queue without a row has never had a job).
    const ids: number[] = [];
    const names = new Map<number, string>();
    for (const name of params.queues) {
      const flags = this.#queueFlags.get(name) as QueueFlags | undefined;
      if (flags === undefined || flags.paused !== 0 || names.has(flags.id)) continue;
      ids.push(flags.id);
      names.set(flags.id, name);
    }
    if (ids.length === 0) return none();

    // 2. Due delayed jobs compete with waiting ones (their earlier run_at puts them first).
    for (const id of ids) this.#promote.run(id, now);

    // 3. Take the jobs.
    const token = randomBytes(12).toString('base64url');
    const rows = (
      ids.length === 1
        ? this.#claimOne.all(params.workerId, token, now, params.leaseMs, ids[0]!, limit)
        : this.#claimStatement(ids.length).all(params.workerId, token, now, params.leaseMs, limit, ...ids)
    ) as unknown as JobRow[];
    if (rows.length > 1) rows.sort(compareClaimOrder);
    const jobs = new Array<ClaimedJob>(rows.length);
    const events = new EventBatch('active');
    const { attempts } = this.#ctx;
    // Jobs of one queue and attempt number share one (immutable) AttemptStart.
    let start: AttemptStart | null = null;
    for (let i = 0; i < rows.length; i++) {
      const row = rows[i]!;
      const queue = names.get(row[COL.queue])!;
      const job = toJobRecord(row, queue) as ClaimedJob;
      jobs[i] = job;
      const attempt = row[COL.attemptsMade] + 1;
      const due = row[COL.runAt] > row[COL.createdAt] ? row[COL.runAt] : row[COL.createdAt];
      if (start === null || start.queue !== queue || start.attempt !== attempt) start = { queue, attempt, startedAt: now };
      attempts.remember(job.lease.token, start);
      events.add(queue, { id: job.id, attempt, waitMs: now > due ? now - due : 0 }, row[COL.key] === null ? row[COL.seq] : -1);
    }
    events.flush(this.#ctx.events, now);

    // 4. Tell an under-filled worker how long it may sleep.
    let nextRunAt: number | null = null;
    if (rows.length < limit) {
      for (const id of ids) {
        const t = (this.#nextRunAt.get(id) as { t: number | null } | undefined)?.t ?? null;
        if (t !== null && (nextRunAt === null || t < nextRunAt)) nextRunAt = t;
      }
    }
    return { jobs, nextRunAt };
  }

  /**
   * Several queues: each queue's first `limit` jobs (an index walk each), merged and cut to
   * `limit` in claim order. A plain `queue IN (…)` would have to sort every waiting job of
   * those queues, since the index order holds only within one queue.
   */
  #claimStatement(queueCount: number): StatementSync {
    let stmt = this.#claimMany.get(queueCount);
    if (stmt === undefined) {
      // ?5 limit, ?6… queue ids
      const parts: string[] = [];
      for (let i = 0; i < queueCount; i++) {
        parts.push(
          `SELECT seq, priority, run_at FROM (SELECT seq, priority, run_at FROM jobs WHERE queue = ?${6 + i} AND state = 0 ${CLAIM_ORDER} LIMIT ?5)`,
        );
      }
      stmt = prepare(
        this.#ctx.db,
        `${SET_ACTIVE} WHERE seq IN (SELECT seq FROM (${parts.join(' UNION ALL ')}) ${CLAIM_ORDER} LIMIT ?5) RETURNING ${JOB_COLUMNS}`,
        true,
      );
      this.#claimMany.set(queueCount, stmt);
    }
    return stmt;
  }
}
