#!/usr/bin/env node
// node:sqlite vs better-sqlite3 on this machine, same SQL, same pragmas (WAL,
// synchronous=NORMAL), fresh file per measurement, the two drivers interleaved per round.
//
//   serial  one row per transaction: BEGIN IMMEDIATE, INSERT, COMMIT (prepared)
//   bulk    1,000-row transactions of prepared INSERTs
//   drain   a minimal job queue: 50,000 waiting rows (partial index on state = 0); claim
//           50 per transaction with UPDATE … WHERE id IN (SELECT … LIMIT 50) RETURNING,
//           JSON.parse each payload, then complete the 50 in one transaction (one
//           fenced UPDATE per row)
//
// better-sqlite3 is NOT a dependency of conveyor. Run this from a scratch folder where it
// is installed, e.g.:
//   mkdir -p /tmp/sqlite-drivers && cd /tmp/sqlite-drivers && npm init -y >/dev/null && npm install better-sqlite3@13
//   node /work/main/bench/sqlite-drivers.mjs [--rounds 3] [--scale 1]
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';

const { values: args } = parseArgs({ options: { rounds: { type: 'string', default: '3' }, scale: { type: 'string', default: '1' } } });
const ROUNDS = Number(args.rounds);
const SCALE = Number(args.scale);
const n = (x) => Math.max(1, Math.round(x * SCALE));

const require = createRequire(path.join(process.cwd(), 'noop.js'));
let BetterSqlite3;
try {
  BetterSqlite3 = require('better-sqlite3');
} catch {
  process.stderr.write('better-sqlite3 not found from the current folder; see the header for how to install it in a scratch folder\n');
  process.exit(2);
}
const betterVersion = require('better-sqlite3/package.json').version;

const drivers = {
  'node:sqlite': (file) => new DatabaseSync(file),
  'better-sqlite3': (file) => new BetterSqlite3(file),
};

const PAD = 'x'.repeat(100);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sqlite-drivers-'));
let fileNo = 0;

function open(driver) {
  const db = drivers[driver](path.join(dir, `db-${fileNo++}.db`));
  db.exec('PRAGMA journal_mode = WAL');
  db.exec('PRAGMA synchronous = NORMAL');
  return db;
}

function serial(driver) {
  const N = n(20000);
  const db = open(driver);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
  const one = (i) => {
    begin.run();
    insert.run(JSON.stringify({ i, pad: PAD }));
    commit.run();
  };
  for (let i = 0; i < 200; i++) one(-1 - i);
  const t0 = performance.now();
  for (let i = 0; i < N; i++) one(i);
  const rate = N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

function bulk(driver) {
  const N = n(200000);
  const db = open(driver);
  db.exec('CREATE TABLE t (id INTEGER PRIMARY KEY, data TEXT NOT NULL)');
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const insert = db.prepare('INSERT INTO t (data) VALUES (?)');
  const t0 = performance.now();
  for (let start = 0; start < N; start += 1000) {
    begin.run();
    for (let i = start; i < Math.min(N, start + 1000); i++) insert.run(JSON.stringify({ i, pad: PAD }));
    commit.run();
  }
  const rate = N / ((performance.now() - t0) / 1000);
  db.close();
  return rate;
}

function drain(driver) {
  const N = n(50000);
  const BATCH = 50;
  const db = open(driver);
  db.exec(`CREATE TABLE jobs (id INTEGER PRIMARY KEY, state INTEGER NOT NULL, data TEXT NOT NULL, lease TEXT, finished_at INTEGER);
           CREATE INDEX jobs_waiting ON jobs (id) WHERE state = 0;`);
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const insert = db.prepare('INSERT INTO jobs (state, data) VALUES (0, ?)');
  for (let start = 0; start < N; start += 1000) {
    begin.run();
    for (let i = start; i < Math.min(N, start + 1000); i++) insert.run(JSON.stringify({ i, pad: PAD }));
    commit.run();
  }
  const claim = db.prepare(
    'UPDATE jobs SET state = 1, lease = ? WHERE id IN (SELECT id FROM jobs WHERE state = 0 ORDER BY id LIMIT ?) RETURNING id, data',
  );
  const complete = db.prepare('UPDATE jobs SET state = 2, lease = NULL, finished_at = ? WHERE id = ? AND state = 1 AND lease = ?');
  let done = 0;
  let sum = 0;
  const t0 = performance.now();
  for (;;) {
    const lease = Math.random().toString(36).slice(2);
    begin.run();
    const rows = claim.all(lease, BATCH);
    commit.run();
    if (rows.length === 0) break;
    for (const r of rows) sum += JSON.parse(r.data).i; // the "handler"
    const at = Date.now();
    begin.run();
    for (const r of rows) complete.run(at, r.id, lease);
    commit.run();
    done += rows.length;
  }
  const rate = done / ((performance.now() - t0) / 1000);
  if (done !== N || sum !== (N * (N - 1)) / 2) throw new Error(`drain check failed: ${done} done`);
  db.close();
  return rate;
}

const scenarios = { serial, bulk, drain };
const results = {};
for (let round = 0; round < ROUNDS; round++) {
  const order = round % 2 === 0 ? Object.keys(drivers) : Object.keys(drivers).reverse();
  for (const [name, fn] of Object.entries(scenarios)) {
    for (const driver of order) {
      const rate = fn(driver);
      ((results[name] ??= {})[driver] ??= []).push(rate);
      process.stderr.write(`round ${round + 1} ${name.padEnd(6)} ${driver.padEnd(14)} ${Math.round(rate).toLocaleString('en-US')}/s\n`);
    }
  }
}
fs.rmSync(dir, { recursive: true, force: true });

const sqliteOf = (driver) => {
  const db = drivers[driver](':memory:');
  const v = db.prepare('SELECT sqlite_version() AS v').get().v;
  db.close();
  return v;
};
const fmt = (xs) => {
  const s = [...xs].sort((a, b) => a - b);
  const k = (x) => `${Math.round(x / 1000)}k`;
  return `${k(s[Math.floor(s.length / 2)])} (${k(s[0])}–${k(s[s.length - 1])})`;
};
console.log(`node:sqlite vs better-sqlite3 — ${new Date().toISOString()}, Node ${process.version}, ${os.cpus().length} × ${os.cpus()[0]?.model}, ${ROUNDS} rounds, rows/s median (min–max)\n`);
console.log(`| scenario | node:sqlite (SQLite ${sqliteOf('node:sqlite')}) | better-sqlite3 ${betterVersion} (SQLite ${sqliteOf('better-sqlite3')}) |`);
console.log('|---|---:|---:|');
const labels = { serial: `serial: 1 INSERT + COMMIT per row (${n(20000).toLocaleString('en-US')} rows)`, bulk: `bulk: 1,000-row transactions (${n(200000).toLocaleString('en-US')} rows)`, drain: `drain: claim 50 + complete 50 (${n(50000).toLocaleString('en-US')} jobs)` };
for (const name of Object.keys(scenarios)) {
  console.log(`| ${labels[name]} | ${fmt(results[name]['node:sqlite'])} | ${fmt(results[name]['better-sqlite3'])} |`);
}
