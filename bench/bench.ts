/**
 * conveyor's own benchmark: what one process gets out of a store, beside the raw speed of
 * SQLite itself measured in the same run on the same disk.
 *
 *   npm run bench                                   # everything, fresh temp SQLite file per scenario (about 1 min)
 *   node bench/bench.ts --scale 0.1                 # quick smoke run (job counts and idle window × 0.1)
 *   node bench/bench.ts --scenarios bulk,drain      # some scenarios only
 *   node bench/bench.ts --durability normal         # enqueue scenarios with one durability only
 *   node bench/bench.ts --url sqlite:///var/tmp/q.db --json /tmp/bench.json
 *   CONVEYOR_URL=sqlite:///var/tmp/q.db npm run bench
 *
 * Scenarios (every job carries the peer harness's payload `{ i, pad: 'x'.repeat(100) }`):
 *   serial      5,000 awaited `queue.add`s one after another: jobs/s, add p50/p99; beside it
 *               raw node:sqlite BEGIN IMMEDIATE + INSERT + COMMIT per row (the ceiling).
 *   concurrent  20,000 `queue.add`s with 64 in flight: jobs/s.
 *   bulk        100,000 jobs in `addBulk` batches of 1,000: jobs/s; beside it raw node:sqlite
 *               prepared INSERTs of the same JSON text into a two-column table, one
 *               transaction per 1,000 rows, same pragmas; the ratio conveyor/raw.
 *   (serial, concurrent and bulk run once with durability `normal` and once with `full`.)
 *   drain       50,000 waiting no-op jobs, one worker at concurrency 50: jobs/s until
 *               `getCounts()` reports nothing waiting, delayed or active; all completed,
 *               none failed, no handler call twice.
 *   latency     2,000 jobs sent open-loop at 200 jobs/s to an idle in-process worker
 *               (concurrency 50): enqueue → handler-start p50/p95/p99.
 *   idle        an idle worker (concurrency 50, its queue has had one job) for 20 s: Store method calls per minute
 *               (counting Proxy around the store) and SQLite statements per minute
 *               (node:sqlite StatementSync run/get/all/iterate + DatabaseSync exec, patched).
 *   storage     bytes per waiting job over 100,000 jobs: main file + WAL after
 *               `PRAGMA wal_checkpoint(TRUNCATE)` on a separate node:sqlite connection,
 *               before/after delta.
 *   recovery    2,000 jobs, 10 ms handlers; a worker in a child process (bench/child-worker.ts,
 *               concurrency 10, leaseMs 2,000) is SIGKILLed once ~200 are completed; a rescuer
 *               worker in this process (same settings) finishes the rest: ms from the kill
 *               until every job is completed, and how many jobs' handlers ran twice.
 *
 * Store: `--url`, else `CONVEYOR_URL`, else a fresh temp SQLite file per scenario, removed
 * afterwards. With a given SQLite URL every scenario uses its own queue name and the jobs it
 * created stay. Output: a markdown table on stdout (progress on stderr), `--json FILE`
 * also writes every metric as JSON. Timings are reported, never asserted.
 *
 * PostgreSQL (`--url 'postgres://root@127.0.0.1:5432/test?schema=bench_conveyor'`): the
 * URL must name a schema (`?schema=`), and that schema is DROPPED and migrated afresh before
 * every scenario, so point it at a scratch schema. Durability is the server's
 * (`synchronous_commit`, reported in the header), so the enqueue scenarios run once. What
 * changes:
 *   serial      beside it, `pgbench -n -c 1 -T 10` of a one-row INSERT of the same JSON text
 *               into a two-column table (bigserial primary key, text) in a scratch database
 *               (conveyor_bench_scratch, created if missing), run right after conveyor's
 *               serial adds: the fsync-bound ceiling of one client.
 *   bulk        beside it, raw `INSERT INTO t (data) SELECT unnest($1::text[])` of the same
 *               JSON text, 1,000 rows per statement, into the same kind of table.
 *   idle        in a database of its own (conveyor_bench_idle, dropped and created), so that
 *               pg_stat_database's xact_commit + xact_rollback of that database counts
 *               conveyor's transactions alone (read from the URL's database, 12 s settle as
 *               the peer harness does, window 30 s unless --idle-seconds); beside it every
 *               `pg` Client#query call in this process, by statement, and the Store calls.
 *   storage     sum of pg_total_relation_size of the schema's tables, before/after.
 *   crowded     (PostgreSQL only) claim speed with a million rows present, beside the same
 *               claims on empty tables, interleaved: 1,000,000 waiting jobs of another queue;
 *               1,000,000 completed jobs of the claimed queue; and the first again with the
 *               claim function's JIT allowed (what migration 3 turns off). Single-job claims,
 *               100-job claims and drains; ratios to the empty tables (see scenarioCrowded).
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync, StatementSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Conveyor } from '../src/index.ts';
import { percentiles, startRecorder } from '../src/bench/scenarios.ts';
import type { JobCounts, Store } from '../src/store/contract.ts';
import { openStore, parseStoreUrl } from '../src/store/open.ts';
import { parsePostgresUrl } from '../src/stores/postgres/connection.ts';

type Durability = 'normal' | 'full';
type Metric = number | string | boolean | null;

interface Row {
  readonly scenario: string;
  /** SQLite: normal or full; PostgreSQL: the server's synchronous_commit. */
  readonly durability: string;
  readonly jobs: number | null;
  /** The figure the scenario is about, formatted. */
  readonly headline: string;
  readonly details: string;
  readonly metrics: Record<string, Metric>;
}

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    scenarios: { type: 'string' },
    durability: { type: 'string', default: 'normal,full' },
    scale: { type: 'string', default: '1' },
    'idle-seconds': { type: 'string' },
    json: { type: 'string' },
  },
});

const SCALE = Number(args.scale);
if (!(SCALE > 0)) throw new Error(`--scale must be a positive number, got ${args.scale}`);
const n = (count: number): number => Math.max(1, Math.round(count * SCALE));
const BASE_URL = args.url ?? process.env.CONVEYOR_URL;
/** A PostgreSQL target: the URL, its schema, and a URL for the harness's own admin statements. */
const PG = ((): { url: string; schema: string; adminUrl: string; database: string } | null => {
  if (BASE_URL === undefined || parseStoreUrl(BASE_URL).kind !== 'postgres') return null;
  const parsed = parsePostgresUrl(BASE_URL);
  if (parsed.schema === undefined) {
    throw new Error('bench.ts drops and re-creates the schema of a postgres:// url before every scenario: name a scratch schema with ?schema=, e.g. ?schema=bench_conveyor');
  }
  const database = decodeURIComponent(new URL(parsed.connectionString).pathname.slice(1));
  return { url: BASE_URL, schema: parsed.schema, adminUrl: parsed.connectionString, database };
})();
const DURABILITIES = PG !== null ? (['normal'] as const) : (args.durability ?? 'normal,full').split(',').map((d) => {
  if (d !== 'normal' && d !== 'full') throw new Error(`--durability takes normal and/or full, got ${d}`);
  return d;
});
const IDLE_SECONDS = args['idle-seconds'] === undefined ? (PG !== null ? Math.max(4, 30 * SCALE) : Math.max(2, 20 * SCALE)) : Number(args['idle-seconds']);
/** PostgreSQL: the server's durability setting, shown where SQLite shows normal/full. */
let PG_DURABILITY = '';
const durabilityLabel = (d: Durability): string => (PG !== null ? PG_DURABILITY : d);
const QUEUE_SUFFIX = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const BATCH = 1000;
const WARMUP = 100;

// ----------------------------------------------------------------- shared helpers

const PAD = 'x'.repeat(100);
const payload = (i: number): { i: number; pad: string } => ({ i, pad: PAD });

const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** Runs `fn` and returns its result with the elapsed seconds. */
async function timed<T>(fn: () => T | Promise<T>): Promise<{ secs: number; value: T }> {
  const t0 = now();
  const value = await fn();
  return { secs: (now() - t0) / 1000, value };
}

