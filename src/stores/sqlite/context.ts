/**
 * What every operation module of the SQLite store shares: the connection, the queue id
 * cache, the signal buffer, and a cache of prepared statements.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
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

  get(sql: string): StatementSync {
    let stmt = this.#cache.get(sql);
    if (stmt === undefined) {
      stmt = this.#db.prepare(sql);
      this.#cache.set(sql, stmt);
    }
    return stmt;
  }
}

export interface StoreContext {
  readonly db: DatabaseSync;
  readonly statements: StatementCache;
  readonly queues: QueueRegistry;
  readonly signals: Signals;
}

/** Deletes a job row's log lines; used wherever a job row is deleted or replaced. */
export function deleteLogs(ctx: StoreContext, seq: number): void {
  ctx.statements.get('DELETE FROM job_logs WHERE job_seq = ?').run(seq);
}
