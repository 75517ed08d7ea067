/**
 * The HTTP path under load: a real `conveyor serve`-equivalent server in its own process
 * (bench/http-server-child.ts), driven by a load generator in another process: Debian's
 * `wrk` for producers, bench/http-drain-client.ts for remote workers.
 *
 *   node bench/http-bench.ts                       # SQLite (temp file), every scenario
 *   node bench/http-bench.ts --url 'postgres://root@127.0.0.1:5432/test?schema=bench_http'
 *   node bench/http-bench.ts --seconds 5 --scenarios single,batch100
 *   node bench/http-bench.ts --profile /tmp/prof    # CPU profile of the server process
 *
 * Scenarios (job payload `{ i, pad: 'x'.repeat(100) }`, as in bench/bench.ts):
 *   single     POST /api/v1/queues/:q/jobs, one job per request, 64 connections (wrk -t2 -c64)
 *   batch100   POST …/jobs/bulk with 100 jobs per request, 8 connections
 *   batch1000  POST …/jobs/bulk with 1,000 jobs per request, 4 connections
 *   drain      50,000 waiting jobs (added in bulk first), then 4 claim→complete loops with
 *              claims of 100 jobs over HTTP until all are completed (--drain-loops, --drain-limit)
 * Every scenario checks what the store holds afterwards against what the load generator
 * saw acknowledged (a 201 is a stored job). A PostgreSQL URL must name a scratch schema:
 * it is dropped before each scenario. Timings are reported, never asserted.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import pg from 'pg';
import { parsePostgresUrl } from '../src/stores/postgres/connection.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    seconds: { type: 'string', default: '10' },
    scenarios: { type: 'string', default: 'single,batch100,batch1000,drain' },
    profile: { type: 'string' },
    'drain-loops': { type: 'string', default: '4' },
    'drain-limit': { type: 'string', default: '100' },
    help: { type: 'boolean', short: 'h' },
  },
});
if (args.help) {
  console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0]);
  process.exit(0);
}
const SECONDS = Number(args.seconds);
const HERE = import.meta.dirname;
const PAD = 'x'.repeat(100);

function log(message: string): void {
  process.stderr.write(`${message}\n`);
}

async function freshStoreUrl(): Promise<{ url: string; cleanup: () => Promise<void> }> {
  if (args.url?.startsWith('postgres')) {
    const parsed = parsePostgresUrl(args.url);
    const client = new pg.Client({ connectionString: args.url.replace(/[?&]schema=[^&]*/, '').replace(/\?$/, '') });
    await client.connect();
    await client.query(`DROP SCHEMA IF EXISTS "${parsed.schema}" CASCADE`);
    await client.end();
    return { url: args.url, cleanup: async () => undefined };
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-http-bench-'));
  return { url: args.url ?? `sqlite://${path.join(dir, 'bench.db')}`, cleanup: async () => fs.rmSync(dir, { recursive: true, force: true }) };
}

async function startServer(storeUrl: string, label: string): Promise<{ url: string; proc: ChildProcess; stop: () => Promise<void> }> {
  const nodeArgs = args.profile ? ['--cpu-prof', '--cpu-prof-dir', args.profile, '--cpu-prof-name', `server-${label}.cpuprofile`] : [];
  const proc = spawn(process.execPath, [...nodeArgs, path.join(HERE, 'http-server-child.ts'), storeUrl], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let buf = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => {
      buf += c;
      const nl = buf.indexOf('\n');
      if (nl >= 0) resolve((JSON.parse(buf.slice(0, nl)) as { url: string }).url);
    });
    proc.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
  });
  return {
    url,
    proc,
    stop: () =>
      new Promise<void>((resolve) => {
        proc.once('exit', () => resolve());
        proc.kill('SIGTERM');
      }),
  };
}