/** Polls `cond` every `everyMs` until it holds; throws after `limitMs`. */
async function waitFor(cond: () => boolean | Promise<boolean>, what: string, limitMs = 120_000, everyMs = 10): Promise<void> {
  const until = now() + limitMs;
  while (!(await cond())) {
    if (now() > until) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

const log = (msg: string): void => {
  process.stderr.write(`[bench] ${msg}\n`);
};
const rate = (x: number): string => Math.round(x).toLocaleString('en-US');
const ms = (x: number): string => (x < 10 ? x.toFixed(3) : x.toFixed(1));
const round = (x: number, digits = 3): number => Math.round(x * 10 ** digits) / 10 ** digits;

// ------------------------------------------------------------------- store targets

interface Target {
  readonly url: string;
  /** The SQLite file behind the url, when there is one. */
  readonly file: string | null;
  /** A folder on the same disk for raw SQLite files and scratch files. */
  readonly scratch: string;
  readonly cleanup: () => void;
}

/** The store for one scenario: the given url, or a fresh temp SQLite file. */
function makeTarget(label: string, durability: Durability): Target {
  if (PG !== null) {
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-bench-${label}-`));
    return { url: PG.url, file: null, scratch, cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }) };
  }
  if (BASE_URL !== undefined) {
    const parsed = parseStoreUrl(BASE_URL);
    if (parsed.kind === 'sqlite' && parsed.path !== ':memory:') {
      const scratch = fs.mkdtempSync(path.join(path.dirname(parsed.path), `.conveyor-bench-${label}-`));
      return {
        url: `${BASE_URL.split('?')[0]}?durability=${durability}`,
        file: parsed.path,
        scratch,
        cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }),
      };
    }
    const scratch = fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-bench-${label}-`));
    return { url: BASE_URL, file: null, scratch, cleanup: () => fs.rmSync(scratch, { recursive: true, force: true }) };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `conveyor-bench-${label}-`));
  const file = path.join(dir, 'q.db');
  return {
    url: `sqlite://${file}${durability === 'full' ? '?durability=full' : ''}`,
    file,
    scratch: dir,
    cleanup: () => fs.rmSync(dir, { recursive: true, force: true }),
  };
}

/** A queue name of its own per scenario, so runs against a shared url do not mix. */
const queueName = (label: string): string => `bench-${label}-${QUEUE_SUFFIX}`;

async function withConveyor<T>(label: string, durability: Durability, fn: (cv: Conveyor, target: Target) => Promise<T>): Promise<T> {
  const target = makeTarget(label, durability);
  if (PG !== null) await resetPgSchema();
  const cv = await Conveyor.open({ url: target.url });
  try {
    return await fn(cv, target);
  } finally {
    await cv.close();
    target.cleanup();
  }
}

/** Bytes of an SQLite database: main file + WAL right after a TRUNCATE checkpoint on a separate connection. */
function sqliteFileBytes(file: string): { bytes: number; main: number; wal: number; checkpointBusy: number } {
  const probe = new DatabaseSync(file);
  try {
    const r = probe.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get() as { busy: number } | undefined;
    const size = (f: string): number => (fs.existsSync(f) ? fs.statSync(f).size : 0);
    const main = size(file);
    const wal = size(`${file}-wal`);
    return { bytes: main + wal, main, wal, checkpointBusy: r?.busy ?? -1 };
  } finally {
    probe.close();
  }
}

// ----------------------------------------------------------------------- PostgreSQL

