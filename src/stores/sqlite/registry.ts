/**
 * The server's API keys and the worker registry (tables `api_keys` and `workers`, migration 2).
 *
 * Cold paths, written for clarity: each operation is one prepared statement. Scopes,
 * queues and meta are stored as JSON text. Keys hold only the SHA-256 of their secret.
 * `reportWorker`, which every worker calls every few seconds, is one upsert.
 */
import type { StatementSync } from 'node:sqlite';
import { StoreError } from '../../errors.ts';
import type { ApiKeyRecord, WorkerInfo } from '../../store/contract.ts';
import { keyFromRow, keyValues, workerFromRow, workerValues, type KeyRow, type WorkerRow } from '../../store/registry-codec.ts';
import type { StoreContext } from './context.ts';

/** In the order of keyValues and workerValues (src/store/registry-codec.ts). */
const KEY_COLUMNS = 'id, name, scopes, hash, created_at, expires_at, revoked_at';
const WORKER_COLUMNS = 'id, kind, host, pid, queues, concurrency, active, started_at, last_seen_at, last_claim_at, meta';

/** SQLITE_CONSTRAINT_PRIMARYKEY and SQLITE_CONSTRAINT_UNIQUE (extended result codes). */
function isUniqueViolation(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as { errcode?: unknown }).errcode;
  return code === 1555 || code === 2067;
}

export class Registry {
  readonly #ctx: StoreContext;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
  }

  #sql(sql: string): StatementSync {
    return this.#ctx.statements.get(sql);
  }

  // ------------------------------------------------------------------- API keys

  /** Throws StoreError('CONFLICT') when a key with this id exists; nothing is written then. */
  createApiKey(record: ApiKeyRecord): void {
    try {
      this.#sql(`INSERT INTO api_keys (${KEY_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)`).run(...keyValues(record));
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw new StoreError('CONFLICT', `an API key with id ${JSON.stringify(record.id)} already exists`, {
        operation: 'createApiKey',
        cause: err,
        details: { id: record.id },
      });
    }
  }

  getApiKey(id: string): ApiKeyRecord | null {
    const row = this.#sql(`SELECT ${KEY_COLUMNS} FROM api_keys WHERE id = ?`).get(id) as KeyRow | undefined;
    return row === undefined ? null : keyFromRow(row);
  }

  /** Oldest first (ties by id), revoked keys included. */
  listApiKeys(): ApiKeyRecord[] {
    const rows = this.#sql(`SELECT ${KEY_COLUMNS} FROM api_keys ORDER BY created_at, id`).all() as unknown as KeyRow[];
    return rows.map(keyFromRow);
  }

  /** False when there is no such key or it was already revoked. */
  revokeApiKey(id: string, now: number): boolean {
    const { changes } = this.#sql('UPDATE api_keys SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL').run(now, id);
    return Number(changes) > 0;
  }

  // ------------------------------------------------------------ worker registry

  /** Inserts the worker's row or replaces every column of it: one statement. */
  reportWorker(info: WorkerInfo): void {
    this.#sql(
      `INSERT INTO workers (${WORKER_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET
         kind = excluded.kind, host = excluded.host, pid = excluded.pid, queues = excluded.queues,
         concurrency = excluded.concurrency, active = excluded.active, started_at = excluded.started_at,
         last_seen_at = excluded.last_seen_at, last_claim_at = excluded.last_claim_at, meta = excluded.meta`,
    ).run(...workerValues(info));
  }

  /** Workers seen at or after `since`, by id. */
  listWorkers(since: number): WorkerInfo[] {
    const rows = this.#sql(`SELECT ${WORKER_COLUMNS} FROM workers WHERE last_seen_at >= ? ORDER BY id`).all(since) as unknown as WorkerRow[];
    return rows.map(workerFromRow);
  }

  removeWorker(id: string): void {
    this.#sql('DELETE FROM workers WHERE id = ?').run(id);
  }

  /** Deletes workers last seen before `before`; returns how many went. */
  pruneWorkers(before: number): number {
    return Number(this.#sql('DELETE FROM workers WHERE last_seen_at < ?').run(before).changes);
  }
}
