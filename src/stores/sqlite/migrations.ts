/**
 * Schema migrations for the SQLite store.
 *
 * The schema version lives in `PRAGMA user_version` (a header field, no extra table).
 * Migrations are applied inside BEGIN IMMEDIATE and the version is re-read after the
 * write lock is taken, so several processes opening the same new file at once apply each
 * migration exactly once. Append new migrations to the list; never edit a shipped one.
 */
import type { DatabaseSync } from 'node:sqlite';
import { ConveyorError, StoreError } from '../../errors.ts';
import { isBusy, busyError, withLongBusyTimeout } from './connection.ts';

interface Migration {
  readonly version: number;
  readonly description: string;
  readonly sql: string;
}

/*
 * Design notes for version 1 (sizes measured with a 100-byte payload: ~175 bytes per
 * waiting job including indexes):
 *
 * - `queues` gives every queue a small integer id. Jobs store that id instead of the name,
 *   which saves the name's bytes in the row and in each index entry; queue rows are never
 *   deleted, so ids can be cached in memory forever. It also holds the persisted pause flag.
 * - `jobs.seq` must never hand a deleted job's number to a new job (a numeric public id
 *   must never name two different jobs over time). AUTOINCREMENT would guarantee that but
 *   rewrites `sqlite_sequence` on every insert, about a fifth of a lone add's cost. Instead
 *   the plain rowid rule (new seq = largest seq + 1) is kept safe by never letting the
 *   largest seq go backwards: when a delete removes the highest row, a tombstone row
 *   (queue 0, state -1, see high-water.ts) takes its place. Queue 0 never exists and
 *   state -1 is in no partial index, so tombstones are invisible to every query.
 * - `key` is the caller-chosen id. The unique index leads with `key` (not `queue`) so that
 *   lease acknowledgements, which carry only id and token, can find a keyed job by key.
 * - Partial indexes, one per access path, so each job sits only in the index of its state:
 *     jobs_claim    waiting jobs in claim order (priority DESC, run_at, seq)
 *     jobs_delayed  delayed jobs by due time, for promotion and `nextRunAt`
 *     jobs_leases   active jobs by lease expiry, for stall recovery
 *     jobs_finished finished jobs by insertion order, for listing, counting and cleaning
 *   A waiting job therefore pays for exactly one index entry, and listing/counting of
 *   waiting, delayed and active jobs uses the claim, delayed and lease indexes.
 *   Queries must repeat the partial index's WHERE term literally for SQLite to use it.
 * - Logs live in their own table so adding a line never rewrites the job row.
 */
