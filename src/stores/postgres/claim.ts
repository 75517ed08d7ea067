/**
 * claim: the worker's hot path, ONE statement (so one round trip, atomic by itself): a call
 * of the schema's `claim_jobs` function (migration 2), whose single query is
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
 *   nxt      the earliest runAt of a delayed job not yet due, for `nextRunAt`.
 *
 * The statement around the call appends the claim's `active` events (one per queue) from
 * the function's rows, in the same round trip (see events.ts); the function is unchanged.
 *
 * It is a function rather than a plain statement only so that it can carry planner
 * settings (see the notes on migration 2): the index walk is the only plan, whatever the
 * table statistics say, and it is planned once per connection.
 *
 * There is always at least one row, even when nothing was claimed. RETURNING yields rows
 * in no particular order, so they are sorted in JS. Several queues keep one global order:
 * each queue contributes its own first `limit` (an index walk each) and `pick` cuts the
 * merged list. The function returns only what the caller cannot know: the state, lease,
 * started_at, finished_at and result of a claimed job follow from the arguments.
 *
 * Lease tokens are `<claim>.<id>` (see tokenSeq in rows.ts): one value per claim call (a
 * random 72-bit prefix drawn once per store, then a counter), plus the job id, so unique per
 * job and claim.
 */
import { randomBytes } from 'node:crypto';
import type { AttemptError } from '../../job.ts';
import type { ClaimedJob, ClaimParams, ClaimResult } from '../../store/contract.ts';
import type { StoreContext } from './context.ts';
import { appendEventsSql } from './events.ts';
import { decodeOpts } from './rows.ts';

/**
 * At most this many due delayed jobs are taken up per claim (more only if `limit` is
 * larger). A backlog of due jobs bigger than that (say after a long outage) is promoted
 * over several claims; until it is, claim order among those jobs is by due time rather
 * than priority.
 */
const DUE_CAP = 10_000;

const none = (): ClaimResult => ({ jobs: [], nextRunAt: null });

/** A row of claim_jobs, as an array. */
type ClaimRow = [
  nextT: number | null,
  queue: string | null,
  queueId: number | null,
  id: number,
  key: string | null,
  name: string,
  data: string,
  opts: string | null,
  priority: number,
  attemptsMade: number,
  maxAttempts: number,
  stalls: number,
  runAt: number,
  createdAt: number,
  leaseMs: number | null,
  progress: string | null,
  errors: string | null,
];

/** Claim order on claim rows: priority DESC, run_at, id. */
const byClaimOrder = (a: ClaimRow, b: ClaimRow): number => b[8] - a[8] || a[12] - b[12] || a[3] - b[3];

export class Claimer {
  readonly #ctx: StoreContext;
  readonly #sql: string;
  readonly #tokenPrefix = randomBytes(9).toString('base64url');
  #claims = 0;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { t } = ctx;
    // $1 queue names, $2 limit, $3 now, $4 owner, $5 random token part, $6 default lease ms, $7 due cap.
    // The function's rows are materialised once (`c`); the `active` events (one per queue,
    // ) are appended from them in the same statement.
    this.#sql = `
      WITH c AS (
        SELECT * FROM ${t.schema}.claim_jobs($1::text[], $2::integer, $3::bigint, $4::text, $5::text, $6::bigint, $7::integer)
      ),
      ev AS (${appendEventsSql(t, {
        at: '$3::bigint',
        type: 'active',
        from: 'c WHERE c.queue IS NOT NULL',
        fields: { attempt: 'attempts_made + 1', waitMs: 'greatest(0, $3::bigint - greatest(run_at, created_at))' },
        queue: { name: 'queue' },
      })})
      SELECT * FROM c`;
  }

  async claim(params: ClaimParams): Promise<ClaimResult> {
    const { limit, now } = params;
    if (limit <= 0 || params.queues.length === 0) return none();
    const token = `${this.#tokenPrefix}${(++this.#claims).toString(36)}`;
    const queues = params.queues.length === 1 ? params.queues : [...new Set(params.queues)];
    const rows = (await this.#ctx.db.arrays(this.#sql, [queues, limit, now, params.workerId, token, params.leaseMs, Math.max(DUE_CAP, limit)])) as ClaimRow[];
    const first = rows[0];
    const nextRunAt = first === undefined || first[0] === null ? null : Number(first[0]);
    // With nothing claimed, the one row has only next_t.
    const claimed = first === undefined || first[1] === null ? [] : rows;
    if (claimed.length > 1) claimed.sort(byClaimOrder);
    const owner = params.workerId;
    const jobs = new Array<ClaimedJob>(claimed.length);
    let lastQueueId = -1;
    for (let i = 0; i < claimed.length; i++) {
      const r = claimed[i]!;
      const queue = r[1]!;
      // Acknowledgements answer with queue ids; teach the registry the names they stand for.
      if (r[2] !== lastQueueId) {
        lastQueueId = r[2]!;
        if (this.#ctx.queues.nameOf(lastQueueId) === undefined) this.#ctx.queues.remember(queue, lastQueueId);
      }
      const id = r[3];
      const leaseMs = r[14];
      const errors = r[16];
      jobs[i] = {
        id: r[4] ?? String(id),
        queue,
        name: r[5],
        data: r[6],
        opts: decodeOpts(r[7], r[10], leaseMs),
        state: 'active',
        priority: r[8],
        attemptsMade: r[9],
        maxAttempts: r[10],
        stalls: r[11],
        runAt: r[12],
        createdAt: r[13],
        startedAt: now,
        finishedAt: null,
        lease: { owner, token: `${token}.${id}`, expiresAt: now + (leaseMs ?? params.leaseMs) },
        progress: r[15],
        result: null,
        errors: errors === null ? [] : (JSON.parse(errors) as AttemptError[]),
      };
    }
    return { jobs, nextRunAt: jobs.length < limit ? nextRunAt : null };
  }
}
