/**
 * The user-facing benchmark scenarios of `conveyor bench`: what one process gets out of a
 * store through the public API. Payloads and methods are those of the repository's
 * developer benchmark (bench/bench.ts, `npm run bench`): every job carries
 * `{ i, pad: 'x'.repeat(100) }`, percentiles are nearest-rank, a warm-up of 100 adds runs
 * before the timed enqueue loops.
 *
 *   serial      5,000 awaited `queue.add`s one after another: jobs/s, add p50/p99
 *   concurrent  20,000 `queue.add`s with 64 in flight (group commit): jobs/s
 *   bulk        100,000 jobs in `addBulk` batches of 1,000: jobs/s
 *   drain       50,000 waiting no-op jobs (prefilled, untimed), one worker at concurrency 50:
 *               jobs/s until the store reports nothing waiting, delayed or active; checks
 *               that every job completed once and none failed
 *   latency     2,000 jobs sent open-loop at 200 jobs/s to an idle worker (concurrency 50):
 *               enqueue → handler start p50/p95/p99
 *
 * Counts are multiplied by `scale`. Timings are measured and reported, never judged.
 * No SQL here: everything goes through `Queue`, `Worker` and the Store contract.
 */
import { performance } from 'node:perf_hooks';
import type { Conveyor } from '../engine/conveyor.ts';

export type Metric = number | string | boolean | null;

/** One line of the report. */
export interface BenchRow {
  /** The scenario's key: serial, concurrent, bulk, drain, latency. */
  readonly id: string;
  /** What was measured, for people. */
  readonly scenario: string;
  /** Jobs the scenario timed. */
  readonly jobs: number;
  /** The figure the scenario is about, formatted. */
  readonly headline: string;
  readonly details: string;
  /** Every figure, for scripts (`--json`). */
  readonly metrics: Record<string, Metric>;
  /** False when a correctness check failed (a job missing, failed or run twice). */
  readonly ok: boolean;
}

/** Progress of one phase of a scenario (a bar on a terminal, lines otherwise: the caller's choice). */
export interface PhaseProgress {
  update(done: number): void;
  stop(total?: number): void;
}

/** What a scenario gets from the runner. */
export interface ScenarioContext {
  /** An open Conveyor on the store under test. */
  readonly cv: Conveyor;
  /** A queue name of the scenario's own (nothing else uses it). */
  readonly queue: string;
  /** Multiplies job counts. */
  readonly scale: number;
  /** Starts the progress display of one phase: `label`, `total` units. */
  phase(label: string, total: number, unit: string): PhaseProgress;
}

export interface Scenario {
  readonly id: string;
  readonly description: string;
  run(ctx: ScenarioContext): Promise<BenchRow>;
}

type Payload = { i: number; pad: string };

const PAD = 'x'.repeat(100);
export const payload = (i: number): Payload => ({ i, pad: PAD });
export const BATCH = 1000;
export const WARMUP = 100;

const NO_PROGRESS: PhaseProgress = { update: () => undefined, stop: () => undefined };
const now = (): number => performance.now();
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));
const scaled = (count: number, scale: number): number => Math.max(1, Math.round(count * scale));

/** Nearest-rank percentiles, in the samples' unit (as bench/bench.ts computes them). */
export function percentiles(samples: ArrayLike<number>): { p50: number; p95: number; p99: number; max: number } {
  const s = Float64Array.from(samples).sort();
  const at = (p: number): number => s[Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length))) - 1] ?? NaN;
  return { p50: at(50), p95: at(95), p99: at(99), max: s[s.length - 1] ?? NaN };
}

/** Polls `cond` every `everyMs` until it holds; throws after `limitMs`. */
export async function waitFor(cond: () => boolean | Promise<boolean>, what: string, limitMs: number, everyMs = 10): Promise<void> {
  const until = now() + limitMs;
  while (!(await cond())) {
    if (now() > until) throw new Error(`timed out after ${Math.round(limitMs / 1000)} s waiting for ${what}`);
    await sleep(everyMs);
  }
}

