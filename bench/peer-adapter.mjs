// conveyor adapter for the peer benchmark harness (/work/shared/peer-bench, see its README
// for the interface). Runs conveyor beside BullMQ, graphile-worker, plainjob, … under the
// same seven workloads:
//
//   cd /work/main && npm run build          # this adapter imports the BUILT package, dist/
//   cp -r /work/shared/peer-bench /tmp/peer-bench && chmod -R u+w /tmp/peer-bench   # a writable copy
//   cd /tmp/peer-bench && npm ci && OUT=/tmp/peer-run REPS=1 \
//     SYSTEMS="plainjob graphile bullmq /work/main/bench/peer-adapter.mjs" bash run-all.sh
//
// It imports conveyor from ../dist/index.js (compiled by `npm run build` in the conveyor
// repo), not from src/: the harness runs under plain Node with its own node_modules, and
// the compiled package is what users install. Rebuild after changing src/.
//
// Store: CONVEYOR_URL if set; unset, a fresh temp SQLite file per run in its own temp folder,
// removed in close().
// - sqlite:// URL: the adapter's queue `bench` is emptied in setup().
// - postgres:// URL (PostgreSQL, as the harness README asks of a PostgreSQL peer): give the
//   adapter a database of its own, e.g. CONVEYOR_URL=postgres://root@127.0.0.1:5432/bench_conveyor.
//   setup() creates that database if it is missing and drops conveyor's schema there (the
//   URL's ?schema=, default `conveyor`) with the harness's own helpers, so every run starts
//   from an empty, freshly migrated schema; storage() is the harness's pgSchemaBytes of that
//   schema; statementCounters() are the harness's pgXactCounter of that database (headline,
//   server side) and a client-side count of every `pg` Client#query call conveyor's own copy
//   of `pg` makes in this process (the pool, the LISTEN connection and the notifications
//   included; the harness's clients use the harness's copy of `pg` and are not counted).
//   Durability is the server's: synchronous_commit=on, as for the other PostgreSQL peers;
//   every acknowledged add, claim and completion is flushed to the WAL before it answers.
//
// Settings used, and why (conveyor's README and src/engine/worker.ts defaults; nothing is
// tuned for the harness, one configuration for every scenario):
// - Conveyor.open({ url }) defaults: SQLite in WAL mode with synchronous=NORMAL (durability
//   'normal': an acknowledged add survives a crash of any process, not necessarily a power
//   loss; the same durability as plainjob, liteque and sidequest-sqlite here). PostgreSQL:
//   the store's defaults (pool of 10 connections, schema `conveyor`, LISTEN/NOTIFY wake-ups).
// - Worker: cv.worker('bench', async (job) => handler(job.data), { concurrency: C }) with
//   conveyor's defaults otherwise (src/engine/worker.ts, docs/guide.md): at most C
//   handlers run; batchSize = 4 × C jobs per claim (8 × C against PostgreSQL; at least
//   10, at most 1,000); adaptive prefetch: 3 × C claimed jobs may wait in the local buffer
//   while handlers are short (< 25 ms; 14 × C against PostgreSQL, where a claim is a
//   network round trip, and up to two claims overlap), C for medium ones, none for long
//   ones (> 500 ms); buffered jobs are `active` in the store and count as pending here;
//   leaseMs 30,000 renewed every 10 s, stalled-job check and worker-registry report every
//   15 s, idle safety-net poll every 30 s (pollMs; the stores used here signal other
//   processes' writes; PostgreSQL: while LISTEN is verified, else 5 s); new jobs from this process wake the
//   worker at once through the store's in-process signal, jobs from other processes
//   through a watch on the WAL file (SQLite) or LISTEN/NOTIFY (PostgreSQL). Completions
//   are written in batches (one completeMany per event-loop turn, one in flight);
//   completed jobs are kept (state completed; PostgreSQL: moved to jobs_done).
// - Enqueue: Queue.add (concurrent adds in one turn share one transaction: group commit).
// - Bulk: Queue.addBulk (one transaction per call, multi-row INSERTs).
// - counts(): Queue.getCounts(); pending = waiting + delayed + active (active includes
//   claimed-but-buffered jobs), completed = completed.
// - Statements: no server, so the counter is client side: every node:sqlite
//   StatementSync run/get/all/iterate and DatabaseSync exec call in this process, counted
//   by patching the prototypes (transaction control included: conveyor prepares BEGIN
//   IMMEDIATE / COMMIT as statements). In the harness every node:sqlite statement in the
//   process is conveyor's; the adapter's own storage checkpoint is excluded. Headline and
//   client-side figure are the same counter, as for the other SQLite peers.
// - Storage: database file + WAL after PRAGMA wal_checkpoint(TRUNCATE) issued on a
//   separate node:sqlite connection (the same SQLite library copy as conveyor's), before
//   and after, as lib/common.mjs sqliteFileBytes does for the better-sqlite3 peers.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync, StatementSync } from 'node:sqlite';
import { pathToFileURL } from 'node:url';
import pg from 'pg';
import { Conveyor } from '../dist/index.js';

