/**
 * What every operation module of the SQLite store shares: the connection, the queue id
 * cache, the signal buffer, the event log, and a cache of prepared statements.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { AttemptStarts, EventLog } from './events.ts';
import type { QueueRegistry } from './queues.ts';
import type { Signals } from './signals.ts';

/**
 * Prepared statements keyed by their SQL text. Each statement is compiled once per
 * connection; hot paths additionally keep direct references to skip the map lookup.
 */
export class StatementCache {
  readonly #db: DatabaseSync;
  readonly #cache = new Map<string, StatementSync>();

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** @param arrays return rows as arrays (see JobRow) instead of objects */
  get(sql: string, arrays = false): StatementSync {
    const cacheKey = arrays ? `[] ${sql}` : sql;
    let stmt = this.#cache.get(cacheKey);
    if (stmt === undefined) {
      stmt = prepare(this.#db, sql, arrays);
      this.#cache.set(cacheKey, stmt);
    }
    return stmt;
  }
}

/** Prepares a statement, optionally returning rows as arrays (much cheaper for wide rows). */
export function prepare(db: DatabaseSync, sql: string, arrays = false): StatementSync {
  const stmt = db.prepare(sql);
  if (arrays) stmt.setReturnArrays(true);
  return stmt;
}

export interface StoreContext {
  readonly db: DatabaseSync;
  readonly statements: StatementCache;
  readonly queues: QueueRegistry;
  readonly signals: Signals;
  /** Every write appends its events here, in its own transaction. */
  readonly events: EventLog;
  /** Claim-time facts by lease token, for the items of acks (see AttemptStarts). */
  readonly attempts: AttemptStarts;
}

/**
 * Call for every job row deleted or replaced (after the row's DELETE, in the same
 * transaction): deletes its log lines and keeps the highest seq from going backwards.
 */
export function deleteLogs(ctx: StoreContext, seq: number): void {
  ctx.statements.get('DELETE FROM job_logs WHERE job_seq = ?').run(seq);
  keepHighWater(ctx, seq);
}

/**
 * New rows get `max(seq) + 1` (no AUTOINCREMENT, see migrations.ts). If the row just deleted
 * had the highest seq, a tombstone (queue 0, state -1: in no partial index, matched by no
 * query) takes its seq, so the next job cannot reuse it; older tombstones are then dropped.
 */
function keepHighWater(ctx: StoreContext, deletedSeq: number): void {
  const top = (ctx.statements.get('SELECT max(seq) AS m FROM jobs').get() as { m: number | null }).m;
  if (top !== null && top > deletedSeq) return;
  ctx.statements
    .get("INSERT INTO jobs (seq, queue, name, data, state, priority, max_attempts, run_at, created_at) VALUES (?, 0, '', '', -1, 0, 0, 0, 0)")
    .run(deletedSeq);
  ctx.statements.get('DELETE FROM jobs WHERE state = -1 AND seq < ?').run(deletedSeq);
}
