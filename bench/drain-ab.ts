/**
 * Drains side by side: worker-option variants (or values of an environment variable read by
 * an experiment) in interleaved rounds in one process, the order rotated each round, so the
 * drifts of a shared machine hit every variant alike. Timings are reported, never asserted.
 *
 *   node bench/drain-ab.ts --url 'postgres://root@127.0.0.1:5432/test?schema=drain_ab' \
 *     --variants '{"default":{},"old":{"batchSize":200,"prefetch":350}}' --rounds 5
 *   node bench/drain-ab.ts --url … --env NAME=a,b --rounds 5
 *
 * Each run: the url's schema (PostgreSQL) is dropped and migrated afresh, `--jobs` jobs
 * (default 50,000, the bench payload) are bulk-added untimed, then one worker (concurrency
 * 50 plus the variant's options) drains them; the clock stops when the handler ran for every
 * job and getCounts() reports nothing waiting, delayed or active. Prints jobs/s and this
 * process's CPU per job for each run, then per variant the median and the per-round ratio
 * to the first variant.
 */
import { parseArgs } from 'node:util';
import pg from 'pg';
import { Conveyor, type WorkerOptions } from '../src/index.ts';
import { parseStoreUrl } from '../src/store/open.ts';
import { parsePostgresUrl } from '../src/stores/postgres/connection.ts';

const { values: args } = parseArgs({
  options: {
    url: { type: 'string' },
    variants: { type: 'string' },
    env: { type: 'string' },
    rounds: { type: 'string', default: '5' },
    jobs: { type: 'string', default: '50000' },
  },
});
const url = args.url ?? process.env.CONVEYOR_URL;
if (url === undefined) throw new Error('--url is required');
const ROUNDS = Number(args.rounds);
const N = Number(args.jobs);
const envSpec = args.env === undefined ? null : { name: args.env.split('=')[0]!, values: args.env.split('=')[1]!.split(',') };
const variants: Array<{ label: string; options: WorkerOptions; env?: string }> =
  envSpec !== null
    ? envSpec.values.map((v) => ({ label: `${envSpec.name}=${v}`, options: {}, env: v }))
    : Object.entries(JSON.parse(args.variants ?? '{"default":{}}') as Record<string, WorkerOptions>).map(([label, options]) => ({ label, options }));

async function reset(): Promise<void> {
  if (parseStoreUrl(url!).kind !== 'postgres') return;
  const parsed = parsePostgresUrl(url!);
  if (parsed.schema === undefined) throw new Error('name a scratch schema with ?schema= (it is dropped before every run)');
  const c = new pg.Client({ connectionString: parsed.connectionString });
  await c.connect();
  await c.query(`DROP SCHEMA IF EXISTS "${parsed.schema.replaceAll('"', '""')}" CASCADE`);
  await c.end();
}

const rates = new Map<string, number[]>(variants.map((v) => [v.label, []]));
for (let r = 0; r < ROUNDS; r++) {
  for (let k = 0; k < variants.length; k++) {
    const v = variants[(k + r) % variants.length]!;
    if (envSpec !== null) process.env[envSpec.name] = v.env;
    await reset();
    const cv = await Conveyor.open({ url });
    const q = cv.queue<{ i: number; pad: string }>('drain-ab');
    for (let s = 0; s < N; s += 1000) {
      await q.addBulk(Array.from({ length: Math.min(1000, N - s) }, (_, j) => ({ name: 'bench', data: { i: s + j, pad: 'x'.repeat(100) } })));
    }
    let calls = 0;
    const t0 = performance.now();
    const cpu0 = process.cpuUsage();
    const w = cv.worker<{ i: number; pad: string }>('drain-ab', async () => void calls++, { concurrency: 50, ...v.options });
    while (calls < N) await new Promise((res) => setTimeout(res, 5));
    for (;;) {
      const c = await q.getCounts();
      if (c.waiting + c.active + c.delayed === 0) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    const secs = (performance.now() - t0) / 1000;
    const cpu = process.cpuUsage(cpu0);
    await w.close();
    await cv.close();
    rates.get(v.label)!.push(N / secs);
    process.stdout.write(`round ${r} ${v.label}: ${Math.round(N / secs)} jobs/s, ${((cpu.user + cpu.system) / N).toFixed(1)} µs CPU/job in this process\n`);
  }
}
await reset();
const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 === 1 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const base = rates.get(variants[0]!.label)!;
for (const v of variants) {
  const xs = rates.get(v.label)!;
  const ratios = xs.map((x, i) => x / base[i]!);
  process.stdout.write(
    `${v.label}: median ${Math.round(median(xs))} jobs/s; ÷ ${variants[0]!.label} per round ${ratios.map((x) => x.toFixed(2)).join(' ')} (median ${median(ratios).toFixed(2)})\n`,
  );
}
