/**
 * The server's API keys and the worker registry (tables `api_keys` and `workers`, migration 4).
 *
 * Cold paths, written for clarity: each operation is one statement through the store's
 * Database (prepared, retried, translated). Scopes, queues and meta are stored as JSON
 * text. Keys hold only the SHA-256 of their secret. `reportWorker`, which every worker
 * calls every few seconds, is one upsert. Listings order ids with `COLLATE "C"` (byte
 * order), so they come back in the same order as from the SQLite store whatever the
 * database's collation.
 */
import { StoreError } from '../../errors.ts';
import type { ApiKeyRecord, WorkerInfo } from '../../store/contract.ts';
import { keyFromRow, keyValues, workerFromRow, workerValues, type KeyRow, type WorkerRow } from '../../store/registry-codec.ts';
import type { StoreContext } from './context.ts';

/** In the order of keyValues and workerValues (src/store/registry-codec.ts). */
const KEY_COLUMNS = 'id, name, scopes, hash, created_at, expires_at, revoked_at';
const WORKER_COLUMNS = 'id, kind, host, pid, queues, concurrency, active, started_at, last_seen_at, last_claim_at, meta';

/** SQLSTATE 23505: unique_violation. */
function isUniqueViolation(err: unknown): boolean {
  return typeof err === 'object' && err !== null && (err as { code?: unknown }).code === '23505';
}

export class Registry {
  readonly #ctx: StoreContext;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
  }

  // ------------------------------------------------------------------- API keys

  /** Throws StoreError('CONFLICT') when a key with this id exists; nothing is written then. */
  async createApiKey(record: ApiKeyRecord): Promise<void> {
    const { db, t } = this.#ctx;
    try {
      await db.count(`INSERT INTO ${t.apiKeys} (${KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7)`, keyValues(record));
    } catch (err) {
      if (!isUniqueViolation(err)) throw err;
      throw new StoreError('CONFLICT', `an API key with id ${JSON.stringify(record.id)} already exists`, {
        operation: 'createApiKey',
        cause: err,
        details: { id: record.id },
      });
    }
  }

  async getApiKey(id: string): Promise<ApiKeyRecord | null> {
    const { db, t } = this.#ctx;
    const [row] = await db.rows<KeyRow>(`SELECT ${KEY_COLUMNS} FROM ${t.apiKeys} WHERE id = $1`, [id]);
    return row === undefined ? null : keyFromRow(row);
  }

  /** Oldest first (ties by id), revoked keys included. */
  async listApiKeys(): Promise<ApiKeyRecord[]> {
    const { db, t } = this.#ctx;
    const rows = await db.rows<KeyRow>(`SELECT ${KEY_COLUMNS} FROM ${t.apiKeys} ORDER BY created_at, id COLLATE "C"`);
    return rows.map(keyFromRow);
  }

  /** False when there is no such key or it was already revoked. */
  async revokeApiKey(id: string, now: number): Promise<boolean> {
    const { db, t } = this.#ctx;
    return (await db.count(`UPDATE ${t.apiKeys} SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, [id, now])) > 0;
  }

  // ------------------------------------------------------------ worker registry

  /** Inserts the worker's row or replaces every column of it: one statement. */
  async reportWorker(info: WorkerInfo): Promise<void> {
    const { db, t } = this.#ctx;
    await db.count(
      `INSERT INTO ${t.workers} (${WORKER_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
       ON CONFLICT (id) DO UPDATE SET
         kind = excluded.kind, host = excluded.host, pid = excluded.pid, queues = excluded.queues,
         concurrency = excluded.concurrency, active = excluded.active, started_at = excluded.started_at,
         last_seen_at = excluded.last_seen_at, last_claim_at = excluded.last_claim_at, meta = excluded.meta`,
      workerValues(info),
    );
  }

  /** Workers seen at or after `since`, by id. */
  async listWorkers(since: number): Promise<WorkerInfo[]> {
    const { db, t } = this.#ctx;
    const rows = await db.rows<WorkerRow>(`SELECT ${WORKER_COLUMNS} FROM ${t.workers} WHERE last_seen_at >= $1 ORDER BY id COLLATE "C"`, [since]);
    return rows.map(workerFromRow);
  }

  async removeWorker(id: string): Promise<void> {
    const { db, t } = this.#ctx;
    await db.count(`DELETE FROM ${t.workers} WHERE id = $1`, [id]);
  }

  /** Deletes workers last seen before `before`; returns how many went. */
  async pruneWorkers(before: number): Promise<number> {
    const { db, t } = this.#ctx;
    return db.count(`DELETE FROM ${t.workers} WHERE last_seen_at < $1`, [before]);
  }
}
