/**
 * Where the enqueue → handler-start time goes, job by job (a profiling aid for the
 * `latency` scenario of bench.ts; timings are reported, never asserted).
 *
 *   node bench/latency-trace.ts --url 'postgres://root@127.0.0.1:5432/test?schema=bench_trace'
 *   node bench/latency-trace.ts --url … --jobs 2000 --rate 200 --json /tmp/trace.json
 *
 * Same workload as bench.ts `latency`: one worker (concurrency 50) idle for 2 s, then jobs
 * sent open-loop at `--rate` per second from the same process. A Proxy around the store
 * timestamps every enqueueMany, claim and completeMany call; the handler timestamps its
 * start. Each job's latency is then split into
 *   batch   add() called → its enqueueMany call starts (validation, group-commit microtask,
 *           or waiting for the previous enqueueMany to answer)
 *   insert  enqueueMany call → answered (round trip + commit flush)
 *   wake    enqueueMany answered → the claim that took the job was sent (signal delivery,
 *           or waiting for a claim in flight that started before the job was committed)
 *   claim   that claim sent → answered (round trip + commit flush)
 *   start   claim answered → handler entered
 * and the slowest 1 % of jobs are shown segment by segment, beside the event-loop delay
 * (perf_hooks histogram) and the claims already in flight when each claim was sent. The schema of
 * a postgres url is DROPPED and migrated afresh, so name a scratch schema.
 */
import fs from 'node:fs';
import { monitorEventLoopDelay, performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Conveyor } from '../src/index.ts';
import { startRecorder } from '../src/bench/scenarios.ts';
import type { Store } from '../src/store/contract.ts';
import { openStore, parseStoreUrl } from '../src/store/open.ts';
import { parsePostgresUrl } from '../src/stores/postgres/connection.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    jobs: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '200' },
    json: { type: 'string' },
    /** A/B: NAME=a,b sets process.env.NAME to a, b, a, b, … round by round (engine experiments). */
    ab: { type: 'string' },
    rounds: { type: 'string', default: '6' },
  },
});
const AB = args.ab === undefined ? null : { name: args.ab.split('=')[0]!, values: args.ab.split('=')[1]!.split(',') };
const URL_ = args.url ?? process.env.CONVEYOR_URL;
if (URL_ === undefined) throw new Error('--url (or CONVEYOR_URL) is required');
const N = Number(args.jobs);
const RATE = Number(args.rate);
const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

if (parseStoreUrl(URL_).kind === 'postgres') {
  const parsed = parsePostgresUrl(URL_);
  if (parsed.schema === undefined) throw new Error('name a scratch schema with ?schema=');
  const c = new pg.Client({ connectionString: parsed.connectionString });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${parsed.schema.replaceAll('"', '""')}" CASCADE`);
  await c.end();
}

interface Call {
  readonly op: string;
  readonly t0: number;
  t1: number;
  ids: string[];
  inFlight: number;
}
const calls: Call[] = [];
let inFlightClaims = 0;
const inner = openStore({ url: URL_ });
const store = new Proxy(inner, {
  get(target, prop) {
    const value: unknown = Reflect.get(target, prop, target);
    if (typeof value !== 'function' || !['enqueueMany', 'claim', 'completeMany'].includes(String(prop))) {
      return typeof value === 'function' ? value.bind(target) : value;
    }
    const op = String(prop);
    return (params: unknown) => {
      const call: Call = { op, t0: now(), t1: 0, ids: [], inFlight: op === 'claim' ? inFlightClaims : 0 };
      if (op === 'claim') inFlightClaims++;
      calls.push(call);
      const out = (value as (p: unknown) => unknown).call(target, params) as Promise<unknown>;
      return Promise.resolve(out).then((r) => {
        call.t1 = now();
        if (op === 'claim') {
          inFlightClaims--;
          call.ids = (r as { jobs: Array<{ id: string }> }).jobs.map((j) => j.id);
        } else if (op === 'enqueueMany') {
          call.ids = (r as Array<{ id: string }>).map((x) => x.id);
        }
        return r;
      });
    };
  },
}) as Store;