/** Runs `fn` with a plain `pg` client on `database` (default: the url's), outside conveyor. */
async function withPg<T>(fn: (c: pg.Client) => Promise<T>, database?: string): Promise<T> {
  const url = new URL(PG!.adminUrl);
  if (database !== undefined) url.pathname = `/${encodeURIComponent(database)}`;
  const c = new pg.Client({ connectionString: url.toString() });
  (c as unknown as { __benchUncounted: boolean }).__benchUncounted = true;
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const quoteIdent = (name: string): string => `"${name.replaceAll('"', '""')}"`;

/** Drops the url's schema (conveyor migrates it afresh on open). */
async function resetPgSchema(): Promise<void> {
  await withPg(async (c) => {
    await c.query(`DROP SCHEMA IF EXISTS ${quoteIdent(PG!.schema)} CASCADE`);
  });
}

/** Creates a scratch database if it is missing. */
async function ensureDatabase(name: string): Promise<void> {
  await withPg(async (c) => {
    const { rowCount } = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (rowCount === 0) await c.query(`CREATE DATABASE ${quoteIdent(name)}`);
  });
}

/** Sum of pg_total_relation_size over the tables of the url's schema. */
async function pgSchemaBytes(): Promise<{ bytes: number; tables: Record<string, number> }> {
  return withPg(async (c) => {
    const { rows } = await c.query<{ relname: string; bytes: string }>(
      `SELECT c.relname, pg_total_relation_size(c.oid)::bigint AS bytes
         FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE n.nspname = $1 AND c.relkind IN ('r', 'm') ORDER BY 2 DESC`,
      [PG!.schema],
    );
    const tables = Object.fromEntries(rows.map((r) => [r.relname, Number(r.bytes)]));
    return { bytes: rows.reduce((a, r) => a + Number(r.bytes), 0), tables };
  });
}

const SCRATCH_DB = 'conveyor_bench_scratch';

/** A fresh two-column table in the scratch database: the raw baselines' target. */
async function rawTable(c: pg.Client): Promise<void> {
  await c.query('DROP TABLE IF EXISTS conveyor_bench_raw');
  await c.query('CREATE TABLE conveyor_bench_raw (id bigserial PRIMARY KEY, data text NOT NULL)');
}

/**
 * The fsync-bound ceiling of one client: pgbench, one connection, `seconds` of single-row
 * INSERTs of the bench's JSON text into the scratch table, one transaction each.
 */
async function pgbenchSerial(seconds: number): Promise<{ tps: number; latencyMs: number } | string> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-pgbench-'));
  try {
    const script = path.join(dir, 'insert.sql');
    fs.writeFileSync(script, `INSERT INTO conveyor_bench_raw (data) VALUES ('${JSON.stringify(payload(1))}');\n`);
    const u = new URL(PG!.adminUrl);
    const argv = ['-n', '-c', '1', '-T', String(seconds), '-f', script];
    if (u.hostname !== '') argv.push('-h', decodeURIComponent(u.hostname));
    if (u.port !== '') argv.push('-p', u.port);
    if (u.username !== '') argv.push('-U', decodeURIComponent(u.username));
    argv.push(SCRATCH_DB);
    const env = { ...process.env, ...(u.password === '' ? {} : { PGPASSWORD: decodeURIComponent(u.password) }) };
    const r = spawnSync('pgbench', argv, { encoding: 'utf8', env });
    if (r.error !== undefined || r.status !== 0) return `pgbench failed: ${r.error?.message ?? r.stderr.trim().split('\n').pop()}`;
    const tps = /tps = ([0-9.]+)/.exec(r.stdout);
    const lat = /latency average = ([0-9.]+) ms/.exec(r.stdout);
    if (tps === null) return `pgbench printed no tps: ${r.stdout.slice(0, 200)}`;
    return { tps: Number(tps[1]), latencyMs: lat === null ? NaN : Number(lat[1]) };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * The same one-row INSERT as pgbench's, prepared, sent serially through node `pg` on `c`
 * (one client, awaited one by one): what a Node.js client can get, where pgbench is a C
 * client. Returns the seconds `count` inserts took.
 */
async function pgRawSerial(c: pg.Client, count: number, offset: number): Promise<number> {
  const insert = { name: 'raw_serial', text: 'INSERT INTO conveyor_bench_raw (data) VALUES ($1)' };
  const t0 = now();
  for (let i = 0; i < count; i++) await c.query({ ...insert, values: [JSON.stringify(payload(offset + i))] });
  return (now() - t0) / 1000;
}

/** Raw bulk: the same JSON text, 1,000 rows per INSERT … SELECT unnest($1::text[]). */
async function pgRawBulk(count: number): Promise<number> {
  await ensureDatabase(SCRATCH_DB);
  return withPg(async (c) => {
    await rawTable(c);
    const insert = { name: 'raw_bulk', text: 'INSERT INTO conveyor_bench_raw (data) SELECT unnest($1::text[])' };
    await c.query({ ...insert, values: [[JSON.stringify(payload(-1))]] });
    const t0 = now();
    for (let start = 0; start < count; start += BATCH) {
      const end = Math.min(count, start + BATCH);
      const rows = new Array<string>(end - start);
      for (let i = start; i < end; i++) rows[i - start] = JSON.stringify(payload(i));
      await c.query({ ...insert, values: [rows] });
    }
    return count / ((now() - t0) / 1000);
  }, SCRATCH_DB);
}

/**
 * Counts every Client#query call made through this process's `pg` (conveyor's pool, its
 * LISTEN connection, its notifications), by statement text, while installed. The bench's
 * own admin clients are flagged and not counted.
 */
function installPgCounter(): { total: () => number; bySql: Map<string, number>; uninstall: () => void } {
  const bySql = new Map<string, number>();
  let total = 0;
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const orig = proto.query;
  proto.query = function countedQuery(this: { __benchUncounted?: boolean }, ...a: unknown[]) {
    if (this.__benchUncounted !== true) {
      total++;
      const q = a[0];
      const text = typeof q === 'string' ? q : String((q as { text?: unknown } | null)?.text ?? '?');
      bySql.set(text, (bySql.get(text) ?? 0) + 1);
    }
    return orig.apply(this, a);
  };
  return {
    total: () => total,
    bySql,
    uninstall: () => {
      proto.query = orig;
    },
  };
}

// ------------------------------------------------------------------ raw node:sqlite

/** A fresh file with the store's pragmas (WAL; synchronous NORMAL, or FULL) and one simple table. */
function openRaw(dir: string, durability: Durability): DatabaseSync {
  const file = path.join(dir, `raw-${durability}-${Math.random().toString(36).slice(2)}.db`);
  const db = new DatabaseSync(file);
  db.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = ${durability === 'full' ? 'FULL' : 'NORMAL'};`);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)');
  return db;
}

/** Raw ceiling for serial adds: BEGIN IMMEDIATE, one INSERT, COMMIT per row. */
function rawSerial(dir: string, durability: Durability, count: number): number {
  const db = openRaw(dir, durability);
  try {
    const begin = db.prepare('BEGIN IMMEDIATE');
    const commit = db.prepare('COMMIT');
    const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
    const one = (i: number): void => {
      begin.run();
      insert.run(JSON.stringify(payload(i)));
      commit.run();
    };
    for (let i = 0; i < WARMUP; i++) one(-1 - i);
    const t0 = now();
    for (let i = 0; i < count; i++) one(i);
    return count / ((now() - t0) / 1000);
  } finally {
    db.close();
  }
}

/** Raw bulk: the same JSON text, one transaction per BATCH rows. */
function rawBulk(dir: string, durability: Durability, count: number): number {
  const db = openRaw(dir, durability);
  try {
    const begin = db.prepare('BEGIN IMMEDIATE');
    const commit = db.prepare('COMMIT');
    const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
    insert.run(JSON.stringify(payload(-1)));
    const t0 = now();
    for (let start = 0; start < count; start += BATCH) {
      const end = Math.min(count, start + BATCH);
      begin.run();
      for (let i = start; i < end; i++) insert.run(JSON.stringify(payload(i)));
      commit.run();
    }
    return count / ((now() - t0) / 1000);
  } finally {
    db.close();
  }
}

// ------------------------------------------------------- node:sqlite statement counter

/**
 * Counts every statement node:sqlite executes in this process (StatementSync run/get/all/
 * iterate and DatabaseSync exec), by SQL text, while installed. The peer harness's
 * installSqliteStatementCounter does the same for better-sqlite3.
 */
function installSqliteCounter(): { total: () => number; bySql: Map<string, number>; uninstall: () => void } {
  const bySql = new Map<string, number>();
  let total = 0;
  const count = (sql: string): void => {
    total++;
    bySql.set(sql, (bySql.get(sql) ?? 0) + 1);
  };
  const stmtProto = StatementSync.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const dbProto = DatabaseSync.prototype as unknown as Record<string, (...a: unknown[]) => unknown>;
  const originals: Array<[Record<string, (...a: unknown[]) => unknown>, string, (...a: unknown[]) => unknown]> = [];
  for (const m of ['run', 'get', 'all', 'iterate']) {
    const orig = stmtProto[m]!;
    originals.push([stmtProto, m, orig]);
    stmtProto[m] = function countedStatement(this: StatementSync, ...a: unknown[]) {
      count(this.sourceSQL);
      return orig.apply(this, a);
    };
  }
  const exec = dbProto.exec!;
  originals.push([dbProto, 'exec', exec]);
  dbProto.exec = function countedExec(this: DatabaseSync, ...a: unknown[]) {
    count(String(a[0]));
    return exec.apply(this, a);
  };
  return {
    total: () => total,
    bySql,
    uninstall: () => {
      for (const [proto, m, orig] of originals) proto[m] = orig;
    },
  };
}

/** Store methods that answer from memory (no statement): passed through, not counted. */
const LOCAL_METHODS: ReadonlySet<PropertyKey> = new Set(['signalsReliable', 'subscribe']);

/** Wraps a store so every method call that reaches storage is counted, by method name. */
function countingStore(inner: Store): { store: Store; total: () => number; byMethod: Map<string, number> } {
  const byMethod = new Map<string, number>();
  let total = 0;
  const wrapped = new Map<PropertyKey, unknown>();
  const store = new Proxy(inner, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (LOCAL_METHODS.has(prop)) return (value as (...x: unknown[]) => unknown).bind(target);
      let fn = wrapped.get(prop);
      if (fn === undefined) {
        const name = String(prop);
        fn = (...a: unknown[]) => {
          total++;
          byMethod.set(name, (byMethod.get(name) ?? 0) + 1);
          return (value as (...x: unknown[]) => unknown).apply(target, a);
        };
        wrapped.set(prop, fn);
      }
      return fn;
    },
  });
  return { store, total: () => total, byMethod };
}

// ------------------------------------------------------------------------ scenarios

/**
 * PostgreSQL serial adds, interleaved with their baselines so all three see the same disk:
 * ROUNDS rounds of [N / ROUNDS conveyor adds, the same number of node-pg INSERTs, pgbench
 * for 2 s (× scale)]. The disk's fsync latency drifts by tens of percent within a minute
 * on this VM; back-to-back blocks of 5,000 each gave ratios anywhere between 0.5 and 1.1.
 */
async function scenarioSerialPg(): Promise<Row[]> {
  const N = n(5000);
  const ROUNDS = 5;
  const per = Math.ceil(N / ROUNDS);
  await ensureDatabase(SCRATCH_DB);
  const r = await withConveyor('serial', 'normal', async (cv) => {
    const q = cv.queue(queueName('serial'));
    for (let i = 0; i < WARMUP; i++) await q.add('bench', payload(-1 - i));
    return withPg(async (c) => {
      await rawTable(c);
      await pgRawSerial(c, WARMUP, -WARMUP);
      const lat: number[] = [];
      let cvSecs = 0;
      let nodeSecs = 0;
      const bench: number[] = [];
      const benchLatency: number[] = [];
      const ratios: number[] = [];
      let note = '';
      for (let round = 0; round < ROUNDS; round++) {
        const t0 = now();
        for (let i = round * per; i < (round + 1) * per; i++) {
          const s0 = now();
          await q.add('bench', payload(i));
          lat.push(now() - s0);
        }
        const secs = (now() - t0) / 1000;
        cvSecs += secs;
        nodeSecs += await pgRawSerial(c, per, round * per);
        const b = await pgbenchSerial(Math.max(1, Math.round(2 * SCALE)));
        if (typeof b === 'string') note = b;
        else {
          bench.push(b.tps);
          benchLatency.push(b.latencyMs);
          ratios.push(per / secs / b.tps);
        }
      }
      const total = per * ROUNDS;
      const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
      return {
        jobsPerS: total / cvSecs,
        lat: percentiles(lat),
        nodePg: total / nodeSecs,
        raw: bench.length > 0 ? mean(bench) : NaN,
        rawLatencyMs: benchLatency.length > 0 ? mean(benchLatency) : NaN,
        ratioMedian: ratios.length > 0 ? percentiles(ratios).p50 : NaN,
        ratioRange: ratios.length > 0 ? `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}` : '-',
        note,
      };
    }, SCRATCH_DB);
  });
  const ratio = r.jobsPerS / r.raw;
  return [
    {
      scenario: 'serial awaited adds',
      durability: durabilityLabel('normal'),
      jobs: N,
      headline: `${rate(r.jobsPerS)} jobs/s`,
      details:
        r.note !== ''
          ? `add p50 ${ms(r.lat.p50)} ms, p99 ${ms(r.lat.p99)} ms; ${r.note}`
          : `add p50 ${ms(r.lat.p50)} ms, p99 ${ms(r.lat.p99)} ms; interleaved in ${ROUNDS} rounds with pgbench -c 1 (one-row INSERT per txn): ${rate(r.raw)} tps, latency ${ms(r.rawLatencyMs)} ms (conveyor/pgbench ${ratio.toFixed(2)}, per round median ${r.ratioMedian.toFixed(2)}, ${r.ratioRange}); and with the same INSERT through node pg, serially: ${rate(r.nodePg)}/s (conveyor/node-pg ${(r.jobsPerS / r.nodePg).toFixed(2)})`,
      metrics: {
        jobs_per_s: round(r.jobsPerS, 0),
        add_p50_ms: round(r.lat.p50),
        add_p99_ms: round(r.lat.p99),
        add_max_ms: round(r.lat.max),
        raw_kind: 'pgbench -n -c 1 one-row INSERT, interleaved',
        raw_serial_per_s: round(r.raw, 0),
        raw_latency_ms: round(r.rawLatencyMs),
        ratio_to_raw: round(ratio),
        ratio_to_raw_round_median: round(r.ratioMedian),
        node_pg_serial_per_s: round(r.nodePg, 0),
        ratio_to_node_pg: round(r.jobsPerS / r.nodePg),
      },
    },
  ];
}

async function scenarioSerial(durability: Durability): Promise<Row[]> {
  if (PG !== null) return scenarioSerialPg();
  const N = n(5000);
  const r = await withConveyor('serial', durability, async (cv, target) => {
    const q = cv.queue(queueName('serial'));
    for (let i = 0; i < WARMUP; i++) await q.add('bench', payload(-1 - i));
    const lat = new Float64Array(N);
    const { secs } = await timed(async () => {
      for (let i = 0; i < N; i++) {
        const s = now();
        await q.add('bench', payload(i));
        lat[i] = now() - s;
      }
    });
    return { jobsPerS: N / secs, lat: percentiles(lat), raw: rawSerial(target.scratch, durability, N) };
  });
  const ratio = r.jobsPerS / r.raw;
  const rawText = `raw node:sqlite 1 INSERT/txn ${rate(r.raw)}/s`;
  return [
    {
      scenario: 'serial awaited adds',
      durability: durabilityLabel(durability),
      jobs: N,
      headline: `${rate(r.jobsPerS)} jobs/s`,
      details: `add p50 ${ms(r.lat.p50)} ms, p99 ${ms(r.lat.p99)} ms; ${rawText} (conveyor/raw ${ratio > 0 ? ratio.toFixed(2) : '-'})`,
      metrics: {
        jobs_per_s: round(r.jobsPerS, 0),
        add_p50_ms: round(r.lat.p50),
        add_p99_ms: round(r.lat.p99),
        add_max_ms: round(r.lat.max),
        raw_serial_per_s: round(r.raw, 0),
        ratio_to_raw: round(ratio),
      },
    },
  ];
}

async function scenarioConcurrent(durability: Durability): Promise<Row[]> {
  const N = n(20000);
  const IN_FLIGHT = 64;
  const jobsPerS = await withConveyor('concurrent', durability, async (cv) => {
    const q = cv.queue(queueName('concurrent'));
    for (let i = 0; i < WARMUP; i++) await q.add('bench', payload(-1 - i));
    let next = 0;
    const { secs } = await timed(() =>
      Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          for (let i = next++; i < N; i = next++) await q.add('bench', payload(i));
        }),
      ),
    );
    const counts = await q.getCounts();
    if (counts.waiting !== N + WARMUP) throw new Error(`concurrent: store holds ${counts.waiting} waiting jobs, expected ${N + WARMUP}`);
    return N / secs;
  });
  return [
    {
      scenario: '64-in-flight adds',
      durability: durabilityLabel(durability),
      jobs: N,
      headline: `${rate(jobsPerS)} jobs/s`,
      details: `${IN_FLIGHT} concurrent awaited add() loops (group commit)`,
      metrics: { jobs_per_s: round(jobsPerS, 0), in_flight: IN_FLIGHT },
    },
  ];
}

async function scenarioBulk(durability: Durability): Promise<Row[]> {
  const N = n(100000);
  const r = await withConveyor('bulk', durability, async (cv, target) => {
    const q = cv.queue(queueName('bulk'));
    await q.addBulk([{ name: 'bench', data: payload(-1) }]);
    const { secs } = await timed(async () => {
      for (let start = 0; start < N; start += BATCH) {
        const size = Math.min(BATCH, N - start);
        const jobs = new Array<{ name: string; data: { i: number; pad: string } }>(size);
        for (let k = 0; k < size; k++) jobs[k] = { name: 'bench', data: payload(start + k) };
        await q.addBulk(jobs);
      }
    });
    const raw = PG === null ? rawBulk(target.scratch, durability, N) : await pgRawBulk(N);
    return { jobsPerS: N / secs, raw };
  });
  const ratio = r.jobsPerS / r.raw;
  return [
    {
      scenario: 'bulk enqueue (addBulk × 1,000)',
      durability: durabilityLabel(durability),
      jobs: N,
      headline: `${rate(r.jobsPerS)} jobs/s`,
      details: `${PG === null ? 'raw node:sqlite INSERT, 1,000 rows/txn' : 'raw INSERT … SELECT unnest($1::text[]) into (bigserial, text), 1,000 rows/statement'}: ${rate(r.raw)}/s; conveyor/raw ${ratio.toFixed(2)}`,
      metrics: { jobs_per_s: round(r.jobsPerS, 0), batch: BATCH, raw_bulk_per_s: round(r.raw, 0), ratio_to_raw: round(ratio) },
    },
  ];
}

interface DrainRun {
  readonly secs: number;
  readonly firstMs: number;
  readonly ackLagMs: number;
  readonly calls: number;
  readonly distinct: number;
  readonly dups: number;
  readonly errors: number;
  readonly after: JobCounts;
  readonly completedBefore: number;
  readonly ok: boolean;
}

/**
 * Bulk-prefills `count` jobs (untimed), then times one worker (concurrency 50) from its
 * creation until the handler has run `count` times and `getCounts()` reports nothing
 * waiting, delayed or active.
 */
async function drainQueue(cv: Conveyor, queue: string, count: number): Promise<DrainRun> {
  const CONCURRENCY = 50;
  const q = cv.queue<{ i: number; pad: string }>(queue);
  for (let start = 0; start < count; start += BATCH) {
    const size = Math.min(BATCH, count - start);
    await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
  }
  const before = await q.getCounts();
  if (before.waiting !== count) throw new Error(`drain: prefill left ${before.waiting} waiting, expected ${count}`);
  const seen = new Uint8Array(count);
  let calls = 0;
  let dups = 0;
  let firstAt = 0;
  const t0 = now();
  const worker = cv.worker<{ i: number; pad: string }>(
    q.name,
    async (job) => {
      if (calls++ === 0) firstAt = now();
      const i = job.data.i;
      if (seen[i] === 1) dups++;
      else seen[i] = 1;
    },
    { concurrency: CONCURRENCY },
  );
  let errors = 0;
  worker.on('error', () => errors++);
  worker.on('failed', () => errors++);
  await waitFor(() => calls >= count, `${count} handler calls`, 150_000, 5);
  const tHandled = now();
  await waitFor(async () => {
    const c = await q.getCounts();
    return c.waiting + c.active + c.delayed === 0;
  }, 'the store to report nothing waiting or active');
  const tDone = now();
  await worker.close();
  const after = await q.getCounts();
  let distinct = 0;
  for (const b of seen) distinct += b;
  const ok = calls === count && distinct === count && dups === 0 && after.completed - before.completed === count && after.failed === before.failed && errors === 0;
  return { secs: (tDone - t0) / 1000, firstMs: firstAt - t0, ackLagMs: tDone - tHandled, calls, distinct, dups, after, completedBefore: before.completed, ok, errors };
}

function drainDetails(r: DrainRun): string {
  return `${r.ok ? 'all completed, none failed, no duplicates' : `CHECK FAILED: ${JSON.stringify({ calls: r.calls, distinct: r.distinct, dups: r.dups, counts: r.after, errors: r.errors })}`}; first job after ${ms(r.firstMs)} ms, last ack ${ms(r.ackLagMs)} ms after last handler call`;
}

async function scenarioDrain(): Promise<Row[]> {
  const N = n(50000);
  const r = await withConveyor('drain', 'normal', (cv) => drainQueue(cv, queueName('drain'), N));
  return [
    {
      scenario: 'drain (no-op jobs, concurrency 50)',
      durability: durabilityLabel('normal'),
      jobs: N,
      headline: `${rate(N / r.secs)} jobs/s`,
      details: drainDetails(r),
      metrics: {
        jobs_per_s: round(N / r.secs, 0),
        total_s: round(r.secs),
        first_job_ms: round(r.firstMs),
        ack_lag_ms: round(r.ackLagMs),
        completed: r.after.completed,
        failed: r.after.failed,
        duplicate_calls: r.dups,
        ok: r.ok,
      },
    },
  ];
}

/** Percentile summary of claim timings, and how one target compares with the empty one. */
type Pcts = ReturnType<typeof percentiles>;

/**
 * Claim timings on one store, for one round: `singles` single-job claims (each completed
 * before the next claim, as an idle worker picking up one new job does), then `batches`
 * claims of `batchSize` jobs (each completed with one completeMany, as a busy worker does).
 * The jobs are added first, untimed. Each sample is one `claim` store call: round trip,
 * the claim function, and its commit.
 */
async function claimTimes(cv: Conveyor, queue: string, singles: number, batches: number, batchSize: number): Promise<{ single: number[]; batch: number[] }> {
  const total = singles + batches * batchSize;
  const q = cv.queue(queue);
  for (let start = 0; start < total; start += BATCH) {
    const size = Math.min(BATCH, total - start);
    await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
  }
  const claimOnce = async (limit: number, into: number[]): Promise<void> => {
    const t = now();
    const { jobs } = await cv.store.claim({ queues: [queue], workerId: 'bench', limit, leaseMs: 30_000, now: Date.now() });
    into.push(now() - t);
    if (jobs.length !== limit) throw new Error(`a claim of ${limit} got ${jobs.length} jobs`);
    await cv.store.completeMany({ items: jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: false })), now: Date.now() });
  };
  const single: number[] = [];
  const batch: number[] = [];
  for (let i = 0; i < singles; i++) await claimOnce(1, single);
  for (let i = 0; i < batches; i++) await claimOnce(batchSize, batch);
  return { single, batch };
}

/** A URL for the same server and database with another `?schema=`. */
function schemaUrl(schema: string): string {
  const u = new URL(PG!.url);
  u.searchParams.set('schema', schema);
  return u.toString();
}

/**
 * PostgreSQL only: claim speed with a million rows present, beside the same claims on empty
 * tables, in one sitting. Four stores, each in a scratch schema of its own (the url's
 * schema name + a suffix, dropped and migrated afresh):
 *   empty       nothing but the jobs being claimed
 *   waiting     1,000,000 waiting jobs of ANOTHER queue in `jobs` (the claim index holds
 *               them; the claimed queue's own jobs are few)
 *   waiting+jit the same schema with the claim function's `jit = off` (migration 3)
 *               replaced by `jit = on` for these claims only, to check that the migration
 *               still matters
 *   history     1,000,000 completed jobs of the claimed queue itself in `jobs_done`
 * The rows are written directly with INSERT … SELECT (conveyor's schema, see
 * migrations.ts), then every schema gets VACUUM ANALYZE (what autovacuum would have done
 * by then). Then ROUNDS rounds, the targets in a rotated order each round so that drifts of
 * this shared machine hit all of them alike; each round on each target: 100 single-job
 * claims and 20 claims of 100 jobs (claimTimes). Then two rounds of drains of 20,000 jobs
 * by a worker (concurrency 50, as in `drain`) per target. Reported: p50/p99 per target
 * over all rounds, and the crowded/empty ratio of the medians, with the median and range
 * of the per-round ratios.
 */
type CrowdedKind = 'empty' | 'waiting' | 'waiting+jit' | 'history';
const CROWDED_KINDS: readonly CrowdedKind[] = ['empty', 'waiting', 'waiting+jit', 'history'];
const CROWDED = { rounds: 5, singles: Math.max(5, n(100)), batches: Math.max(2, n(20)), batchSize: 100, drain: n(20_000), drainRounds: 2 };

interface CrowdedRun {
  /** Per target: one array of claim times (ms) per round. */
  readonly single: Map<CrowdedKind, number[][]>;
  readonly batch: Map<CrowdedKind, number[][]>;
  readonly drains: Map<CrowdedKind, DrainRun[]>;
  readonly fillSecs: number;
}

async function measureCrowded(BIG: number): Promise<CrowdedRun> {
  type Kind = CrowdedKind;
  const kinds = CROWDED_KINDS;
  const { rounds: ROUNDS, singles: SINGLES, batches: BATCHES, batchSize: BATCH_SIZE, drain: DRAIN, drainRounds: DRAIN_ROUNDS } = CROWDED;
  const schemas: Record<'empty' | 'waiting' | 'history', string> = {
    empty: `${PG!.schema}_empty`,
    waiting: `${PG!.schema}_waiting`,
    history: `${PG!.schema}_history`,
  };
  const schemaOf = (k: Kind): string => (k === 'waiting+jit' ? schemas.waiting : schemas[k]);
  const qSchema = (s: string): string => quoteIdent(s);
  const claimFn = (s: string): string => `${qSchema(s)}.claim_jobs(text[], integer, bigint, text, text, bigint, integer)`;
  await withPg(async (c) => {
    for (const s of Object.values(schemas)) await c.query(`DROP SCHEMA IF EXISTS ${qSchema(s)} CASCADE`);
  });
  const cvs = new Map<string, Conveyor>();
  try {
    for (const s of Object.values(schemas)) cvs.set(s, await Conveyor.open({ url: schemaUrl(s) }));
    const cvOf = (k: Kind): Conveyor => cvs.get(schemaOf(k))!;
    const claimQueue = queueName('crowded');
    const other = queueName('crowded-other');
    // Queue rows first (ids for the fill), then the fill.
    for (const cv of cvs.values()) await cv.queue(claimQueue).add('bench', payload(-1));
    await cvs.get(schemas.waiting)!.queue(other).add('bench', payload(-1));
    const tFill = now();
    await withPg(async (c) => {
      const qid = async (schema: string, name: string): Promise<number> =>
        Number((await c.query<{ id: number }>(`SELECT id FROM ${qSchema(schema)}.queues WHERE name = $1`, [name])).rows[0]!.id);
      const t = Date.now() - 86_400_000;
      const h = schemas.history;
      await c.query(
        `INSERT INTO ${qSchema(h)}.jobs_done (id, finished_at, run_at, created_at, started_at, queue, priority, attempts_made, max_attempts, stalls, state, name, data)
         SELECT nextval('${h}.job_ids'), $1::bigint + g, $1::bigint + g, $1::bigint + g, $1::bigint + g, $2::int, 0, 1, 1, 0, 3, 'bench',
                '{"i":' || g || ',"pad":"${PAD}"}'
         FROM generate_series(1, $3::int) g`,
        [t, await qid(h, claimQueue), BIG],
      );
      const w = schemas.waiting;
      await c.query(
        `INSERT INTO ${qSchema(w)}.jobs (id, run_at, created_at, queue, priority, max_attempts, state, name, data)
         SELECT nextval('${w}.job_ids'), $1::bigint + g, $1::bigint + g, $2::int, 0, 1, 0, 'bench', '{"i":' || g || ',"pad":"${PAD}"}'
         FROM generate_series(1, $3::int) g`,
        [t, await qid(w, other), BIG],
      );
      for (const s of Object.values(schemas)) {
        await c.query(`VACUUM ANALYZE ${qSchema(s)}.jobs`);
        await c.query(`VACUUM ANALYZE ${qSchema(s)}.jobs_done`);
      }
    });
    const fillSecs = (now() - tFill) / 1000;
    const setJit = (on: boolean): Promise<void> =>
      withPg(async (c) => {
        await c.query(`ALTER FUNCTION ${claimFn(schemas.waiting)} SET jit = ${on ? 'on' : 'off'}`);
      });
    const rotated = (r: number): Kind[] => kinds.map((_, i) => kinds[(i + r) % kinds.length]!);

    const single = new Map<Kind, number[][]>(kinds.map((k) => [k, []]));
    const batch = new Map<Kind, number[][]>(kinds.map((k) => [k, []]));
    for (let r = 0; r < ROUNDS; r++) {
      for (const k of rotated(r)) {
        if (k === 'waiting+jit') await setJit(true);
        try {
          const t = await claimTimes(cvOf(k), claimQueue, SINGLES, BATCHES, BATCH_SIZE);
          single.get(k)!.push(t.single);
          batch.get(k)!.push(t.batch);
        } finally {
          if (k === 'waiting+jit') await setJit(false);
        }
      }
    }
    const drains = new Map<Kind, DrainRun[]>(kinds.map((k) => [k, []]));
    for (let r = 0; r < DRAIN_ROUNDS; r++) {
      for (const k of rotated(r)) {
        if (k === 'waiting+jit') await setJit(true);
        try {
          drains.get(k)!.push(await drainQueue(cvOf(k), queueName(`crowded-drain-${r}-${k === 'waiting+jit' ? 'jit' : k}`), DRAIN));
        } finally {
          if (k === 'waiting+jit') await setJit(false);
        }
      }
    }
    return { single, batch, drains, fillSecs };
  } finally {
    for (const cv of cvs.values()) await cv.close();
    await withPg(async (c) => {
      for (const s of Object.values(schemas)) await c.query(`DROP SCHEMA IF EXISTS ${qSchema(s)} CASCADE`);
    }).catch(() => undefined);
  }
}

async function scenarioCrowded(): Promise<Row[]> {
  if (PG === null) return [];
  const BIG = n(1_000_000);
  const r = await measureCrowded(BIG);
  const median = (xs: readonly number[]): number => percentiles(xs).p50;
  const pooled = (m: Map<CrowdedKind, number[][]>, k: CrowdedKind): Pcts => percentiles(m.get(k)!.flat());
  /** Per-round ratios of medians, k over base: "median (min–max)". */
  const perRound = (m: Map<CrowdedKind, number[][]>, k: CrowdedKind, base: CrowdedKind): { median: number; text: string } => {
    const ratios = m.get(k)!.map((xs, i) => median(xs) / median(m.get(base)![i]!));
    const med = median(ratios);
    return { median: med, text: `${med.toFixed(2)} (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})` };
  };
  const drainRate = (k: CrowdedKind): number => median(r.drains.get(k)!.map((d) => d.calls / d.secs));
  const drainsOk = (k: CrowdedKind): boolean => r.drains.get(k)!.every((d) => d.ok);
  const describe = (k: CrowdedKind, base: CrowdedKind, baseLabel: string): Pick<Row, 'headline' | 'details' | 'metrics'> => {
    const s = pooled(r.single, k);
    const s0 = pooled(r.single, base);
    const b = pooled(r.batch, k);
    const b0 = pooled(r.batch, base);
    const sr = perRound(r.single, k, base);
    const br = perRound(r.batch, k, base);
    const d = drainRate(k);
    const d0 = drainRate(base);
    return {
      headline: `${(s.p50 / s0.p50).toFixed(2)} × ${baseLabel}`,
      details:
        `single-job claim p50 ${ms(s.p50)} ms vs ${ms(s0.p50)} (${baseLabel}), p99 ${ms(s.p99)} vs ${ms(s0.p99)}; per-round ratio ${sr.text}; ` +
        `${CROWDED.batchSize}-job claim p50 ${ms(b.p50)} ms vs ${ms(b0.p50)}, p99 ${ms(b.p99)} vs ${ms(b0.p99)}; ratio ${(b.p50 / b0.p50).toFixed(2)}, per round ${br.text}; ` +
        `drain of ${rate(CROWDED.drain)} ${rate(d)} jobs/s vs ${rate(d0)} (${(d / d0).toFixed(2)} ×)${drainsOk(k) ? '' : ' DRAIN CHECK FAILED'}`,
      metrics: {
        single_p50_ms: round(s.p50),
        single_p99_ms: round(s.p99),
        base_single_p50_ms: round(s0.p50),
        base_single_p99_ms: round(s0.p99),
        single_ratio: round(s.p50 / s0.p50),
        single_ratio_round_median: round(sr.median),
        batch_p50_ms: round(b.p50),
        batch_p99_ms: round(b.p99),
        base_batch_p50_ms: round(b0.p50),
        batch_ratio: round(b.p50 / b0.p50),
        batch_ratio_round_median: round(br.median),
        drain_jobs_per_s: round(d, 0),
        base_drain_jobs_per_s: round(d0, 0),
        drain_ratio: round(d / d0),
        drains_ok: drainsOk(k),
      },
    };
  };
  const e = pooled(r.single, 'empty');
  const eb = pooled(r.batch, 'empty');
  const samples = `${CROWDED.rounds} interleaved rounds × (${CROWDED.singles} single-job + ${CROWDED.batches} × ${CROWDED.batchSize}-job claims), ${CROWDED.drainRounds} drains of ${rate(CROWDED.drain)}`;
  const label = durabilityLabel('normal');
  return [
    {
      scenario: 'claim, empty tables (baseline)',
      durability: label,
      jobs: null,
      headline: `claim p50 ${ms(e.p50)} ms`,
      details: `single-job claim p50 ${ms(e.p50)} ms, p99 ${ms(e.p99)}; ${CROWDED.batchSize}-job claim p50 ${ms(eb.p50)} ms, p99 ${ms(eb.p99)}; drain ${rate(drainRate('empty'))} jobs/s; ${samples}; fill of the crowded schemas (INSERT … SELECT + VACUUM ANALYZE) ${r.fillSecs.toFixed(1)} s`,
      metrics: { single_p50_ms: round(e.p50), single_p99_ms: round(e.p99), batch_p50_ms: round(eb.p50), batch_p99_ms: round(eb.p99), drain_jobs_per_s: round(drainRate('empty'), 0), fill_s: round(r.fillSecs, 1) },
    },
    { scenario: `claim with ${rate(BIG)} waiting jobs in another queue`, durability: label, jobs: BIG, ...describe('waiting', 'empty', 'empty') },
    { scenario: `claim with ${rate(BIG)} completed jobs of the same queue`, durability: label, jobs: BIG, ...describe('history', 'empty', 'empty') },
    { scenario: `claim with ${rate(BIG)} waiting elsewhere, claim_jobs SET jit = on (migration 3 undone)`, durability: label, jobs: BIG, ...describe('waiting+jit', 'waiting', 'jit off') },
  ];
}

async function scenarioLatency(): Promise<Row[]> {
  const N = n(2000);
  const RATE = 200;
  const r = await withConveyor('latency', 'normal', async (cv) => {
    const q = cv.queue<{ i: number; pad: string }>(queueName('latency'));
    const sentAt = new Float64Array(N);
    const addLat = new Float64Array(N);
    const recorder = startRecorder(cv, q.name, N);
    const { startAt } = recorder;
    await sleep(2000); // idle and settled before the first job
    const pending: Array<Promise<void>> = [];
    const t0 = now();
    for (let i = 0; i < N; i++) {
      const wait = t0 + (i * 1000) / RATE - now();
      if (wait > 1) await sleep(wait);
      const s = now();
      sentAt[i] = s;
      // Open loop: the next send does not wait for this one.
      pending.push(q.add('bench', payload(i)).then(() => void (addLat[i] = now() - s)));
    }
    await Promise.all(pending);
    const sendSecs = (now() - t0) / 1000;
    await waitFor(() => recorder.received() >= N, 'every job to start', 30_000).catch(() => undefined);
    await recorder.close();
    const lat: number[] = [];
    for (let i = 0; i < N; i++) if (startAt[i]! > 0) lat.push(startAt[i]! - sentAt[i]!);
    return { lat: percentiles(lat), add: percentiles(addLat), received: recorder.received(), achieved: N / sendSecs };
  });
  return [
    {
      scenario: 'enqueue → handler start (200 jobs/s)',
      durability: durabilityLabel('normal'),
      jobs: N,
      headline: `p50 ${ms(r.lat.p50)} ms`,
      details: `p95 ${ms(r.lat.p95)} ms, p99 ${ms(r.lat.p99)} ms, max ${ms(r.lat.max)} ms; add p50 ${ms(r.add.p50)} ms; ${r.received}/${N} started; sent at ${r.achieved.toFixed(0)} jobs/s`,
      metrics: {
        p50_ms: round(r.lat.p50),
        p95_ms: round(r.lat.p95),
        p99_ms: round(r.lat.p99),
        max_ms: round(r.lat.max),
        add_p50_ms: round(r.add.p50),
        add_p99_ms: round(r.add.p99),
        received: r.received,
        rate_achieved: round(r.achieved, 1),
      },
    },
  ];
}

/** Per-minute difference of two by-key counters, as "key ×n; …" (largest first). */
function counterDiff(after: Map<string, number>, before: Map<string, number>): string {
  return [...after]
    .map(([k, v]): [string, number] => [k, v - (before.get(k) ?? 0)])
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1])
    .map(([k, v]) => `${k.replace(/\s+/g, ' ').trim().slice(0, 60)} ×${v}`)
    .join('; ');
}

/**
 * PostgreSQL idle cost, measured as the peer harness measures it: conveyor alone in a
 * database of its own, xact_commit + xact_rollback of that database read from another one
 * (backends flush these counters within ~10 s of going idle, hence the 12 s settle), beside
 * an exact client-side count of every `pg` query and of every Store call.
 */
async function scenarioIdlePg(): Promise<Row[]> {
  const SETTLE_MS = 12_000;
  const IDLE_DB = 'conveyor_bench_idle';
  await withPg(async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${IDLE_DB} WITH (FORCE)`);
    await c.query(`CREATE DATABASE ${IDLE_DB}`);
  });
  const u = new URL(PG!.url);
  u.pathname = `/${IDLE_DB}`;
  const xacts = (): Promise<number> =>
    withPg(async (c) => {
      await c.query('SELECT pg_stat_clear_snapshot()');
      const r = await c.query<{ n: string }>('SELECT (xact_commit + xact_rollback)::bigint AS n FROM pg_stat_database WHERE datname = $1', [IDLE_DB]);
      return Number(r.rows[0]?.n ?? 0);
    });
  const counted = countingStore(openStore({ url: u.toString() }));
  const client = installPgCounter();
  const cv = await Conveyor.open({ store: counted.store });
  try {
    const q = cv.queue(queueName('idle'));
    await q.add('bench', payload(0));
    const worker = cv.worker(q.name, async () => {}, { concurrency: 50 });
    await waitFor(async () => (await q.getCounts()).completed === 1, 'the one job to complete');
    await sleep(SETTLE_MS);
    const calls0 = counted.total();
    const methods0 = new Map(counted.byMethod);
    const queries0 = client.total();
    const sql0 = new Map(client.bySql);
    const x0 = await xacts();
    const t0 = now();
    await sleep(IDLE_SECONDS * 1000);
    const x1 = await xacts();
    const secs = (now() - t0) / 1000;
    const calls = counted.total() - calls0;
    const queries = client.total() - queries0;
    const perMin = (x: number): number => (x * 60) / secs;
    const methods = counterDiff(counted.byMethod, methods0);
    const sql = counterDiff(client.bySql, sql0);
    await worker.close();
    return [
      {
        scenario: 'idle worker: store calls',
        durability: durabilityLabel('normal'),
        jobs: null,
        headline: `${perMin(calls).toFixed(1)} calls/min`,
        details: `${calls} calls in ${secs.toFixed(1)} s: ${methods || 'none'}`,
        metrics: { store_calls_per_min: round(perMin(calls), 1), window_s: round(secs, 1), store_calls: calls, by_method: methods },
      },
      {
        scenario: 'idle worker: PostgreSQL transactions (server)',
        durability: durabilityLabel('normal'),
        jobs: null,
        headline: `${perMin(x1 - x0).toFixed(1)} statements/min`,
        details: `pg_stat_database xact_commit + xact_rollback of ${IDLE_DB} (conveyor alone in it): ${x1 - x0} in ${secs.toFixed(1)} s`,
        metrics: { statements_per_min: round(perMin(x1 - x0), 1), window_s: round(secs, 1), transactions: x1 - x0 },
      },
      {
        scenario: 'idle worker: pg queries (client)',
        durability: durabilityLabel('normal'),
        jobs: null,
        headline: `${perMin(queries).toFixed(1)} statements/min`,
        details: `${queries} pg Client#query calls in ${secs.toFixed(1)} s: ${sql || 'none'}`,
        metrics: { statements_per_min: round(perMin(queries), 1), window_s: round(secs, 1), statements: queries, by_sql: sql },
      },
    ];
  } finally {
    client.uninstall();
    await cv.close();
    await withPg(async (c) => {
      await c.query(`DROP DATABASE IF EXISTS ${IDLE_DB} WITH (FORCE)`);
    });
  }
}

