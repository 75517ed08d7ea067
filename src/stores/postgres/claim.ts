/**
 * claim: the worker's hot path, ONE statement (so one round trip, atomic by itself):
 *
 *   q        the asked-for queues that exist and are not paused (read fresh every time, so
 *            a pause by any process takes effect at the next claim);
 *   waiting  per queue, the first `limit` waiting jobs in claim order, walking the
 *            jobs_claim index, locked with FOR UPDATE SKIP LOCKED: rows another claimer is
 *            taking right now are skipped rather than waited for, so concurrent claimers
 *            never block each other and never get the same job;
 *   due      per queue, the delayed jobs that are due (jobs_delayed index), locked the same
 *            way (capped, see DUE_CAP);
 *   pick     the first `limit` of both by claim order (priority DESC, run_at, id): due
 *            delayed jobs compete with waiting ones exactly as if they had been promoted;
 *   promoted due jobs that were not picked become waiting (the promotion the SQLite store
 *            does as a separate step; here it touches other rows than `claimed`, which
 *            one statement may do);
 *   claimed  the picked rows become active with a lease, RETURNING the job rows;
 *   next     the earliest runAt of a delayed job not yet due, for `nextRunAt`.
 *
 * The final SELECT is `next LEFT JOIN claimed`, so there is always one row, even when
 * nothing was claimed. RETURNING yields rows in no particular order, so they are sorted in
 * JS. Several queues keep one global order: each queue contributes its own first `limit`
 * (an index walk each) and `pick` cuts the merged list.
 *
 * Lease tokens are `<random>.<id>` (see tokenSeq in rows.ts): one random 96-bit value per
 * claim call, plus the job id, so unique per job and claim.
 */
import { randomBytes } from 'node:crypto';
import type { ClaimedJob, ClaimParams, ClaimResult } from '../../store/contract.ts';
import type { StoreContext } from './context.ts';
import { compareClaimOrder, liveColumns, STATE, toJobRecord } from './rows.ts';

/**
 * At most this many due delayed jobs are taken up per claim (more only if `limit` is
 * larger). A backlog of due jobs bigger than that (say after a long outage) is promoted
 * over several claims; until it is, claim order among those jobs is by due time rather
 * than priority.
 */
const DUE_CAP = 10_000;

const none = (): ClaimResult => ({ jobs: [], nextRunAt: null });

export class Claimer {
  readonly #ctx: StoreContext;
  readonly #sql: string;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { t } = ctx;
    const order = 'ORDER BY priority DESC, run_at, id';
    // $1 queue names, $2 limit, $3 now, $4 owner, $5 random token part, $6 default lease ms, $7 due cap
    this.#sql = `
      WITH q AS (
        SELECT id, name FROM ${t.queues} WHERE name = ANY($1::text[]) AND NOT paused
      ),
      waiting AS (
        SELECT w.id, w.priority, w.run_at FROM q CROSS JOIN LATERAL (
          SELECT id, priority, run_at FROM ${t.jobs}
          WHERE queue = q.id AND state = ${STATE.waiting}
          ${order} LIMIT $2 FOR UPDATE SKIP LOCKED
        ) w
      ),
      due AS (
        SELECT d.id, d.priority, d.run_at FROM q CROSS JOIN LATERAL (
          SELECT id, priority, run_at FROM ${t.jobs}
          WHERE queue = q.id AND state = ${STATE.delayed} AND run_at <= $3::bigint
          ORDER BY run_at LIMIT $7 FOR UPDATE SKIP LOCKED
        ) d
      ),
      pick AS (
        SELECT id FROM (SELECT * FROM waiting UNION ALL SELECT * FROM due) c ${order} LIMIT $2
      ),
      promoted AS (
        UPDATE ${t.jobs} SET state = ${STATE.waiting}
        WHERE id IN (SELECT id FROM due) AND id NOT IN (SELECT id FROM pick)
      ),
      claimed AS (
        UPDATE ${t.jobs} j SET
          state = ${STATE.active},
          lease_owner = $4,
          lease_token = $5 || '.' || j.id,
          lease_until = $3::bigint + coalesce(j.lease_ms, $6::bigint),
          started_at = $3::bigint
        FROM q
        WHERE j.queue = q.id AND j.id IN (SELECT id FROM pick)
        RETURNING q.name, ${liveColumns('j')}
      ),
      next AS (
        SELECT min(x.run_at) AS t FROM q CROSS JOIN LATERAL (
          SELECT run_at FROM ${t.jobs}
          WHERE queue = q.id AND state = ${STATE.delayed} AND run_at > $3::bigint
          ORDER BY run_at LIMIT 1
        ) x
      )
      SELECT next.t, c.* FROM next LEFT JOIN claimed c ON true`;
  }

  async claim(params: ClaimParams): Promise<ClaimResult> {
    const { limit, now } = params;
    if (limit <= 0 || params.queues.length === 0) return none();
    const token = randomBytes(12).toString('base64url');
    const rows = await this.#ctx.db.arrays(this.#sql, [
      [...new Set(params.queues)],
      limit,
      now,
      params.workerId,
      token,
      params.leaseMs,
      Math.max(DUE_CAP, limit),
    ]);
    const first = rows[0];
    const nextRunAt = first === undefined || first[0] === null ? null : Number(first[0]);
    // Columns: next.t, queue name, then the job row.
    const claimed = rows.filter((r) => r[2] !== null);
    if (claimed.length > 1) claimed.sort(compareClaimOrder(2));
    const jobs = new Array<ClaimedJob>(claimed.length);
    for (let i = 0; i < claimed.length; i++) {
      const row = claimed[i]!;
      jobs[i] = toJobRecord(row, row[1] as string, 2) as ClaimedJob;
    }
    return { jobs, nextRunAt: jobs.length < limit ? nextRunAt : null };
  }
}
