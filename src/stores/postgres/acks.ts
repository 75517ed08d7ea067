/**
 * The worker's writes after a claim: complete, fail, extend, release, progress, logs, and
 * stall recovery.
 *
 * Every batch call is ONE statement: the items travel as arrays, `unnest` turns them into
 * a relation `v`, and the UPDATE/DELETE joins it (`… FROM unnest(…) AS v(…) WHERE j.id =
 * v.id AND j.state = active AND j.lease_token = v.token`). That join is the fence: an item
 * applies only while the job is still active under the token it was claimed with, atomically
 * with the write, and RETURNING tells which items applied; the rest are answered 'stale'
 * in input order. A job that finishes moves from `jobs` to `jobs_done` in the same
 * statement (`WITH moved AS (DELETE … RETURNING …) INSERT …`).
 *
 * Each statement that moves jobs also appends its event (completed, failed, released,
 * stalled, progress) from the rows it changed, in the same statement (see events.ts).
 *
 * Items carry no queue: the token names the row (`<random>.<id>`, see tokenSeq), so the
 * primary key finds it, and the public id is checked too. Two items with the same id and
 * token are sent once; as if applied one after the other, the first gets the outcome and
 * the repeat is stale (for extendLeases both are applied: extending twice is fine).
 */
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
  StoreSignal,
} from '../../store/contract.ts';
import { queueIdSql, type StoreContext } from './context.ts';
import { appendEventsSql, oneItemJobs } from './events.ts';
import { appendErrorSql, boolArray, idCondition, intArray, num, STATE, textArray, tokenSeq } from './rows.ts';

const APPLIED = Object.freeze({ status: 'applied' as const });
const STALE = Object.freeze({ status: 'stale' as const });
const NOT_FOUND = Object.freeze({ status: 'not_found' as const });
const CHANGED: StoreSignal = Object.freeze({ type: 'changed' as const });

const CLEAR_LEASE = 'lease_owner = NULL, lease_token = NULL, lease_until = NULL';
/**
 * The fence: still active, under this token, and the id the caller named.
 *
 * `lease_token` is set exactly while a job is active (the claim sets it; every way out of
 * `active` either clears it or moves the row to jobs_done), so matching the token is the
 * state check. There is deliberately no `j.state = 1` term: with it the planner may read
 * the whole jobs_leases partial index (every active job of every worker) and hash-join it,
 * because the index predicate matches; without it the only path is the primary key, one
 * probe per item, whatever the number of active jobs. Measured with 30,000 active jobs:
 * 135 µs of server CPU per completed job with the term, 21 µs without.
 */
const LEASED_BY_V = 'j.id = v.id AND j.lease_token = v.token AND coalesce(j.key, j.id::text) = v.pub';

/**
 * Items with a well-formed token, deduplicated, as column arrays. The statements number the
 * sent rows (`WITH ORDINALITY`) and answer with those numbers, so an answer maps straight
 * back to its item: no id/token strings are echoed or looked up.
 */
interface Batch {
  readonly ids: number[];
  readonly pubs: string[];
  readonly tokens: string[];
  /** Index of the item each sent row stands for (row number - 1 → item). */
  readonly itemOf: number[];
  /** Repeats of an earlier item (same id and token): [item index, row it repeats]. */
  readonly repeats: Array<readonly [number, number]>;
}

function batchOf(items: readonly LeaseRef[]): Batch {
  const batch: Batch = { ids: [], pubs: [], tokens: [], itemOf: [], repeats: [] };
  // Ids repeat only when a caller sends the same lease twice; the first row with an id is
  // remembered, and only then are the rows after it searched for the same token.
  const firstRow = new Map<number, number>();
  for (let i = 0; i < items.length; i++) {
    const item = items[i]!;
    const seq = tokenSeq(item.token);
    if (seq === null) continue;
    const first = firstRow.get(seq);
    if (first === undefined) firstRow.set(seq, batch.ids.length);
    else {
      let same = -1;
      for (let r = first; r < batch.ids.length; r++) {
        if (batch.ids[r] === seq && batch.tokens[r] === item.token) {
          same = r;
          break;
        }
      }
      if (same >= 0) {
        batch.repeats.push([i, same]);
        continue;
      }
    }
    batch.ids.push(seq);
    batch.pubs.push(item.id);
    batch.tokens.push(item.token);
    batch.itemOf.push(i);
  }
  return batch;
}