async function scenarioIdle(): Promise<Row[]> {
  if (PG !== null) return scenarioIdlePg();
  const SETTLE_MS = 3000;
  const target = makeTarget('idle', 'normal');
  const counted = countingStore(openStore({ url: target.url }));
  const sqlite = installSqliteCounter();
  const cv = await Conveyor.open({ store: counted.store });
  try {
    // A queue that has had a job (its row exists), whose worker has nothing left to do.
    const q = cv.queue(queueName('idle'));
    await q.add('bench', payload(0));
    const worker = cv.worker(q.name, async () => {}, { concurrency: 50 });
    await waitFor(async () => (await q.getCounts()).completed === 1, 'the one job to complete');
    await sleep(SETTLE_MS);
    const calls0 = counted.total();
    const methods0 = new Map(counted.byMethod);
    const stmts0 = sqlite.total();
    const sql0 = new Map(sqlite.bySql);
    const t0 = now();
    await sleep(IDLE_SECONDS * 1000);
    const secs = (now() - t0) / 1000;
    const calls = counted.total() - calls0;
    const stmts = sqlite.total() - stmts0;
    const perMin = (x: number): number => (x * 60) / secs;
    const methods = counterDiff(counted.byMethod, methods0);
    const sql = counterDiff(sqlite.bySql, sql0);
    await worker.close();
    return [
      {
        scenario: 'idle worker: store calls',
        durability: durabilityLabel('normal'),
        jobs: null,
        headline: `${perMin(calls).toFixed(1)} calls/min`,
        details: `${calls} calls in ${secs.toFixed(1)} s: ${methods || 'none'}`,
        metrics: { store_calls_per_min: round(perMin(calls), 1), window_s: round(secs, 1), store_calls: calls, by_method: methods },
      },
      {
        scenario: 'idle worker: SQLite statements',
        durability: durabilityLabel('normal'),
        jobs: null,
        headline: `${perMin(stmts).toFixed(1)} statements/min`,
        details: `${stmts} in ${secs.toFixed(1)} s: ${sql || 'none'}`,
        metrics: { statements_per_min: round(perMin(stmts), 1), window_s: round(secs, 1), statements: stmts, by_sql: sql },
      },
    ];
  } finally {
    sqlite.uninstall();
    await cv.close();
    target.cleanup();
  }
}