async function api(base: string, method: string, p: string, body?: unknown): Promise<any> {
  const res = await fetch(base + p, { method, ...(body === undefined ? {} : { body: JSON.stringify(body), headers: { 'content-type': 'application/json' } }) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${method} ${p}: ${res.status} ${text}`);
  return text === '' ? null : JSON.parse(text);
}

interface WrkResult {
  requests: number;
  seconds: number;
  rps: number;
  non2xx: number;
  errors: string;
  p50: string;
  p99: string;
}

function runWrk(url: string, body: string, connections: number, seconds: number): WrkResult {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-wrk-'));
  const script = path.join(dir, 'post.lua');
  fs.writeFileSync(script, `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`);
  const r = spawnSync('wrk', ['-t2', `-c${connections}`, `-d${seconds}s`, '--latency', '-s', script, url], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr || r.stdout}`);
  const out = r.stdout;
  const total = /(\d+) requests in ([\d.]+)(m?s)/.exec(out);
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(out);
  const errors = /Socket errors: (.*)/.exec(out);
  const p50 = /\s50%\s+(\S+)/.exec(out);
  const p99 = /\s99%\s+(\S+)/.exec(out);
  const requests = Number(total?.[1] ?? 0);
  const secs = Number(total?.[2] ?? 0) / (total?.[3] === 'ms' ? 1000 : 1);
  return { requests, seconds: secs, rps: requests / secs, non2xx: Number(non2xx?.[1] ?? 0), errors: errors?.[1] ?? '', p50: p50?.[1] ?? '-', p99: p99?.[1] ?? '-' };
}

function jobsBody(n: number): string {
  if (n === 1) return JSON.stringify({ name: 'bench', data: { i: 1, pad: PAD } });
  return JSON.stringify({ jobs: Array.from({ length: n }, (_, i) => ({ name: 'bench', data: { i, pad: PAD } })) });
}

interface Row {
  scenario: string;
  jobsPerS: number;
  details: string;
}

async function producerScenario(name: string, perRequest: number, connections: number): Promise<Row> {
  const store = await freshStoreUrl();
  const server = await startServer(store.url, name);
  try {
    const queue = `http_${name}`;
    const p = perRequest === 1 ? `/api/v1/queues/${queue}/jobs` : `/api/v1/queues/${queue}/jobs/bulk`;
    // Warm-up: JIT, prepared statements, the queue row.
    runWrk(server.url + p, jobsBody(perRequest), Math.min(connections, 4), 1);
    // Requests cut off when wrk stops may still commit: read the count once it is stable.
    const settled = async (): Promise<number> => {
      let last = -1;
      for (;;) {
        const n = (await api(server.url, 'GET', `/api/v1/queues/${queue}`)).counts.waiting as number;
        if (n === last) return n;
        last = n;
        await new Promise((r) => setTimeout(r, 300));
      }
    };
    const before = await settled();
    const r = runWrk(server.url + p, jobsBody(perRequest), connections, SECONDS);
    const after = await settled();
    const acked = (r.requests - r.non2xx) * perRequest;
    const stored = after - before;
    // wrk counts requests whose answer it read; a request cut off at the deadline may still have been stored.
    const check = stored >= acked && stored <= acked + connections * perRequest ? 'ok' : `MISMATCH (acked ${acked}, stored ${stored})`;
    return {
      scenario: `${name}: ${perRequest === 1 ? 'single-job POSTs' : `batches of ${perRequest}`}, ${connections} connections`,
      jobsPerS: (r.rps * (r.requests - r.non2xx)) / Math.max(1, r.requests) * perRequest,
      details: `${Math.round(r.rps)} req/s, latency p50 ${r.p50} p99 ${r.p99}, non-2xx ${r.non2xx}${r.errors ? `, socket errors ${r.errors}` : ''}; store check ${check}`,
    };
  } finally {
    await server.stop();
    await store.cleanup();
  }
}

async function drainScenario(): Promise<Row> {
  const store = await freshStoreUrl();
  const server = await startServer(store.url, 'drain');
  const total = 50_000;
  const queue = 'http_drain';
  try {
    for (let i = 0; i < total; i += 1000) await api(server.url, 'POST', `/api/v1/queues/${queue}/jobs/bulk`, JSON.parse(jobsBody(1000)));
    const loops = args['drain-loops']!;
    const limit = args['drain-limit']!;
    const r = spawnSync(process.execPath, [path.join(HERE, 'http-drain-client.ts'), server.url, queue, String(total), loops, limit], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`drain client failed: ${r.stderr}`);
    const out = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { jobs: number; seconds: number; requests: number };
    const counts = (await api(server.url, 'GET', `/api/v1/queues/${queue}`)).counts;
    const check = counts.completed === total && counts.waiting === 0 && counts.active === 0 ? 'ok' : `MISMATCH ${JSON.stringify(counts)}`;
    return {
      scenario: `drain: ${loops} remote claim→complete loops, claims of ${limit}`,
      jobsPerS: out.jobs / out.seconds,
      details: `${out.jobs} jobs in ${out.seconds.toFixed(2)} s, ${out.requests} requests; store check ${check}`,
    };
  } finally {
    await server.stop();
    await store.cleanup();
  }
}

const rows: Row[] = [];
const wanted = new Set(args.scenarios!.split(','));
const label = args.url?.startsWith('postgres') ? 'PostgreSQL' : 'SQLite';
log(`http bench on ${label}, ${SECONDS} s per producer scenario, node ${process.version}, ${os.cpus().length} cores`);
if (wanted.has('single')) rows.push(await producerScenario('single', 1, 64));
if (wanted.has('batch100')) rows.push(await producerScenario('batch100', 100, 8));
if (wanted.has('batch1000')) rows.push(await producerScenario('batch1000', 1000, 4));
if (wanted.has('drain')) rows.push(await drainScenario());
console.log(`| ${label} over HTTP | jobs/s | details |\n|---|---:|---|`);
for (const r of rows) console.log(`| ${r.scenario} | ${Math.round(r.jobsPerS).toLocaleString('en-US')} | ${r.details} |`);