/**
 * The receiving end of the latency scenarios: a worker (concurrency 50) on `queue` that
 * records when each job `{ i }` first started. `received()` counts the jobs that did.
 */
export function startRecorder(cv: Conveyor, queue: string, n: number): { startAt: Float64Array; received: () => number; close: () => Promise<void> } {
  const startAt = new Float64Array(n);
  let received = 0;
  const worker = cv.worker<{ i: number }>(
    queue,
    async (job) => {
      const i = job.data.i;
      if (startAt[i] === 0) {
        startAt[i] = now();
        received++;
      }
    },
    { concurrency: 50 },
  );
  return { startAt, received: () => received, close: () => worker.close() };
}

export const rate = (x: number): string => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
export const ms = (x: number): string => (!Number.isFinite(x) ? '-' : x < 10 ? x.toFixed(3) : x.toFixed(1));
export const round = (x: number, digits = 3): number | null => (Number.isFinite(x) ? Math.round(x * 10 ** digits) / 10 ** digits : null);

/** Calls `update` about every 1 % of `total` (and at the end), so progress costs nothing measurable. */
function throttled(p: PhaseProgress, total: number): (done: number) => void {
  const step = Math.max(1, Math.floor(total / 100));
  return (done) => {
    if (done % step === 0 || done === total) p.update(done);
  };
}

/** Adds `count` jobs in addBulk batches of BATCH (untimed setup), with progress. */
async function prefill(ctx: ScenarioContext, count: number): Promise<void> {
  const q = ctx.cv.queue<Payload>(ctx.queue);
  const bar = ctx.phase('prefill', count, 'jobs');
  let done = 0;
  try {
    for (let start = 0; start < count; start += BATCH) {
      const size = Math.min(BATCH, count - start);
      await q.addBulk(Array.from({ length: size }, (_, k) => ({ name: 'bench', data: payload(start + k) })));
      done += size;
      bar.update(done);
    }
  } finally {
    bar.stop(done);
  }
}

async function warmup(ctx: ScenarioContext): Promise<void> {
  const q = ctx.cv.queue<Payload>(ctx.queue);
  for (let i = 0; i < WARMUP; i++) await q.add('bench', payload(-1 - i));
}

const serial: Scenario = {
  id: 'serial',
  description: 'awaited queue.add calls one after another (5,000 × scale): jobs/s and add latency',
  async run(ctx) {
    const N = scaled(5000, ctx.scale);
    const q = ctx.cv.queue<Payload>(ctx.queue);
    await warmup(ctx);
    const lat = new Float64Array(N);
    const bar = ctx.phase('adds', N, 'jobs');
    const tick = throttled(bar, N);
    const t0 = now();
    try {
      for (let i = 0; i < N; i++) {
        const s = now();
        await q.add('bench', payload(i));
        lat[i] = now() - s;
        tick(i + 1);
      }
    } finally {
      bar.stop();
    }
    const secs = (now() - t0) / 1000;
    const p = percentiles(lat);
    return {
      id: 'serial',
      scenario: 'serial awaited adds',
      jobs: N,
      headline: `${rate(N / secs)} jobs/s`,
      details: `add p50 ${ms(p.p50)} ms, p99 ${ms(p.p99)} ms, max ${ms(p.max)} ms`,
      metrics: { jobs_per_s: round(N / secs, 0), add_p50_ms: round(p.p50), add_p99_ms: round(p.p99), add_max_ms: round(p.max) },
      ok: true,
    };
  },
};