async function scenarioStorage(): Promise<Row[]> {
  const N = n(100000);
  return withConveyor('storage', 'normal', async (cv, target) => {
    if (PG !== null) {
      const q = cv.queue(queueName('storage'));
      const s0 = await pgSchemaBytes();
      for (let start = 0; start < N; start += BATCH) {
        const size = Math.min(BATCH, N - start);
        await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
      }
      const counts = await q.getCounts();
      const s1 = await pgSchemaBytes();
      const perJob = (s1.bytes - s0.bytes) / N;
      const tables = Object.entries(s1.tables)
        .map(([k, v]) => `${k} ${v.toLocaleString('en-US')}`)
        .join(', ');
      return [
        {
          scenario: 'bytes per waiting job',
          durability: durabilityLabel('normal'),
          jobs: N,
          headline: `${perJob.toFixed(1)} bytes/job`,
          details: `pg_total_relation_size of the schema's tables: ${s0.bytes.toLocaleString('en-US')} → ${s1.bytes.toLocaleString('en-US')} bytes (${tables}); ${counts.waiting} waiting`,
          metrics: { bytes_per_job: round(perJob, 1), bytes_before: s0.bytes, bytes_after: s1.bytes, waiting: counts.waiting, tables: JSON.stringify(s1.tables) },
        },
      ];
    }
    if (target.file === null) return [];
    const q = cv.queue(queueName('storage'));
    const s0 = sqliteFileBytes(target.file);
    for (let start = 0; start < N; start += BATCH) {
      const size = Math.min(BATCH, N - start);
      await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
    }
    const counts = await q.getCounts();
    const s1 = sqliteFileBytes(target.file);
    const perJob = (s1.bytes - s0.bytes) / N;
    return [
      {
        scenario: 'bytes per waiting job',
        durability: durabilityLabel('normal'),
        jobs: N,
        headline: `${perJob.toFixed(1)} bytes/job`,
        details: `file+WAL after wal_checkpoint(TRUNCATE): ${s0.bytes.toLocaleString('en-US')} → ${s1.bytes.toLocaleString('en-US')} bytes (WAL ${s1.wal}, checkpoint busy=${s1.checkpointBusy}); ${counts.waiting} waiting`,
        metrics: { bytes_per_job: round(perJob, 1), bytes_before: s0.bytes, bytes_after: s1.bytes, wal_after: s1.wal, waiting: counts.waiting },
      },
    ];
  });
}