const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    description: 'jobs, queues and job_logs',
    sql: `
      CREATE TABLE queues (
        id     INTEGER PRIMARY KEY,
        name   TEXT NOT NULL UNIQUE,
        paused INTEGER NOT NULL DEFAULT 0
      );

      CREATE TABLE jobs (
        seq           INTEGER PRIMARY KEY,
        queue         INTEGER NOT NULL,
        key           TEXT,
        name          TEXT NOT NULL,
        data          TEXT NOT NULL,
        opts          TEXT,
        state         INTEGER NOT NULL,
        priority      INTEGER NOT NULL,
        attempts_made INTEGER NOT NULL DEFAULT 0,
        max_attempts  INTEGER NOT NULL,
        stalls        INTEGER NOT NULL DEFAULT 0,
        run_at        INTEGER NOT NULL,
        created_at    INTEGER NOT NULL,
        lease_ms      INTEGER,
        started_at    INTEGER,
        finished_at   INTEGER,
        lease_owner   TEXT,
        lease_token   TEXT,
        lease_until   INTEGER,
        progress      TEXT,
        result        TEXT,
        errors        TEXT
      );

      CREATE UNIQUE INDEX jobs_key ON jobs (key, queue) WHERE key IS NOT NULL;
      CREATE INDEX jobs_claim ON jobs (queue, priority DESC, run_at, seq) WHERE state = 0;
      CREATE INDEX jobs_delayed ON jobs (queue, run_at) WHERE state = 2;
      CREATE INDEX jobs_leases ON jobs (lease_until) WHERE state = 1;
      CREATE INDEX jobs_finished ON jobs (queue, state, seq) WHERE state >= 3;
      CREATE INDEX jobs_tombstones ON jobs (seq) WHERE state = -1;

      CREATE TABLE job_logs (
        id      INTEGER PRIMARY KEY,
        job_seq INTEGER NOT NULL,
        at      INTEGER NOT NULL,
        message TEXT NOT NULL
      );
      CREATE INDEX job_logs_job ON job_logs (job_seq, id);
    `,
  },
  {
    version: 2,
    description: 'events, api_keys and workers: the event log, the server\'s keys and the worker registry',
    // events: one row per operation and queue (see StoredEvent in the contract); `jobs` is
    // a JSON array of items (runs of consecutive generated ids folded, see events.ts). seq is the rowid without AUTOINCREMENT, so pruning must always
    // keep the newest event: were the table emptied, seq would start again from 1 and live
    // readers would skip events below the seq they last saw.
    // api_keys: only the SHA-256 of each secret. workers: one row per live worker.
    sql: `
      CREATE TABLE events (
        seq   INTEGER PRIMARY KEY,
        at    INTEGER NOT NULL,
        queue TEXT NOT NULL,
        type  TEXT NOT NULL,
        jobs  TEXT NOT NULL,
        count INTEGER
      );
      CREATE TABLE api_keys (
        id         TEXT PRIMARY KEY,
        name       TEXT NOT NULL,
        scopes     TEXT NOT NULL,
        hash       TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER,
        revoked_at INTEGER
      ) WITHOUT ROWID;
      CREATE TABLE workers (
        id            TEXT PRIMARY KEY,
        kind          TEXT NOT NULL,
        host          TEXT NOT NULL,
        pid           INTEGER NOT NULL,
        queues        TEXT NOT NULL,
        concurrency   INTEGER NOT NULL,
        active        INTEGER NOT NULL,
        started_at    INTEGER NOT NULL,
        last_seen_at  INTEGER NOT NULL,
        last_claim_at INTEGER,
        meta          TEXT
      ) WITHOUT ROWID;
    `,
  },
];

export const SCHEMA_VERSION = MIGRATIONS[MIGRATIONS.length - 1]?.version ?? 0;

function readVersion(db: DatabaseSync): number {
  const row = db.prepare('PRAGMA user_version').get() as { user_version: number } | undefined;
  return row?.user_version ?? 0;
}

function tooNew(version: number): StoreError {
  return new StoreError(
    'STORE_SCHEMA',
    `the SQLite database is at schema version ${version}, newer than this version of conveyor understands (${SCHEMA_VERSION}); upgrade conveyor`,
    { operation: 'migrate', details: { found: version, supported: SCHEMA_VERSION } },
  );
}

/**
 * Brings the schema up to SCHEMA_VERSION. Idempotent and safe to run from several processes
 * at once. Blocks for up to `busyTimeoutMs` if another process holds the write lock: this
 * runs once at startup, where a synchronous wait is acceptable.
 */
export function migrate(db: DatabaseSync, busyTimeoutMs: number): void {
  try {
    migrateUnchecked(db, busyTimeoutMs);
  } catch (err) {
    if (err instanceof ConveyorError) throw err;
    if (isBusy(err)) throw busyError('migrate', err);
    throw new StoreError('STORE_SCHEMA', `SQLite schema migration failed: ${String(err)}`, { operation: 'migrate', cause: err });
  }
}

function migrateUnchecked(db: DatabaseSync, busyTimeoutMs: number): void {
  const current = readVersion(db);
  if (current > SCHEMA_VERSION) throw tooNew(current);
  if (current === SCHEMA_VERSION) return;

  withLongBusyTimeout(db, busyTimeoutMs, () => {
    db.exec('BEGIN IMMEDIATE');
    try {
      // Another process may have migrated while we waited for the lock.
      const locked = readVersion(db);
      if (locked > SCHEMA_VERSION) throw tooNew(locked);
      for (const m of MIGRATIONS) {
        if (m.version <= locked) continue;
        try {
          db.exec(m.sql);
        } catch (err) {
          throw new StoreError('STORE_SCHEMA', `schema migration ${m.version} (${m.description}) failed: ${String(err)}`, {
            operation: 'migrate',
            cause: err,
          });
        }
        db.exec(`PRAGMA user_version = ${m.version}`);
      }
      db.exec('COMMIT');
    } catch (err) {
      if (db.isTransaction) db.exec('ROLLBACK');
      throw err;
    }
  });
}
