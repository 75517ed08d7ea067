/**
 * PostgreSQL for tests: every store gets a schema of its own (so tests and test files never
 * see each other's jobs, and may run in parallel), dropped again in cleanup.
 *
 * The server comes from DATABASE_URL (default postgres://root@127.0.0.1:5432/test). If it
 * cannot be reached, every test that needs it FAILS with a message saying so: these tests
 * are never skipped silently.
 */
import { after } from 'node:test';
import pg from 'pg';
import { openPostgresStore, type PostgresStore } from '../../src/stores/postgres/index.ts';

export const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';

let counter = 0;

/** A fresh schema name, unique across processes and runs: cv_test_<pid>_<counter>_<random>. */
export function uniqueSchema(): string {
  return `cv_test_${process.pid}_${++counter}_${Math.random().toString(36).slice(2, 8)}`;
}

let admin: pg.Pool | undefined;

function adminPool(): pg.Pool {
  if (admin === undefined) {
    admin = new pg.Pool({ connectionString: DATABASE_URL, max: 2, allowExitOnIdle: true, application_name: 'conveyor-tests' });
    admin.on('error', () => undefined);
  }
  return admin;
}

after(async () => {
  const pool = admin;
  admin = undefined;
  await pool?.end();
});

function unreachable(err: unknown): Error {
  const redacted = DATABASE_URL.replace(/\/\/([^:/@]*):([^@/]*)@/, '//$1:***@');
  return new Error(
    `PostgreSQL is not reachable at ${redacted} (set DATABASE_URL, or start the server: ` +
      `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start): ${err instanceof Error ? err.message : String(err)}`,
    { cause: err },
  );
}

/** Runs SQL as the test administrator (outside any store). */
export async function adminQuery<R extends pg.QueryResultRow = pg.QueryResultRow>(sql: string, values: unknown[] = []): Promise<R[]> {
  try {
    return (await adminPool().query<R>(sql, values)).rows;
  } catch (err) {
    const code = (err as { code?: unknown }).code;
    if (typeof code === 'string' && /^(ECONN|ENOTFOUND|EAI_|ETIMEDOUT|57P0|08)/.test(code)) throw unreachable(err);
    throw err;
  }
}

export async function dropSchema(schema: string): Promise<void> {
  await adminQuery(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
}

export interface PgStoreHandle {
  readonly store: PostgresStore;
  readonly schema: string;
  readonly cleanup: () => Promise<void>;
}

/** A migrated store on a fresh schema; cleanup closes it and drops the schema. */
export async function makePgStore(options: { schema?: string; poolSize?: number; url?: string } = {}): Promise<PgStoreHandle> {
  const schema = options.schema ?? uniqueSchema();
  let store: PostgresStore;
  try {
    store = await openPostgresStore({
      url: options.url ?? DATABASE_URL,
      schema,
      ...(options.poolSize === undefined ? {} : { poolSize: options.poolSize }),
    });
  } catch (err) {
    if ((err as { code?: unknown }).code === 'STORE_UNAVAILABLE') throw unreachable(err);
    throw err;
  }
  return {
    store,
    schema,
    cleanup: async () => {
      try {
        await store.close();
      } finally {
        await dropSchema(schema);
      }
    },
  };
}