const concurrent: Scenario = {
  id: 'concurrent',
  description: 'queue.add calls with 64 in flight, group commit (20,000 × scale): jobs/s',
  async run(ctx) {
    const N = scaled(20000, ctx.scale);
    const IN_FLIGHT = 64;
    const q = ctx.cv.queue<Payload>(ctx.queue);
    await warmup(ctx);
    const bar = ctx.phase('adds', N, 'jobs');
    const tick = throttled(bar, N);
    let next = 0;
    let done = 0;
    const t0 = now();
    try {
      await Promise.all(
        Array.from({ length: IN_FLIGHT }, async () => {
          for (let i = next++; i < N; i = next++) {
            await q.add('bench', payload(i));
            tick(++done);
          }
        }),
      );
    } finally {
      bar.stop();
    }
    const secs = (now() - t0) / 1000;
    const counts = await q.getCounts();
    const ok = counts.waiting === N + WARMUP;
    return {
      id: 'concurrent',
      scenario: `${IN_FLIGHT}-in-flight adds`,
      jobs: N,
      headline: `${rate(N / secs)} jobs/s`,
      details: `${IN_FLIGHT} concurrent awaited add() loops (group commit)${ok ? '' : `; CHECK FAILED: the store holds ${counts.waiting} waiting jobs, expected ${N + WARMUP}`}`,
      metrics: { jobs_per_s: round(N / secs, 0), in_flight: IN_FLIGHT, waiting_after: counts.waiting },
      ok,
    };
  },
};

const bulk: Scenario = {
  id: 'bulk',
  description: 'addBulk in batches of 1,000 (100,000 × scale jobs): jobs/s',
  async run(ctx) {
    const N = scaled(100000, ctx.scale);
    const q = ctx.cv.queue<Payload>(ctx.queue);
    await q.addBulk([{ name: 'bench', data: payload(-1) }]);
    const bar = ctx.phase('addBulk', N, 'jobs');
    const t0 = now();
    try {
      for (let start = 0; start < N; start += BATCH) {
        const size = Math.min(BATCH, N - start);
        const jobs = new Array<{ name: string; data: Payload }>(size);
        for (let k = 0; k < size; k++) jobs[k] = { name: 'bench', data: payload(start + k) };
        await q.addBulk(jobs);
        bar.update(start + size);
      }
    } finally {
      bar.stop();
    }
    const secs = (now() - t0) / 1000;
    return {
      id: 'bulk',
      scenario: `bulk enqueue (addBulk × ${BATCH.toLocaleString('en-US')})`,
      jobs: N,
      headline: `${rate(N / secs)} jobs/s`,
      details: `${Math.ceil(N / BATCH)} addBulk call${N > BATCH ? 's' : ''} of up to ${BATCH.toLocaleString('en-US')} jobs, each one atomic write`,
      metrics: { jobs_per_s: round(N / secs, 0), batch: BATCH },
      ok: true,
    };
  },
};

const drain: Scenario = {
  id: 'drain',
  description: 'one worker at concurrency 50 drains waiting no-op jobs (50,000 × scale): jobs/s',
  async run(ctx) {
    const N = scaled(50000, ctx.scale);
    const CONCURRENCY = 50;
    const q = ctx.cv.queue<Payload>(ctx.queue);
    await prefill(ctx, N);
    const before = await q.getCounts();
    if (before.waiting !== N) throw new Error(`drain: the prefill left ${before.waiting} jobs waiting, expected ${N}`);
    const seen = new Uint8Array(N);
    let calls = 0;
    let dups = 0;
    let firstAt = 0;
    let errors = 0;
    const bar = ctx.phase('worker', N, 'jobs');
    const tick = throttled(bar, N);
    const t0 = now();
    const worker = ctx.cv.worker<Payload>(
      q.name,
      async (job) => {
        if (calls++ === 0) firstAt = now();
        const i = job.data.i;
        if (seen[i] === 1) dups++;
        else seen[i] = 1;
        tick(Math.min(calls, N));
      },
      { concurrency: CONCURRENCY },
    );
    worker.on('error', () => errors++);
    worker.on('failed', () => errors++);
    let tHandled = 0;
    let tDone = 0;
    try {
      // Generous limits: a slow store should finish and say how slow, not time out.
      const limitMs = Math.max(120_000, N * 10);
      await waitFor(() => calls >= N, `${N} handler calls (${calls} so far)`, limitMs, 5);
      tHandled = now();
      await waitFor(async () => {
        const c = await q.getCounts();
        return c.waiting + c.active + c.delayed === 0;
      }, 'the store to report nothing waiting or active', limitMs);
      tDone = now();
    } finally {
      bar.stop();
      await worker.close();
    }
    const after = await q.getCounts();
    let distinct = 0;
    for (const b of seen) distinct += b;
    const ok = calls === N && distinct === N && dups === 0 && after.completed - before.completed === N && after.failed === before.failed && errors === 0;
    const secs = (tDone - t0) / 1000;
    return {
      id: 'drain',
      scenario: `drain (no-op jobs, concurrency ${CONCURRENCY})`,
      jobs: N,
      headline: `${rate(N / secs)} jobs/s`,
      details: `${ok ? 'all completed, none failed, no duplicates' : `CHECK FAILED: ${JSON.stringify({ calls, distinct, dups, counts: after, errors })}`}; first job after ${ms(firstAt - t0)} ms, last ack ${ms(tDone - tHandled)} ms after the last handler call`,
      metrics: {
        jobs_per_s: round(N / secs, 0),
        total_s: round(secs),
        first_job_ms: round(firstAt - t0),
        ack_lag_ms: round(tDone - tHandled),
        completed: after.completed - before.completed,
        failed: after.failed - before.failed,
        duplicate_calls: dups,
        ok,
      },
      ok,
    };
  },
};