export class Acks {
  readonly #ctx: StoreContext;
  readonly #complete: string;
  readonly #fail: string;
  readonly #extend: string;
  readonly #release: string;
  readonly #recoverAll: string;
  readonly #recoverSome: string;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { t } = ctx;
    const doneInsert = `INSERT INTO ${t.done} (id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, state, finished_at, result, errors)`;
    const movedReturning = 'j.id, j.queue, j.key, j.name, j.data, j.opts, j.priority, j.attempts_made, j.max_attempts, j.stalls, j.run_at, j.created_at, j.lease_ms, j.started_at, j.progress, j.errors';

    // $1 ids, $2 public ids, $3 tokens, $4 results, $5 remove flags, $6 now
    this.#complete = `
      WITH v AS (
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::boolean[]) WITH ORDINALITY AS v(id, pub, token, result, remove, ord)
      ),
      moved AS (
        DELETE FROM ${t.jobs} j USING v WHERE ${LEASED_BY_V}
        RETURNING ${movedReturning}, v.ord AS ack_ord, v.result AS ack_result, v.remove AS ack_remove
      ),
      kept AS (
        ${doneInsert}
        SELECT id, queue, key, name, data, opts, priority, attempts_made + 1, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress,
               ${STATE.completed}, $6::bigint, ack_result, errors
        FROM moved WHERE NOT ack_remove
      ),
      removed_logs AS (
        DELETE FROM ${t.logs} WHERE job_id IN (SELECT id FROM moved WHERE ack_remove)
      ),
      ev AS (${appendEventsSql(t, {
        at: '$6::bigint',
        type: 'completed',
        from: 'moved',
        fields: { attempt: 'attempts_made + 1', durationMs: 'coalesce($6::bigint - started_at, 0)' },
        queue: { id: 'queue' },
      })})
      SELECT ack_ord, queue FROM moved`;

    // $1 ids, $2 public ids, $3 tokens, $4 error JSON, $5 retry_at (null: final), $6 remove flags, $7 now,
    // $8 error messages as JSON strings (for the event)
    this.#fail = `
      WITH v AS (
        SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::boolean[], $8::text[])
          WITH ORDINALITY AS v(id, pub, token, error, retry_at, remove, message, ord)
      ),
      retried AS (
        UPDATE ${t.jobs} j SET
          state = CASE WHEN v.retry_at > $7::bigint THEN ${STATE.delayed} ELSE ${STATE.waiting} END,
          run_at = v.retry_at,
          attempts_made = j.attempts_made + 1,
          errors = ${appendErrorSql('j.errors', 'v.error')},
          ${CLEAR_LEASE}
        FROM v WHERE v.retry_at IS NOT NULL AND ${LEASED_BY_V}
        RETURNING v.ord AS ack_ord, j.queue, j.state, j.id, j.key, j.attempts_made, j.started_at, v.message
      ),
      moved AS (
        DELETE FROM ${t.jobs} j USING v WHERE v.retry_at IS NULL AND ${LEASED_BY_V}
        RETURNING ${movedReturning}, v.ord AS ack_ord, v.error AS ack_error, v.remove AS ack_remove, v.message
      ),
      kept AS (
        ${doneInsert}
        SELECT id, queue, key, name, data, opts, priority, attempts_made + 1, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress,
               ${STATE.failed}, $7::bigint, NULL, ${appendErrorSql('errors', 'ack_error')}
        FROM moved WHERE NOT ack_remove
      ),
      removed_logs AS (
        DELETE FROM ${t.logs} WHERE job_id IN (SELECT id FROM moved WHERE ack_remove)
      ),
      failed AS (
        SELECT queue, id, key, attempts_made AS attempt, started_at, message, state FROM retried
        UNION ALL
        SELECT queue, id, key, attempts_made + 1, started_at, message, ${STATE.failed}::smallint FROM moved
      ),
      ev AS (${appendEventsSql(t, {
        at: '$7::bigint',
        type: 'failed',
        from: 'failed',
        fields: { attempt: 'attempt', durationMs: 'coalesce($7::bigint - started_at, 0)', error: 'message::json', state: 'state' },
        queue: { id: 'queue' },
      })})
      SELECT ack_ord, queue, state FROM retried
      UNION ALL SELECT ack_ord, queue, ${STATE.failed}::smallint FROM moved`;

    // $1 ids, $2 public ids, $3 tokens, $4 now, $5 default lease ms
    this.#extend = `
      UPDATE ${t.jobs} j SET lease_until = $4::bigint + coalesce(j.lease_ms, $5::bigint)
      FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS v(id, pub, token, ord)
      WHERE ${LEASED_BY_V}
      RETURNING v.ord, j.lease_until`;

    // $1 ids, $2 public ids, $3 tokens, $4 now. run_at is kept: a released job keeps its place in line.
    this.#release = `
      WITH released AS (
        UPDATE ${t.jobs} j SET state = ${STATE.waiting}, ${CLEAR_LEASE}
        FROM unnest($1::bigint[], $2::text[], $3::text[]) WITH ORDINALITY AS v(id, pub, token, ord)
        WHERE ${LEASED_BY_V}
        RETURNING v.ord, j.queue, j.id, j.key
      ),
      ev AS (${appendEventsSql(t, {
        at: '$4::bigint',
        type: 'released',
        from: 'released',
        queue: { id: 'queue' },
      })})
      SELECT ord, queue FROM released`;

    // $1 now, $2 maxStalls, $3 limit, $4 message, $5 queue names (filtered variant only)
    const recover = (filter: string): string => `
      WITH c AS (
        SELECT id FROM ${t.jobs}
        WHERE state = ${STATE.active} AND lease_until < $1::bigint ${filter}
        ORDER BY lease_until LIMIT $3 FOR UPDATE SKIP LOCKED
      ),
      back AS (
        UPDATE ${t.jobs} j SET state = ${STATE.waiting}, stalls = j.stalls + 1, ${CLEAR_LEASE}
        WHERE j.id IN (SELECT id FROM c) AND j.stalls + 1 <= $2::int
        RETURNING j.id, j.key, j.queue
      ),
      moved AS (
        DELETE FROM ${t.jobs} j WHERE j.id IN (SELECT id FROM c) AND j.stalls + 1 > $2::int
        RETURNING ${movedReturning}
      ),
      kept AS (
        ${doneInsert}
        SELECT id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls + 1, run_at, created_at, lease_ms, started_at, progress,
               ${STATE.failed}, $1::bigint, NULL,
               ${appendErrorSql('errors', "json_build_object('message', $4::text, 'at', $1::bigint, 'attempt', attempts_made + 1, 'reason', 'stalled')::text")}
        FROM moved
      ),
      r AS (
        SELECT id, key, queue, ${STATE.waiting} AS state FROM back
        UNION ALL SELECT id, key, queue, ${STATE.failed} FROM moved
      ),
      ev AS (${appendEventsSql(t, {
        at: '$1::bigint',
        type: 'stalled',
        from: 'r',
        fields: { state: 'state' },
        queue: { id: 'queue' },
      })})
      SELECT r.id, r.key, q.name, r.state FROM r JOIN ${t.queues} q ON q.id = r.queue`;
    this.#recoverAll = recover('');
    this.#recoverSome = recover(`AND queue IN (SELECT id FROM ${t.queues} WHERE name = ANY($5::text[]))`);
  }

  async complete(params: CompleteParams): Promise<{ outcomes: LeaseOutcome[]; signals: StoreSignal[] }> {
    const { items } = params;
    const batch = batchOf(items);
    const outcomes = new Array<LeaseOutcome>(items.length).fill(STALE);
    const signals: StoreSignal[] = [];
    if (batch.ids.length === 0) return { outcomes, signals };
    const results: (string | null)[] = [];
    const removes: boolean[] = [];
    for (const i of batch.itemOf) {
      results.push(items[i]!.result);
      removes.push(items[i]!.remove);
    }
    const rows = (await this.#ctx.db.arrays(this.#complete, [intArray(batch.ids), textArray(batch.pubs), textArray(batch.tokens), textArray(results), boolArray(removes), params.now])) as [number, number][];
    const names = await this.#queueNames(rows, 1);
    for (const row of rows) {
      const i = batch.itemOf[num(row[0]) - 1]!;
      outcomes[i] = APPLIED;
      const queue = names.get(row[1]);
      signals.push(queue === undefined ? CHANGED : { type: 'finished', queue, id: items[i]!.id, state: 'completed' });
    }
    return { outcomes, signals };
  }

  async fail(params: FailParams): Promise<{ outcomes: FailOutcome[]; signals: StoreSignal[] }> {
    const { items, now } = params;
    const batch = batchOf(items);
    const outcomes = new Array<FailOutcome>(items.length).fill(STALE);
    const signals: StoreSignal[] = [];
    if (batch.ids.length === 0) return { outcomes, signals };
    const errors: string[] = [];
    const messages: string[] = [];
    const retryAts: (number | null)[] = [];
    const removes: boolean[] = [];
    for (const i of batch.itemOf) {
      const item = items[i]!;
      errors.push(JSON.stringify(item.error));
      messages.push(JSON.stringify(String(item.error.message)));
      retryAts.push(item.retryAt);
      removes.push(item.retryAt === null && item.remove);
    }
    const rows = (await this.#ctx.db.arrays(this.#fail, [intArray(batch.ids), textArray(batch.pubs), textArray(batch.tokens), textArray(errors), intArray(retryAts), boolArray(removes), now, textArray(messages)])) as [number, number, number][];
    const names = await this.#queueNames(rows, 1);
    for (const [ord, queueId, stateCode] of rows) {
      const i = batch.itemOf[num(ord) - 1]!;
      const item = items[i]!;
      const queue = names.get(queueId);
      const state = stateCode === STATE.failed ? 'failed' : stateCode === STATE.delayed ? 'delayed' : 'waiting';
      outcomes[i] = { status: 'applied', state };
      signals.push(
        queue === undefined
          ? CHANGED
          : item.retryAt === null
            ? { type: 'finished', queue, id: item.id, state: 'failed' }
            : { type: 'enqueued', queue, runAt: item.retryAt },
      );
    }
    return { outcomes, signals };
  }

  async extend(params: ExtendParams): Promise<ExtendOutcome[]> {
    const { items } = params;
    const batch = batchOf(items);
    const outcomes = new Array<ExtendOutcome>(items.length).fill(STALE);
    if (batch.ids.length === 0) return outcomes;
    const rows = (await this.#ctx.db.arrays(this.#extend, [intArray(batch.ids), textArray(batch.pubs), textArray(batch.tokens), params.now, params.leaseMs])) as [number, number][];
    const expiresAt = new Array<number | undefined>(batch.ids.length);
    for (const [ord, leaseUntil] of rows) expiresAt[num(ord) - 1] = num(leaseUntil);
    for (let r = 0; r < batch.ids.length; r++) {
      const until = expiresAt[r];
      if (until !== undefined) outcomes[batch.itemOf[r]!] = { status: 'applied', expiresAt: until };
    }
    // Extending twice is fine: a repeat is applied with its row, if it names the same public id.
    for (const [i, r] of batch.repeats) {
      const until = expiresAt[r];
      if (until !== undefined && batch.pubs[r] === items[i]!.id) outcomes[i] = { status: 'applied', expiresAt: until };
    }
    return outcomes;
  }

  /** Claimed-but-never-started jobs go back to waiting with attempts and stalls unchanged. */
  async release(params: { readonly items: readonly LeaseRef[]; readonly now: number }): Promise<{ outcomes: LeaseOutcome[]; signals: StoreSignal[] }> {
    const { items } = params;
    const batch = batchOf(items);
    const outcomes = new Array<LeaseOutcome>(items.length).fill(STALE);
    const signals: StoreSignal[] = [];
    if (batch.ids.length === 0) return { outcomes, signals };
    const rows = (await this.#ctx.db.arrays(this.#release, [intArray(batch.ids), textArray(batch.pubs), textArray(batch.tokens), params.now])) as [number, number][];
    const names = await this.#queueNames(rows, 1);
    for (const [ord] of rows) outcomes[batch.itemOf[num(ord) - 1]!] = APPLIED;
    for (const queue of new Set(names.values())) signals.push({ type: 'enqueued', queue, runAt: params.now });
    if (names.size < new Set(rows.map((r) => r[1])).size) signals.push(CHANGED);
    return { outcomes, signals };
  }

  /**
   * Names of the queue ids in column `col` of `rows`, from the registry (which the claims
   * of this store fill); ids it has not seen (a job claimed through another store) are
   * looked up, one statement for all. An id whose name cannot be had is left out.
   */
  async #queueNames(rows: readonly (readonly unknown[])[], col: number): Promise<Map<unknown, string>> {
    const names = new Map<unknown, string>();
    let missing: number[] | undefined;
    for (const row of rows) {
      const id = row[col];
      if (names.has(id)) continue;
      const name = this.#ctx.queues.nameOf(num(id));
      if (name === undefined) (missing ??= []).push(num(id));
      else names.set(id, name);
    }
    if (missing !== undefined) {
      // The write has committed by now: a failed lookup must not fail (and so repeat) it.
      // Its signals then say only that something changed (signals are hints).
      await this.#ctx.queues.names(missing).catch(() => undefined);
      for (const id of missing) {
        const name = this.#ctx.queues.nameOf(id);
        if (name !== undefined) names.set(id, name);
      }
    }
    return names;
  }

  /**
   * Expired leases → waiting (stalls + 1, attempts unchanged: the attempt never finished),
   * or → failed with a `stalled` AttemptError once stalls exceed maxStalls. Rows another
   * recoverer has locked are skipped, so many workers recovering at once is harmless.
   */
  async recover(params: RecoverParams): Promise<{ recovered: RecoveredJob[]; signals: StoreSignal[] }> {
    const signals: StoreSignal[] = [];
    if (params.limit <= 0 || (params.queues !== undefined && params.queues.length === 0)) return { recovered: [], signals };
    const message = `job stalled more than ${params.maxStalls} times`;
    const base = [params.now, params.maxStalls, params.limit, message];
    const rows = (
      params.queues === undefined
        ? await this.#ctx.db.arrays(this.#recoverAll, base)
        : await this.#ctx.db.arrays(this.#recoverSome, [...base, [...params.queues]])
    ) as [number, string | null, string, number][];
    rows.sort((a, b) => num(a[0]) - num(b[0]));
    const recovered = rows.map(([id, key, queue, stateCode]): RecoveredJob => {
      const publicId = key ?? String(num(id));
      const state = stateCode === STATE.failed ? 'failed' : 'waiting';
      signals.push(state === 'failed' ? { type: 'finished', queue, id: publicId, state } : { type: 'enqueued', queue, runAt: params.now });
      return { id: publicId, queue, state };
    });
    return { recovered, signals };
  }

  /** With a token: only while that lease is current. Without: any job, live or finished. */
  async updateProgress(params: ProgressParams): Promise<JobWriteOutcome> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    // $1 queue name, $2 id, $3 progress, $4 token (null: none), $5 the event's time, $6 the
    // `progress` event's `jobs` text. ProgressParams carry no `now`: the event is stamped with this
    // process's clock.
    const sql = `
      WITH live AS (
        UPDATE ${t.jobs} SET progress = $3
        WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND ($4::text IS NULL OR (state = ${STATE.active} AND lease_token = $4::text))
        RETURNING 1
      ),
      fin AS (
        UPDATE ${t.done} SET progress = $3
        WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND $4::text IS NULL
        RETURNING 1
      ),
      ev AS (
        INSERT INTO ${t.events} (at, queue, type, jobs)
        SELECT $5::bigint, $1::text, 'progress', $6::text WHERE EXISTS (SELECT 1 FROM live) OR EXISTS (SELECT 1 FROM fin)
      )
      SELECT (SELECT count(*) FROM live) + (SELECT count(*) FROM fin) AS applied,
             EXISTS (SELECT 1 FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')})
             OR EXISTS (SELECT 1 FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}) AS found`;
    const item = oneItemJobs(params.id, { progress: params.progress });
    return this.#jobWrite(params.token, () =>
      this.#ctx.db.rows<{ applied: number; found: boolean }>(sql, [params.queue, id.value, params.progress, params.token ?? null, Date.now(), item]),
    );
  }

  async addLogs(params: AddLogsParams): Promise<JobWriteOutcome> {
    const { t } = this.#ctx;
    const id = idCondition(params.id, '$2');
    // $1 queue name, $2 id, $3 token (null: none), $4 ats, $5 messages. FOR SHARE keeps the
    // job from being deleted (and its logs with it) before the new lines are in.
    const sql = `
      WITH l AS (
        SELECT id FROM ${t.jobs}
        WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND ($3::text IS NULL OR (state = ${STATE.active} AND lease_token = $3::text))
        FOR SHARE
      ),
      d AS (
        SELECT id FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')} AND $3::text IS NULL FOR SHARE
      ),
      target AS (SELECT id FROM l UNION ALL SELECT id FROM d),
      ins AS (
        INSERT INTO ${t.logs} (job_id, at, message)
        SELECT target.id, e.at, e.message FROM target CROSS JOIN unnest($4::bigint[], $5::text[]) WITH ORDINALITY AS e(at, message, ord)
        ORDER BY e.ord
      )
      SELECT (SELECT count(*) FROM target) AS applied,
             EXISTS (SELECT 1 FROM ${t.jobs} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')})
             OR EXISTS (SELECT 1 FROM ${t.done} WHERE ${id.sql} AND queue = ${queueIdSql(t, '$1')}) AS found`;
    const ats = params.entries.map((e) => e.at);
    // PostgreSQL text cannot hold NUL; a log line is free text, so it is kept with U+FFFD in its place.
    const messages = params.entries.map((e) => (e.message.includes('\u0000') ? e.message.replaceAll('\u0000', '\ufffd') : e.message));
    return this.#jobWrite(params.token, () => this.#ctx.db.rows<{ applied: number; found: boolean }>(sql, [params.queue, id.value, params.token ?? null, ats, messages]));
  }

  /**
   * Judges a progress/log write. `found` is read from the statement's snapshot, so "not
   * found" is final. "Found but not applied" is stale when a token was given; without a
   * token it can only mean the job moved between tables after the snapshot was taken (the
   * UPDATE then found the old row gone), so the statement simply runs again.
   */
  async #jobWrite(token: string | undefined, run: () => Promise<{ applied: number; found: boolean }[]>): Promise<JobWriteOutcome> {
    for (let attempt = 1; ; attempt++) {
      const row = (await run())[0];
      if (row === undefined) throw new Error('job write statement returned no row');
      if (num(row.applied) > 0) return APPLIED;
      if (!row.found) return NOT_FOUND;
      if (token !== undefined || attempt >= 5) return STALE;
    }
  }
}