const QUEUE = 'bench';
const pkg = JSON.parse(fs.readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

// ------------------------------------------------------------ statement counter
// Installed once per process; `uncounted` brackets the adapter's own statements.
const counter = { n: 0, uncounted: 0 };
let patched = false;
function installNodeSqliteCounter() {
  if (patched) return;
  patched = true;
  for (const m of ['run', 'get', 'all', 'iterate']) {
    const orig = StatementSync.prototype[m];
    StatementSync.prototype[m] = function countedStatement(...args) {
      if (counter.uncounted === 0) counter.n++;
      return orig.apply(this, args);
    };
  }
  const exec = DatabaseSync.prototype.exec;
  DatabaseSync.prototype.exec = function countedExec(...args) {
    if (counter.uncounted === 0) counter.n++;
    return exec.apply(this, args);
  };
}

function uncounted(fn) {
  counter.uncounted++;
  try {
    return fn();
  } finally {
    counter.uncounted--;
  }
}

/** File + WAL after a TRUNCATE checkpoint on a separate node:sqlite connection. */
function sqliteFileBytes(file) {
  return uncounted(() => {
    const probe = new DatabaseSync(file);
    try {
      const checkpoint = probe.prepare('PRAGMA wal_checkpoint(TRUNCATE)').get() ?? null;
      const size = (f) => (fs.existsSync(f) ? fs.statSync(f).size : 0);
      const main = size(file);
      const wal = size(`${file}-wal`);
      return { bytes: main + wal, main, wal, checkpoint };
    } finally {
      probe.close();
    }
  });
}

function sqliteVersion() {
  return uncounted(() => {
    const db = new DatabaseSync(':memory:');
    try {
      return db.prepare('SELECT sqlite_version() AS v').get().v;
    } finally {
      db.close();
    }
  });
}

// -------------------------------------------------------------------- PostgreSQL

/** A postgres:// CONVEYOR_URL, split into database and schema; null for anything else. */
function postgresTarget(url) {
  if (!url || !/^postgres(ql)?:\/\//i.test(url)) return null;
  const u = new URL(url);
  const db = decodeURIComponent(u.pathname.replace(/^\//, ''));
  if (db === '') throw new Error(`CONVEYOR_URL ${url} names no database; give conveyor a database of its own, e.g. /bench_conveyor`);
  return { url, db, schema: u.searchParams.get('schema') ?? 'conveyor' };
}

/**
 * The harness's own helpers (lib/common.mjs next to run.mjs): the same database creation,
 * schema reset, storage and server-side statement measurements as the other PostgreSQL peers.
 */
async function harnessLib() {
  const runner = process.argv[1] ?? '';
  const file = path.join(path.dirname(runner), 'lib', 'common.mjs');
  if (!fs.existsSync(file)) throw new Error(`a postgres:// CONVEYOR_URL needs the peer harness's lib/common.mjs (looked for ${file}); run this adapter through the harness's run.mjs`);
  return import(pathToFileURL(file).href);
}

/** Client-side count of every Client#query call made through conveyor's copy of `pg`. */
const pgCounter = { n: 0 };
let pgPatched = false;
function installPgCounter() {
  if (pgPatched) return;
  pgPatched = true;
  const orig = pg.Client.prototype.query;
  pg.Client.prototype.query = function countedQuery(...args) {
    pgCounter.n++;
    return orig.apply(this, args);
  };
}

export default function createAdapter() {
  let dir = null;
  let file = null;
  let cv = null;
  let queue = null;
  const errors = [];
  const pgTarget = postgresTarget(process.env.CONVEYOR_URL);
  let lib = null;
  if (pgTarget) installPgCounter();
  else installNodeSqliteCounter();

  return {
    name: 'conveyor',
    version: pkg.version,
    backend: pgTarget ? 'postgres' : `sqlite (node:sqlite, SQLite ${sqliteVersion()})`,
    settings: {
      worker: "cv.worker('bench', handler, { concurrency: C }); defaults: batchSize=4×C (8×C on PostgreSQL; 10–1000), adaptive prefetch (3×C for short jobs; 14×C on PostgreSQL), leaseMs=30000, safety-net poll 30 s (wake-up signals), registry report every 15 s",
      store: pgTarget
        ? `CONVEYOR_URL=${process.env.CONVEYOR_URL} (own database; schema ${pgTarget.schema} dropped in setup; store defaults: pool 10, LISTEN/NOTIFY; synchronous_commit=on)`
        : process.env.CONVEYOR_URL ? `CONVEYOR_URL=${process.env.CONVEYOR_URL}` : 'Conveyor.open defaults: fresh SQLite file, WAL, synchronous=NORMAL (durability normal)',
      enqueue: 'Queue.add (group commit of concurrent adds)',
      bulk: 'Queue.addBulk (one transaction per call)',
    },
    errors,

    async setup() {
      let url = process.env.CONVEYOR_URL;
      if (pgTarget) {
        lib = await harnessLib();
        await lib.ensureDatabase(pgTarget.db);
        await lib.dropSchemas(pgTarget.db, [pgTarget.schema]);
        cv = await Conveyor.open({ url });
        queue = cv.queue(QUEUE);
        const c = lib.harnessPgClient(pgTarget.db);
        await c.connect();
        try {
          const v = await c.query("select current_setting('server_version') as v, current_setting('synchronous_commit') as s");
          this.backend = `postgres ${v.rows[0].v.split(' ')[0]} (synchronous_commit=${v.rows[0].s})`;
        } finally {
          await c.end();
        }
        return;
      }
      if (!url) {
        dir = fs.mkdtempSync(path.join(os.tmpdir(), 'bench-conveyor-'));
        file = path.join(dir, 'q.db');
        url = `sqlite://${file}`;
      } else if (/^sqlite:/i.test(url) || url.startsWith('/')) {
        const rest = url.split('?')[0].replace(/^sqlite:(\/\/)?/i, '');
        file = path.resolve(decodeURIComponent(rest));
      }
      cv = await Conveyor.open({ url });
      queue = cv.queue(QUEUE);
      // A shared store keeps other data; the harness's queue starts empty.
      if (process.env.CONVEYOR_URL) {
        await queue.drain({ delayed: true });
        for (const state of ['completed', 'failed', 'cancelled']) await queue.clean({ state });
        const c = await queue.getCounts();
        if (c.active > 0) throw new Error(`queue ${QUEUE} in ${url} has ${c.active} active jobs; use an idle store`);
      }
      this.backend = `sqlite ${sqliteVersion()} (node:sqlite, Node ${process.version}, journal wal)`;
    },

    async enqueue(data) {
      await queue.add(QUEUE, data);
    },

    async enqueueBulk(datas) {
      const jobs = new Array(datas.length);
      for (let k = 0; k < datas.length; k++) jobs[k] = { name: QUEUE, data: datas[k] };
      await queue.addBulk(jobs);
    },

    async startWorker({ concurrency, handler }) {
      const worker = cv.worker(QUEUE, async (job) => handler(job.data), { concurrency });
      worker.on('error', (e) => errors.push(`worker: ${String(e?.message ?? e).slice(0, 200)}`));
      worker.on('failed', (job, e) => errors.push(`job ${job.id} failed: ${String(e?.message ?? e).slice(0, 200)}`));
      return { stop: () => worker.close() };
    },

    async counts() {
      const c = await queue.getCounts();
      return {
        pending: c.waiting + c.delayed + c.active,
        failed: c.failed,
        completed: c.completed,
        completedSource: 'Queue.getCounts().completed',
      };
    },

    async storage() {
      if (pgTarget) {
        const st = await lib.pgSchemaBytes(pgTarget.db, [pgTarget.schema]);
        return { bytes: st.bytes, primary: `pg_total_relation_size of all ${pgTarget.schema} tables`, tables: st.tables };
      }
      if (file === null) return { bytes: 0, primary: 'n/a: CONVEYOR_URL is not a SQLite file' };
      const s = sqliteFileBytes(file);
      return { bytes: s.bytes, primary: 'database file + WAL file size after wal_checkpoint(TRUNCATE) on a separate node:sqlite connection' };
    },

    async statementCounters() {
      if (pgTarget) {
        return [
          await lib.pgXactCounter(pgTarget.db),
          { kind: "pg Client#query calls in-process (conveyor's copy of pg: pool, LISTEN connection, notifications)", read: async () => pgCounter.n, close: async () => {} },
        ];
      }
      const c = {
        kind: 'node:sqlite StatementSync run/get/all/iterate + DatabaseSync exec calls in-process (client side; SQLite has no server; every node:sqlite statement in this process is conveyor\'s)',
        read: async () => counter.n,
        close: async () => {},
      };
      return [c, c];
    },

    async close() {
      try {
        await cv?.close();
      } finally {
        if (dir) fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