const cv = await Conveyor.open({ store });
const q = cv.queue<{ i: number; pad: string }>('trace');
const sentAt = new Float64Array(N);
const idOf = new Array<string>(N);
const recorder = startRecorder(cv, q.name, N);
const { startAt } = recorder;
// The floor beside it: the same rate through a plain `pg` pool (10 connections, as the
// store's), two autocommit statements per "job", the second sent as soon as the first
// answered: INSERT a row (the add), then UPDATE it (the claim). Two commit flushes in
// sequence and nothing else: no notification, no acknowledgement, no batching.
const raw = parseStoreUrl(URL_).kind === 'postgres' ? await rawFloorPool() : null;
const rawLat: number[] = [];
async function rawFloorPool(): Promise<{ pool: pg.Pool; end: () => Promise<void> }> {
  const pool = new pg.Pool({ connectionString: parsePostgresUrl(URL_!).connectionString, max: 10 });
  await pool.query('DROP TABLE IF EXISTS conveyor_latency_floor');
  await pool.query('CREATE TABLE conveyor_latency_floor (id bigserial PRIMARY KEY, state int NOT NULL, data text NOT NULL)');
  return {
    pool,
    end: async () => {
      await pool.query('DROP TABLE IF EXISTS conveyor_latency_floor');
      await pool.end();
    },
  };
}

await sleep(2000);
const loop = monitorEventLoopDelay({ resolution: 1 });
loop.enable();
const ROUNDS = Number(args.rounds);
const per = Math.ceil(N / ROUNDS);
const variantOf = (i: number): string => (AB === null ? '' : AB.values[Math.floor(i / per) % AB.values.length]!);
for (let round = 0; round < ROUNDS; round++) {
  if (AB !== null) process.env[AB.name] = AB.values[round % AB.values.length];
  // conveyor: jobs round*per … (round+1)*per - 1
  const pending: Array<Promise<void>> = [];
  const t0 = now();
  for (let i = round * per; i < Math.min(N, (round + 1) * per); i++) {
    const wait = t0 + ((i - round * per) * 1000) / RATE - now();
    if (wait > 1) await sleep(wait);
    sentAt[i] = now();
    pending.push(q.add('bench', { i, pad: 'x'.repeat(100) }).then((job) => void (idOf[i] = job.id)));
  }
  await Promise.all(pending);
  const deadline = now() + 30_000;
  while (recorder.received() < Math.min(N, (round + 1) * per) && now() < deadline) await sleep(10);
  if (raw === null) continue;
  await sleep(200);
  const rawPending: Array<Promise<void>> = [];
  const r0 = now();
  for (let k = 0; k < per; k++) {
    const wait = r0 + (k * 1000) / RATE - now();
    if (wait > 1) await sleep(wait);
    const s0 = now();
    rawPending.push(
      (async () => {
        const r = await raw.pool.query({ name: 'ins', text: 'INSERT INTO conveyor_latency_floor (state, data) VALUES (0, $1) RETURNING id', values: [JSON.stringify({ i: k, pad: 'x'.repeat(100) })] });
        await raw.pool.query({ name: 'upd', text: 'UPDATE conveyor_latency_floor SET state = 1 WHERE id = $1 AND state = 0', values: [r.rows[0].id] });
        rawLat.push(now() - s0);
      })(),
    );
  }
  await Promise.all(rawPending);
  await sleep(200);
}
loop.disable();
await recorder.close();
await cv.close();
await raw?.end();