const latency: Scenario = {
  id: 'latency',
  description: 'jobs sent at 200 jobs/s to an idle worker (2,000 × scale): enqueue → handler start p50/p95/p99',
  async run(ctx) {
    const N = scaled(2000, ctx.scale);
    const RATE = 200;
    const q = ctx.cv.queue<Payload>(ctx.queue);
    const sentAt = new Float64Array(N);
    const addLat = new Float64Array(N);
    const recorder = startRecorder(ctx.cv, q.name, N);
    const { startAt } = recorder;
    let bar = NO_PROGRESS;
    let sendSecs = 0;
    try {
      // Idle and settled before the first job (2 s; shorter in scaled-down runs).
      await sleep(Math.min(2000, Math.max(250, 2000 * ctx.scale)));
      bar = ctx.phase(`send at ${RATE}/s`, N, 'jobs');
      const tick = throttled(bar, N);
      const pending: Array<Promise<void>> = [];
      const t0 = now();
      for (let i = 0; i < N; i++) {
        const wait = t0 + (i * 1000) / RATE - now();
        if (wait > 1) await sleep(wait);
        const s = now();
        sentAt[i] = s;
        // Open loop: the next send does not wait for this one.
        pending.push(q.add('bench', payload(i)).then(() => void (addLat[i] = now() - s)));
        tick(i + 1);
      }
      await Promise.all(pending);
      sendSecs = (now() - t0) / 1000;
      await waitFor(() => recorder.received() >= N, 'every job to start', 30_000).catch(() => undefined);
    } finally {
      bar.stop();
      await recorder.close();
    }
    const lat: number[] = [];
    for (let i = 0; i < N; i++) if (startAt[i]! > 0) lat.push(startAt[i]! - sentAt[i]!);
    const p = percentiles(lat);
    const add = percentiles(addLat);
    const ok = recorder.received() === N;
    return {
      id: 'latency',
      scenario: `enqueue → handler start (${RATE} jobs/s)`,
      jobs: N,
      headline: `p50 ${ms(p.p50)} ms`,
      details: `p95 ${ms(p.p95)} ms, p99 ${ms(p.p99)} ms, max ${ms(p.max)} ms; add p50 ${ms(add.p50)} ms; ${recorder.received()}/${N} started${ok ? '' : ' (CHECK FAILED)'}; sent at ${(N / sendSecs).toFixed(0)} jobs/s`,
      metrics: {
        p50_ms: round(p.p50),
        p95_ms: round(p.p95),
        p99_ms: round(p.p99),
        max_ms: round(p.max),
        add_p50_ms: round(add.p50),
        add_p99_ms: round(add.p99),
        received: recorder.received(),
        rate_achieved: round(N / sendSecs, 1),
      },
      ok,
    };
  },
};

/** Every scenario, in the order they run. */
export const SCENARIOS: readonly Scenario[] = [serial, concurrent, bulk, drain, latency];
