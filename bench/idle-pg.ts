/**
 * Idle cost of a PostgreSQL worker, counted exactly on the server: conveyor against a
 * private PostgreSQL server started by this script with `pg_stat_statements` preloaded
 * (the shared server cannot load it without a restart), so every statement the server
 * executes for conveyor is counted by text, and nothing else runs in that database.
 *
 *   node bench/idle-pg.ts                       # 12 s settle, 60 s window
 *   node bench/idle-pg.ts --window 120 --settle 30 --json /tmp/idle.json
 *
 * Same workload as the peer harness's idle-cost: a worker (concurrency 50) on an empty
 * queue, default settings (LISTEN/NOTIFY, pool of 10, lease 30 s). Reported per minute:
 *   statements   pg_stat_statements calls (top-level statements, as clients send them) in
 *                conveyor's database (reset at the window's
 *                start; the script's own reads run in another database), by statement
 *   client       every `pg` Client#query call in this process (pool, LISTEN connection)
 *   xacts        pg_stat_database xact_commit + xact_rollback of that database (the peer
 *                harness's counter), and how many autovacuum/autoanalyze runs the server
 *                logged for it in the window: that counter also counts the transactions of
 *                autovacuum workers visiting the database, and counts a backend's
 *                transactions only when that backend next flushes its statistics.
 * The server (initdb into a temp folder, as the `postgres` user when run as root, fsync off:
 * idle cost does not depend on it) is stopped and removed at the end.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Conveyor } from '../src/index.ts';

const { values: args } = parseArgs({
  options: {
    window: { type: 'string', default: '60' },
    settle: { type: 'string', default: '12' },
    json: { type: 'string' },
  },
});
const WINDOW_S = Number(args.window);
const SETTLE_S = Number(args.settle);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

function binDir(): string {
  const versions = fs.readdirSync('/usr/lib/postgresql').filter((v) => /^\d+$/.test(v)).sort((a, b) => Number(b) - Number(a));
  for (const v of versions) if (fs.existsSync(`/usr/lib/postgresql/${v}/bin/initdb`)) return `/usr/lib/postgresql/${v}/bin`;
  return execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim();
}
const isRoot = process.getuid?.() === 0;
function asPostgres(cmd: string, argv: string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', cmd, ...argv]] : [cmd, argv];
}
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a !== null ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

const bin = binDir();
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-idle-pg-'));
if (isRoot) {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }));
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }));
  fs.chownSync(dir, uid, gid);
}
fs.chmodSync(dir, 0o755);
const data = path.join(dir, 'data');
const logFile = path.join(dir, 'server.log');
const port = await freePort();
const run = (tool: string, argv: string[]): void => {
  const [cmd, a] = asPostgres(path.join(bin, tool), argv);
  const r = spawnSync(cmd, a, { encoding: 'utf8', timeout: 60_000 });
  if (r.status !== 0) throw new Error(`${tool} failed: ${r.stderr}${r.stdout}`);
};
let started = false;
try {
  run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C', '--no-instructions']);
  const opts = [
    `-p ${port}`,
    `-k ${dir}`,
    '-c listen_addresses=127.0.0.1',
    '-c fsync=off',
    '-c shared_preload_libraries=pg_stat_statements',
    '-c pg_stat_statements.track=top',
    '-c log_autovacuum_min_duration=0',
    "-c log_line_prefix='%m [%p] %d '",
  ].join(' ');
  run('pg_ctl', ['-D', data, '-l', logFile, '-w', '-t', '30', '-o', opts, 'start']);
  started = true;
  const base = `postgres://postgres@127.0.0.1:${port}`;
  const admin = new pg.Client({ connectionString: `${base}/postgres` });
  await admin.connect();
  await admin.query('CREATE DATABASE idle');
  const inIdle = new pg.Client({ connectionString: `${base}/idle` });
  await inIdle.connect();
  await inIdle.query('CREATE EXTENSION pg_stat_statements');
  await inIdle.end();
  await admin.query('CREATE EXTENSION pg_stat_statements');

  // Client-side count of conveyor's queries (the script's own clients are flagged).
  const proto = pg.Client.prototype as unknown as { query: (...a: unknown[]) => unknown };
  const orig = proto.query;
  let client = 0;
  proto.query = function counted(this: { __mine?: boolean }, ...a: unknown[]) {
    if (this.__mine !== true) client++;
    return orig.apply(this, a);
  };
  (admin as unknown as { __mine: boolean }).__mine = true;

  const cv = await Conveyor.open({ url: `${base}/idle` });
  const worker = cv.worker('bench', async () => {}, { concurrency: 50 });
  await sleep(SETTLE_S * 1000);
  const xacts = async (): Promise<number> => {
    await admin.query('SELECT pg_stat_clear_snapshot()');
    return Number((await admin.query("SELECT xact_commit + xact_rollback AS n FROM pg_stat_database WHERE datname = 'idle'")).rows[0].n);
  };
  const dbid = Number((await admin.query("SELECT oid FROM pg_database WHERE datname = 'idle'")).rows[0].oid);
  await admin.query('SELECT pg_stat_statements_reset()');
  const x0 = await xacts();
  const c0 = client;
  const logAt0 = fs.statSync(logFile).size;
  const t0 = performance.now();
  await sleep(WINDOW_S * 1000);
  const secs = (performance.now() - t0) / 1000;
  const c1 = client;
  const rows = (await admin.query<{ query: string; calls: string }>('SELECT query, calls FROM pg_stat_statements WHERE dbid = $1 ORDER BY calls DESC', [dbid])).rows;
  const x1 = await xacts();
  const log = fs.readFileSync(logFile, 'utf8').slice(logAt0);
  const autovac = log.split('\n').filter((l) => / idle .*automatic (vacuum|analyze)/.test(l)).length;
  await worker.close();
  await cv.close();
  await admin.end();
  proto.query = orig;

  const perMin = (n: number): number => Math.round(((n * 60) / secs) * 10) / 10;
  const statements = rows.reduce((a, r) => a + Number(r.calls), 0);
  const byStatement = rows.map((r) => ({ calls: Number(r.calls), query: r.query.replace(/\s+/g, ' ').slice(0, 90) }));
  const out = {
    window_s: Math.round(secs * 10) / 10,
    settle_s: SETTLE_S,
    statements_per_min: perMin(statements),
    client_queries_per_min: perMin(c1 - c0),
    xacts_per_min: perMin(x1 - x0),
    autovacuum_runs_in_window: autovac,
    by_statement: byStatement,
  };
  process.stdout.write(
    `idle PostgreSQL worker, ${out.window_s} s window after ${SETTLE_S} s settle (private server with pg_stat_statements):\n` +
      `  server statements (pg_stat_statements): ${out.statements_per_min}/min\n` +
      `  client queries (pg Client#query):       ${out.client_queries_per_min}/min\n` +
      `  pg_stat_database transactions:          ${out.xacts_per_min}/min (autovacuum/autoanalyze runs logged for the database in the window: ${autovac})\n` +
      byStatement.map((s) => `    ${String(s.calls).padStart(4)} × ${s.query}`).join('\n') +
      '\n',
  );
  if (args.json !== undefined) fs.writeFileSync(args.json, `${JSON.stringify(out, null, 2)}\n`);
} finally {
  if (started) {
    const [cmd, a] = asPostgres(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
    spawnSync(cmd, a, { encoding: 'utf8', timeout: 60_000 });
  }
  fs.rmSync(dir, { recursive: true, force: true });
}
