/**
 * What bounds a serial add: raw node:sqlite, no conveyor engine, one row per transaction
 * (BEGIN IMMEDIATE, INSERT, COMMIT), into conveyor's real `jobs` table and into variants
 * of it, so the cost of each part of the schema shows. Also reports WAL frames written per
 * commit (with auto-checkpoints off, the WAL only grows), which is what a commit costs.
 *
 *   node bench/schema-serial.ts [--rows 5000] [--rounds 3]
 *
 * The schema is whatever the store's migrations create today (a store is opened on a fresh
 * file and closed); variants are copies of it with one thing removed. The INSERT names the
 * columns src/stores/sqlite/enqueue.ts writes; update it if they change.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { DatabaseSync } from 'node:sqlite';
import { parseArgs } from 'node:util';
import { openStore } from '../src/store/open.ts';

const { values: args } = parseArgs({ options: { rows: { type: 'string', default: '5000' }, rounds: { type: 'string', default: '3' } } });
const N = Number(args.rows);
const ROUNDS = Number(args.rounds);
const PAD = 'x'.repeat(100);
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-schema-serial-'));

// The store's schema, as SQL statements, from a freshly migrated file.
const template = path.join(dir, 'template.db');
openStore({ url: `sqlite://${template}` }).close();
const t = new DatabaseSync(template);
const schema = (t.prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY type DESC").all() as Array<{ type: string; name: string; sql: string }>);
t.close();

const JOB_INSERT =
  'INSERT INTO jobs (queue, name, data, opts, state, priority, max_attempts, run_at, created_at, lease_ms) VALUES (?, ?, ?, NULL, 0, 0, 1, ?, ?, NULL)';

interface Variant {
  readonly label: string;
  readonly ddl: () => string[];
  readonly insert: string;
  readonly args: (i: number) => Array<string | number>;
}

const conveyorDdl = (edit: (s: { type: string; name: string; sql: string }) => string | null) => () =>
  schema.map(edit).filter((s): s is string => s !== null);
const jobArgs = (i: number): Array<string | number> => [1, 'bench', JSON.stringify({ i, pad: PAD }), Date.now(), Date.now()];

const variants: Variant[] = [
  { label: 'simple table (id INTEGER PRIMARY KEY, data TEXT)', ddl: () => ['CREATE TABLE jobs (id INTEGER PRIMARY KEY, data TEXT NOT NULL)'], insert: 'INSERT INTO jobs (data) VALUES (?)', args: (i) => [JSON.stringify({ i, pad: PAD })] },
  { label: "conveyor's schema as migrated", ddl: conveyorDdl((s) => s.sql), insert: JOB_INSERT, args: jobArgs },
  { label: '… without AUTOINCREMENT', ddl: conveyorDdl((s) => s.sql.replace(/AUTOINCREMENT/i, '')), insert: JOB_INSERT, args: jobArgs },
  { label: '… without AUTOINCREMENT and without the claim index', ddl: conveyorDdl((s) => (s.name === 'jobs_claim' ? null : s.sql.replace(/AUTOINCREMENT/i, ''))), insert: JOB_INSERT, args: jobArgs },
];

function measure(v: Variant, k: number): { rate: number; framesPerCommit: number } {
  const file = path.join(dir, `v${k}-${Math.random().toString(36).slice(2)}.db`);
  const db = new DatabaseSync(file);
  db.exec('PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA cache_size = -32768; PRAGMA wal_autocheckpoint = 0;');
  for (const sql of v.ddl()) db.exec(sql);
  if (v.insert === JOB_INSERT) db.exec("INSERT INTO queues (name) VALUES ('bench')");
  const begin = db.prepare('BEGIN IMMEDIATE');
  const commit = db.prepare('COMMIT');
  const insert = db.prepare(v.insert);
  const one = (i: number): void => {
    begin.run();
    insert.run(...v.args(i));
    commit.run();
  };
  for (let i = 0; i < 100; i++) one(-1 - i);
  const before = (db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number }).log;
  // The PASSIVE checkpoint above copied frames but the WAL keeps growing (no reset while we write).
  const t0 = performance.now();
  for (let i = 0; i < N; i++) one(i);
  const rate = N / ((performance.now() - t0) / 1000);
  const after = (db.prepare('PRAGMA wal_checkpoint(PASSIVE)').get() as { log: number }).log;
  db.close();
  return { rate, framesPerCommit: (after - before) / N };
}

const results = variants.map(() => ({ rates: [] as number[], frames: 0 }));
for (let r = 0; r < ROUNDS; r++) {
  variants.forEach((v, k) => {
    const m = measure(v, k);
    results[k]!.rates.push(m.rate);
    results[k]!.frames = m.framesPerCommit;
  });
}
fs.rmSync(dir, { recursive: true, force: true });

console.log(`serial INSERT + COMMIT, raw node:sqlite, WAL + synchronous=NORMAL, ${N.toLocaleString('en-US')} rows × ${ROUNDS} rounds, ${new Date().toISOString()}\n`);
console.log('| table | rows/s, median (min–max) | WAL frames per commit |');
console.log('|---|---:|---:|');
variants.forEach((v, k) => {
  const s = [...results[k]!.rates].sort((a, b) => a - b);
  const f = (x: number): string => Math.round(x).toLocaleString('en-US');
  console.log(`| ${v.label} | ${f(s[Math.floor(s.length / 2)]!)} (${f(s[0]!)}–${f(s[s.length - 1]!)}) | ${results[k]!.frames.toFixed(2)} |`);
});