async function scenarioRecovery(): Promise<Row[]> {
  const N = n(2000);
  const KILL_AFTER = Math.max(1, Math.round(N / 10));
  const CONCURRENCY = 10;
  const LEASE_MS = 2000;
  const HANDLER_MS = 10;
  const r = await withConveyor('recovery', 'normal', async (cv, target) => {
    const q = cv.queue<{ i: number; pad: string }>(queueName('recovery'));
    for (let start = 0; start < N; start += BATCH) {
      const size = Math.min(BATCH, N - start);
      await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
    }
    const startsFile = path.join(target.scratch, 'child-starts.txt');
    const child = spawn(
      process.execPath,
      [path.join(import.meta.dirname, 'child-worker.ts'), target.url, q.name, String(CONCURRENCY), String(LEASE_MS), String(HANDLER_MS), startsFile],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let out = '';
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    await waitFor(() => out.includes('ready'), 'the child worker to start', 30_000);
    await waitFor(async () => (await q.getCounts()).completed >= KILL_AFTER, `${KILL_AFTER} jobs completed by the child`, 60_000, 2);
    child.kill('SIGKILL');
    const tKill = now();
    await exited;
    const atKill = await q.getCounts();

    const rescuerStarts: number[] = [];
    let firstStalledAt = 0;
    const rescuer = cv.worker<{ i: number; pad: string }>(
      q.name,
      async (job) => {
        rescuerStarts.push(job.data.i);
        await sleep(HANDLER_MS);
      },
      { concurrency: CONCURRENCY, leaseMs: LEASE_MS },
    );
    rescuer.on('stalled', () => {
      if (firstStalledAt === 0) firstStalledAt = now();
    });
    await waitFor(async () => {
      const c = await q.getCounts();
      return c.completed + c.failed === N && c.active + c.waiting + c.delayed === 0;
    }, 'every job to finish', 120_000, 5);
    const tDone = now();
    await rescuer.close();
    const after = await q.getCounts();

    const childStarts = fs.readFileSync(startsFile, 'utf8').split('\n').filter((l) => l !== '').map(Number);
    const runs = new Uint16Array(N);
    for (const i of childStarts) runs[i]!++;
    for (const i of rescuerStarts) runs[i]!++;
    let twice = 0;
    let never = 0;
    for (const c of runs) {
      if (c >= 2) twice++;
      if (c === 0) never++;
    }
    return {
      recoverMs: tDone - tKill,
      firstStalledMs: firstStalledAt === 0 ? null : firstStalledAt - tKill,
      atKill,
      after,
      twice,
      never,
      childStarts: childStarts.length,
      rescuerStarts: rescuerStarts.length,
    };
  });
  return [
    {
      scenario: 'recover a SIGKILLed worker',
      durability: durabilityLabel('normal'),
      jobs: N,
      headline: `${rate(r.recoverMs)} ms`,
      details: `kill after ${r.atKill.completed} completed (${r.atKill.active} left active); first stalled job recovered ${r.firstStalledMs === null ? '-' : rate(r.firstStalledMs)} ms after the kill; ran twice: ${r.twice}; never ran: ${r.never}; final ${r.after.completed} completed, ${r.after.failed} failed (leaseMs ${LEASE_MS}, concurrency ${CONCURRENCY}, ${HANDLER_MS} ms handlers)`,
      metrics: {
        recover_ms: round(r.recoverMs, 1),
        first_stalled_ms: r.firstStalledMs === null ? null : round(r.firstStalledMs, 1),
        completed_at_kill: r.atKill.completed,
        active_at_kill: r.atKill.active,
        ran_twice: r.twice,
        never_ran: r.never,
        child_starts: r.childStarts,
        rescuer_starts: r.rescuerStarts,
        completed: r.after.completed,
        failed: r.after.failed,
      },
    },
  ];
}

// ---------------------------------------------------------------------------- main

const SCENARIOS: Record<string, () => Promise<Row[]>> = {
  serial: () => eachDurability(scenarioSerial),
  concurrent: () => eachDurability(scenarioConcurrent),
  bulk: () => eachDurability(scenarioBulk),
  drain: scenarioDrain,
  latency: scenarioLatency,
  idle: scenarioIdle,
  storage: scenarioStorage,
  recovery: scenarioRecovery,
  crowded: scenarioCrowded,
};

/** Runs an enqueue scenario once per selected durability, one after the other. */
async function eachDurability(fn: (d: Durability) => Promise<Row[]>): Promise<Row[]> {
  const out: Row[] = [];
  for (const d of DURABILITIES) out.push(...(await fn(d)));
  return out;
}

function sqliteVersion(): string {
  const db = new DatabaseSync(':memory:');
  try {
    return (db.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v;
  } finally {
    db.close();
  }
}

function table(rows: readonly Row[]): string {
  const lines = ['| scenario | durability | jobs | result | details |', '|---|---|---:|---:|---|'];
  for (const r of rows) {
    lines.push(`| ${r.scenario} | ${r.durability} | ${r.jobs === null ? '' : r.jobs.toLocaleString('en-US')} | ${r.headline} | ${r.details.replaceAll('|', '\\|')} |`);
  }
  return lines.join('\n');
}

async function main(): Promise<void> {
  const names = args.scenarios === undefined ? Object.keys(SCENARIOS) : args.scenarios.split(',').map((s) => s.trim());
  for (const name of names) {
    if (!(name in SCENARIOS)) throw new Error(`unknown scenario '${name}'; scenarios: ${Object.keys(SCENARIOS).join(', ')}`);
  }
  let postgres: string | null = null;
  if (PG !== null) {
    const v = await withPg(async (c) => (await c.query<{ v: string; s: string }>("SELECT current_setting('server_version') AS v, current_setting('synchronous_commit') AS s")).rows[0]!);
    postgres = v.v.split(' ')[0]!;
    PG_DURABILITY = `synchronous_commit=${v.s}`;
  }
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    sqlite: sqliteVersion(),
    postgres,
    cpus: `${os.cpus().length} × ${os.cpus()[0]?.model ?? 'unknown cpu'}`,
    os: `${os.type()} ${os.release()}`,
    store: BASE_URL ?? 'fresh temp SQLite file per scenario (os.tmpdir())',
    scale: SCALE,
  };
  const rows: Row[] = [];
  const failures: string[] = [];
  for (const name of names) {
    log(`${name}…`);
    const t0 = now();
    try {
      const r = await SCENARIOS[name]!();
      rows.push(...r);
      for (const row of r) log(`  ${row.scenario} ${row.durability}: ${row.headline}`);
    } catch (err) {
      failures.push(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
      log(`  ${name} FAILED: ${err instanceof Error ? err.message : String(err)}`);
    }
    log(`  (${((now() - t0) / 1000).toFixed(1)} s)`);
  }
  const header = `conveyor bench — ${meta.date}, Node ${meta.node}, ${postgres === null ? `SQLite ${meta.sqlite}` : `PostgreSQL ${postgres} (${PG_DURABILITY})`}, ${meta.cpus}, ${meta.os}; store: ${meta.store}; scale ${meta.scale}`;
  process.stdout.write(`${header}\n\n${table(rows)}\n`);
  if (failures.length > 0) process.stdout.write(`\nFailed scenarios:\n${failures.map((f) => `- ${f}`).join('\n')}\n`);
  if (args.json !== undefined) {
    fs.writeFileSync(args.json, `${JSON.stringify({ meta, rows, failures }, null, 2)}\n`);
    log(`wrote ${args.json}`);
  }
  process.exitCode = failures.length > 0 ? 1 : 0;
}

await main();