// Index calls by job id.
const enqOf = new Map<string, Call>();
const claimOf = new Map<string, Call>();
for (const c of calls) {
  for (const id of c.ids) {
    if (c.op === 'enqueueMany') enqOf.set(id, c);
    else if (c.op === 'claim' && !claimOf.has(id)) claimOf.set(id, c);
  }
}
interface Split {
  i: number;
  total: number;
  batch: number;
  insert: number;
  wake: number;
  claim: number;
  start: number;
  claimInFlight: number;
  claimJobs: number;
  enqJobs: number;
}
const splits: Split[] = [];
for (let i = 0; i < N; i++) {
  const e = enqOf.get(idOf[i]!);
  const c = claimOf.get(idOf[i]!);
  if (e === undefined || c === undefined || startAt[i] === 0) continue;
  splits.push({
    i,
    total: startAt[i]! - sentAt[i]!,
    batch: e.t0 - sentAt[i]!,
    insert: e.t1 - e.t0,
    wake: c.t0 - e.t1,
    claim: c.t1 - c.t0,
    start: startAt[i]! - c.t1,
    claimInFlight: c.inFlight,
    claimJobs: c.ids.length,
    enqJobs: e.ids.length,
  });
}
const pct = (xs: number[], p: number): number => {
  const s = Float64Array.from(xs).sort();
  return s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1] ?? NaN;
};
const keys = ['total', 'batch', 'insert', 'wake', 'claim', 'start'] as const;
const f = (x: number): string => x.toFixed(2);
const lines: string[] = [];
lines.push(`jobs traced ${splits.length}/${N}; claims ${calls.filter((c) => c.op === 'claim').length}, of which empty ${calls.filter((c) => c.op === 'claim' && c.ids.length === 0).length}; enqueueMany ${calls.filter((c) => c.op === 'enqueueMany').length}; completeMany ${calls.filter((c) => c.op === 'completeMany').length}`);
lines.push(`event-loop delay ms: p50 ${f(loop.percentile(50) / 1e6)}, p99 ${f(loop.percentile(99) / 1e6)}, max ${f(loop.max / 1e6)}`);
lines.push('| segment | p50 | p90 | p99 | max |');
lines.push('|---|---:|---:|---:|---:|');
for (const k of keys) {
  const xs = splits.map((s) => s[k]);
  lines.push(`| ${k} | ${f(pct(xs, 50))} | ${f(pct(xs, 90))} | ${f(pct(xs, 99))} | ${f(Math.max(...xs))} |`);
}
const slow = [...splits].sort((a, b) => b.total - a.total).slice(0, Math.max(1, Math.ceil(splits.length / 100)));
lines.push('');
lines.push(`slowest 1 % (${slow.length} jobs), mean ms per segment:`);
const mean = (xs: number[]): number => xs.reduce((a, x) => a + x, 0) / xs.length;
lines.push(keys.map((k) => `${k} ${f(mean(slow.map((s) => s[k])))}`).join(', '));
lines.push(`  claims already in flight when their claim was sent: mean ${f(mean(slow.map((s) => s.claimInFlight)))}; jobs per claim ${f(mean(slow.map((s) => s.claimJobs)))}; jobs per enqueueMany ${f(mean(slow.map((s) => s.enqJobs)))}`);
const completes = calls.filter((c) => c.op === 'completeMany').map((c) => c.t1 - c.t0);
const inserts = calls.filter((c) => c.op === 'enqueueMany').map((c) => c.t1 - c.t0);
const claims = calls.filter((c) => c.op === 'claim').map((c) => c.t1 - c.t0);
lines.push(`store call round trips ms, p50/p99/max: enqueueMany ${f(pct(inserts, 50))}/${f(pct(inserts, 99))}/${f(Math.max(...inserts))}; claim ${f(pct(claims, 50))}/${f(pct(claims, 99))}/${f(Math.max(...claims))}; completeMany ${f(pct(completes, 50))}/${f(pct(completes, 99))}/${f(Math.max(...completes))}`);
if (rawLat.length > 0) {
  const conv = splits.map((x) => x.total);
  lines.push(
    `floor, interleaved (plain pg pool: INSERT, then UPDATE of that row; two commits; same rate): p50 ${f(pct(rawLat, 50))}, p90 ${f(pct(rawLat, 90))}, p99 ${f(pct(rawLat, 99))}, max ${f(Math.max(...rawLat))} ms; ` +
      `conveyor ÷ floor: p50 ${(pct(conv, 50) / pct(rawLat, 50)).toFixed(2)}, p99 ${(pct(conv, 99) / pct(rawLat, 99)).toFixed(2)}`,
  );
}
if (AB !== null) {
  for (const v of AB.values) {
    const xs = splits.filter((x) => variantOf(x.i) === v).map((x) => x.total);
    lines.push(`${AB.name}=${v}: ${xs.length} jobs, p50 ${f(pct(xs, 50))}, p90 ${f(pct(xs, 90))}, p99 ${f(pct(xs, 99))} ms`);
  }
}
process.stdout.write(`${lines.join('\n')}\n`);
if (args.json !== undefined) fs.writeFileSync(args.json, JSON.stringify({ splits, calls, rawLat }, null, 1));
