/**
 * End-to-end Queue/Worker conformance: the library's promises, checked through the public
 * API against a real store. Every store runs this suite unchanged.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { hostname } from 'node:os';
import { Conveyor, ConveyorError, UnrecoverableError, type Job } from '../../src/index.ts';
import type { Store } from '../../src/store/contract.ts';

export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

export async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Counts calls per store method while passing them through to the real store. */
function countingStore(store: Store): { store: Store; calls: Map<string, number> } {
  const calls = new Map<string, number>();
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof value !== 'function') return value;
      return (...args: unknown[]) => {
        calls.set(String(prop), (calls.get(String(prop)) ?? 0) + 1);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
  return { store: proxy, calls };
}

export function engineSuite(label: string, makeStore: StoreFactory): void {
  describe(`engine: ${label}`, () => {
    let cv: Conveyor;
    let cleanup: () => Promise<void>;
    let n = 0;
    /** A fresh queue name per test, so tests sharing a store never see each other's jobs. */
    const qname = () => `q${++n}-${process.pid}`;

    before(async () => {
      const made = await makeStore();
      cleanup = made.cleanup;
      cv = await Conveyor.open({ store: made.store });
    });
    after(async () => {
      await cv.close({ timeoutMs: 2000 });
      await cleanup();
    });

    it('runs a job and stores its result; waitForResult resolves', async () => {
      const q = cv.queue<{ x: number }, { doubled: number }>(qname());
      const job = await q.add('double', { x: 21 });
      assert.match(job.id, /^\d+$/);
      assert.equal(job.state, 'waiting');
      const completed: string[] = [];
      const w = cv.worker<{ x: number }, { doubled: number }>(q.name, async (j) => ({ doubled: j.data.x * 2 }));
      w.on('completed', (j) => completed.push(j.id));
      assert.deepEqual(await q.waitForResult(job.id, { timeoutMs: 5000 }), { doubled: 42 });
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'completed');
      assert.deepEqual(stored?.result, { doubled: 42 });
      assert.equal(stored?.attemptsMade, 1);
      assert.ok(stored?.finishedAt);
      await waitUntil(() => completed.length === 1, 'completed event');
      assert.deepEqual(completed, [job.id]);
      await w.close();
    });

    it('waitForResult after completion reads the state instead of waiting for an event', async () => {
      const q = cv.queue(qname());
      const job = await q.add('x', null);
      const w = cv.worker(q.name, async () => 'done');
      await waitUntil(async () => (await q.getJob(job.id))?.state === 'completed', 'completion');
      await w.close();
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 1000 }), 'done');
    });

    it('runs higher priority first, then earlier runAt, then insertion order', async () => {
      const q = cv.queue(qname());
      await q.pause();
      const added = [];
      added.push(await q.add('a', 'p0-first', { priority: 0 }));
      added.push(await q.add('b', 'p5', { priority: 5 }));
      added.push(await q.add('c', 'p0-second', { priority: 0 }));
      added.push(await q.add('d', 'p-3', { priority: -3 }));
      added.push(await q.add('e', 'p5-second', { priority: 5 }));
      const order: unknown[] = [];
      const w = cv.worker(q.name, async (job) => void order.push(job.data), { concurrency: 1, prefetch: 0, batchSize: 1 });
      await sleep(50);
      assert.deepEqual(order, [], 'a paused queue runs nothing');
      await q.resume();
      await waitUntil(() => order.length === 5, 'all five jobs');
      assert.deepEqual(order, ['p5', 'p5-second', 'p0-first', 'p0-second', 'p-3']);
      await w.close();
    });

    it('does not run a delayed job before its time', async () => {
      const q = cv.queue(qname());
      const t0 = Date.now();
      const job = await q.add('later', null, { delay: 400 });
      assert.equal(job.state, 'delayed');
      let startedAt = 0;
      const w = cv.worker(q.name, async () => {
        startedAt = Date.now();
      });
      await waitUntil(() => startedAt > 0, 'delayed job to run', 5000);
      assert.ok(startedAt - t0 >= 400, `ran after ${startedAt - t0} ms, before its delay of 400 ms`);
      await w.close();
    });

    it('retries with backoff and records the error of each failed attempt', async () => {
      const q = cv.queue(qname());
      const job = await q.add('flaky', null, { attempts: 3, backoff: { type: 'fixed', delay: 50 } });
      let calls = 0;
      const attempts: number[] = [];
      const willRetry: boolean[] = [];
      const w = cv.worker(q.name, async (_job, ctx) => {
        attempts.push(ctx.attempt);
        if (++calls < 3) throw new Error(`boom ${calls}`);
        return 'ok';
      });
      w.on('failed', (_j, _e, retry) => willRetry.push(retry));
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 5000 }), 'ok');
      const stored = await q.getJob(job.id);
      assert.equal(stored?.attemptsMade, 3);
      assert.deepEqual(stored?.errors.map((e) => [e.message, e.attempt]), [['boom 1', 1], ['boom 2', 2]]);
      assert.ok(stored?.errors[0]?.stack?.includes('boom 1'));
      assert.deepEqual(attempts, [1, 2, 3]);
      assert.deepEqual(willRetry, [true, true]);
      await w.close();
    });

    it('moves a job to failed when attempts run out; waitForResult rejects with JOB_FAILED', async () => {
      const q = cv.queue(qname());
      const job = await q.add('doomed', null, { attempts: 2 });
      const w = cv.worker(q.name, async () => {
        throw new Error('always');
      });
      await assert.rejects(q.waitForResult(job.id, { timeoutMs: 5000 }), (e: unknown) => e instanceof ConveyorError && e.code === 'JOB_FAILED' && /always/.test(e.message));
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'failed');
      assert.equal(stored?.attemptsMade, 2);
      assert.equal(stored?.failedReason, 'always');
      await w.close();
    });

    it('UnrecoverableError fails the job at once, whatever attempts remain', async () => {
      const q = cv.queue(qname());
      const job = await q.add('bad', null, { attempts: 5 });
      let calls = 0;
      const w = cv.worker(q.name, async () => {
        calls++;
        throw new UnrecoverableError('card declined');
      });
      await assert.rejects(q.waitForResult(job.id, { timeoutMs: 5000 }));
      assert.equal(calls, 1);
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'failed');
      assert.equal(stored?.errors[0]?.reason, 'unrecoverable');
      await w.close();
    });

    it('times out a handler: the signal aborts and the attempt fails with JOB_TIMEOUT', async () => {
      const q = cv.queue(qname());
      const job = await q.add('slow', null, { timeout: 100 });
      let aborted = false;
      const w = cv.worker(q.name, (_job, { signal }) =>
        new Promise((resolve) => {
          signal.addEventListener('abort', () => {
            aborted = true;
            resolve('too late');
          });
        }),
      );
      await assert.rejects(q.waitForResult(job.id, { timeoutMs: 5000 }), /timed out/);
      assert.equal(aborted, true);
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'failed');
      assert.equal(stored?.errors[0]?.reason, 'timeout');
      await w.close();
    });

    it('deduplicates by jobId while the job is live, and accepts it again once finished', async () => {
      const q = cv.queue(qname());
      const a = await q.add('welcome', { v: 1 }, { jobId: 'welcome-42' });
      const b = await q.add('welcome', { v: 2 }, { jobId: 'welcome-42' });
      assert.equal(a.id, 'welcome-42');
      assert.equal(b.id, 'welcome-42');
      assert.deepEqual(b.data, { v: 1 }, 'the duplicate returns the existing job, unchanged');
      assert.equal((await q.getCounts()).waiting, 1);
      const seen: unknown[] = [];
      const w = cv.worker(q.name, async (job) => void seen.push(job.data));
      await waitUntil(() => seen.length === 1, 'first run');
      await waitUntil(async () => (await q.getJob('welcome-42'))?.state === 'completed', 'completion');
      await q.add('welcome', { v: 3 }, { jobId: 'welcome-42' });
      await waitUntil(() => seen.length === 2, 'second run');
      assert.deepEqual(seen, [{ v: 1 }, { v: 3 }]);
      await w.close();
    });

    it('coalesces concurrent adds into one store write (group commit)', async () => {
      const { store, calls } = countingStore(cv.store);
      const cv2 = await Conveyor.open({ store });
      const q = cv2.queue(qname());
      const jobs = await Promise.all(Array.from({ length: 64 }, (_, i) => q.add('x', { i })));
      assert.equal(new Set(jobs.map((j) => j.id)).size, 64);
      assert.equal(calls.get('enqueueMany'), 1, '64 concurrent adds, one enqueueMany');
      assert.equal((await q.getCounts()).waiting, 64);
      await q.drain();
    });

    it('a worker reports itself to the worker registry and removes itself on close', async () => {
      const q = cv.queue(qname());
      const t0 = Date.now();
      const w = cv.worker(q.name, async () => 'ok', { concurrency: 3 });
      const mine = async () => (await cv.store.listWorkers({ since: 0 })).find((x) => x.id === w.id);
      await waitUntil(async () => (await mine()) !== undefined, 'the worker in the registry');
      const row = (await mine())!;
      assert.equal(row.kind, 'direct');
      assert.equal(row.host, hostname());
      assert.equal(row.pid, process.pid);
      assert.deepEqual(row.queues, [q.name]);
      assert.equal(row.concurrency, 3);
      assert.equal(row.active, 0);
      assert.ok(row.startedAt >= t0 && row.startedAt <= Date.now());
      assert.ok(row.lastSeenAt >= row.startedAt);
      assert.equal(row.lastClaimAt, null, 'reported before its first claim answered');
      await w.close();
      assert.equal(await mine(), undefined, 'gone once closed');

      // Closed while its first report may still be in flight: the report must not re-create
      // the row after the removal.
      const w2 = cv.worker(q.name, async () => 'ok');
      await new Promise((r) => setImmediate(r));
      await w2.close();
      await sleep(50);
      assert.equal((await cv.store.listWorkers({ since: 0 })).find((x) => x.id === w2.id), undefined);
    });

    it('fencing: a worker that lost its lease cannot complete the job', async () => {
      const q = cv.queue(qname());
      const job = await q.add('contested', null);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const lost: string[] = [];
      const w = cv.worker(q.name, async () => {
        await gate;
        return 'from the old holder';
      }, { leaseMs: 60_000 });
      w.on('leaseLost', (j) => lost.push(j.id));
      await waitUntil(async () => (await q.getJob(job.id))?.state === 'active', 'job to become active');
      // Time passes beyond the lease (driven through the store's clock parameter): the job is
      // recovered as stalled and another worker claims it.
      const later = Date.now() + 120_000;
      const recovered = await cv.store.recoverStalled({ queues: [q.name], maxStalls: 5, limit: 10, now: later });
      assert.deepEqual(recovered.map((r) => [r.id, r.state]), [[job.id, 'waiting']]);
      const claim = await cv.store.claim({ queues: [q.name], workerId: 'other', limit: 1, leaseMs: 60_000, now: later });
      assert.equal(claim.jobs[0]?.id, job.id);
      release();
      await waitUntil(() => w.stats().staleAcks === 1, 'the stale ack to be rejected and counted');
      assert.deepEqual(lost, [job.id]);
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'active', 'the job stays with its new holder');
      assert.equal(stored?.lease?.owner, 'other');
      const done = await cv.store.completeMany({ items: [{ id: job.id, token: claim.jobs[0]!.lease.token, result: '"from the new holder"', remove: false }], now: later });
      assert.deepEqual(done, [{ status: 'applied' }]);
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 1000 }), 'from the new holder');
      await w.close();
    });

    it('recovers a stalled job (its worker died) and runs it again', async () => {
      const q = cv.queue(qname());
      const job = await q.add('orphan', null);
      // A worker that claims and then dies: its lease is short and never renewed.
      const dead = await cv.store.claim({ queues: [q.name], workerId: 'dead-worker', limit: 1, leaseMs: 150, now: Date.now() });
      assert.equal(dead.jobs.length, 1);
      const stalled: string[] = [];
      const w = cv.worker(q.name, async () => 'second life', { stalledCheckMs: 50 });
      w.on('stalled', (id) => stalled.push(id));
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 5000 }), 'second life');
      assert.deepEqual(stalled, [job.id]);
      const stored = await q.getJob(job.id);
      assert.equal(stored?.stalls, 1);
      assert.equal(stored?.attemptsMade, 1, 'a stalled attempt does not use up an attempt');
      await w.close();
    });

    it('fails a job that stalls more than maxStalls times', async () => {
      const q = cv.queue(qname());
      const job = await q.add('cursed', null, { attempts: 10 });
      const t = Date.now();
      for (let i = 0; i < 2; i++) {
        const c = await cv.store.claim({ queues: [q.name], workerId: 'dies', limit: 1, leaseMs: 10, now: t + i * 100 });
        assert.equal(c.jobs.length, 1);
        await cv.store.recoverStalled({ queues: [q.name], maxStalls: 1, limit: 10, now: t + i * 100 + 50 });
      }
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'failed');
      assert.equal(stored?.errors.at(-1)?.reason, 'stalled');
    });

    it('renews leases while a handler runs longer than the lease', async () => {
      const q = cv.queue(qname());
      const job = await q.add('long', null);
      const w = cv.worker(q.name, async () => {
        await sleep(700);
        return 'finished';
      }, { leaseMs: 300, stalledCheckMs: 50 });
      const stalled: string[] = [];
      w.on('stalled', (id) => stalled.push(id));
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 5000 }), 'finished');
      assert.deepEqual(stalled, []);
      assert.equal(w.stats().staleAcks, 0);
      await w.close();
    });

    it('never runs more than concurrency handlers at once', async () => {
      const q = cv.queue(qname());
      await q.addBulk(Array.from({ length: 40 }, (_, i) => ({ name: 'c', data: i })));
      let running = 0;
      let peak = 0;
      let done = 0;
      const w = cv.worker(q.name, async () => {
        peak = Math.max(peak, ++running);
        await sleep(5);
        running--;
        done++;
      }, { concurrency: 4 });
      await waitUntil(() => done === 40, 'all jobs');
      assert.equal(peak, 4);
      await w.close();
    });

    it('close() hands back buffered jobs at once and waits for running ones', async () => {
      const q = cv.queue(qname());
      await q.addBulk(Array.from({ length: 10 }, (_, i) => ({ name: 'c', data: i })));
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      let started = 0;
      let finished = 0;
      const w = cv.worker(q.name, async () => {
        started++;
        await gate;
        finished++;
      }, { concurrency: 2, prefetch: 5 });
      await waitUntil(() => started === 2, 'two running');
      await waitUntil(async () => (await q.getCounts()).active === 7, 'prefetched jobs held');
      const closing = w.close({ timeoutMs: 5000 });
      await waitUntil(async () => (await q.getCounts()).waiting === 8, 'buffered jobs released');
      assert.equal(finished, 0);
      release();
      await closing;
      assert.equal(finished, 2);
      const counts = await q.getCounts();
      assert.equal(counts.completed, 2);
      assert.equal(counts.active, 0);
      assert.equal(counts.waiting, 8);
    });

    it('close() past its deadline aborts running handlers and leaves their jobs to be recovered', async () => {
      const q = cv.queue(qname());
      const job = await q.add('stuck', null);
      let aborted = false;
      const w = cv.worker(q.name, (_j, { signal }) => new Promise(() => signal.addEventListener('abort', () => (aborted = true))));
      await waitUntil(async () => (await q.getJob(job.id))?.state === 'active', 'active');
      await w.close({ timeoutMs: 100 });
      assert.equal(aborted, true);
      assert.equal((await q.getJob(job.id))?.state, 'active', 'the lease is left to expire, never completed by a closed worker');
    });

    it('reports progress and logs from a handler', async () => {
      const q = cv.queue(qname());
      const job = await q.add('report', null);
      const w = cv.worker(q.name, async (_job, ctx) => {
        await ctx.progress({ pct: 50 });
        await ctx.log('halfway');
        await ctx.progress({ pct: 100 });
        await ctx.log('done');
      });
      await q.waitForResult(job.id, { timeoutMs: 5000 });
      const stored = await q.getJob(job.id);
      assert.deepEqual(stored?.progress, { pct: 100 });
      const logs = await q.getJobLogs(job.id);
      assert.deepEqual(logs.entries.map((e) => e.message), ['halfway', 'done']);
      assert.equal(logs.total, 2);
      await w.close();
    });

    it('cancel: a cancelled active job cannot be completed by its worker', async () => {
      const q = cv.queue(qname());
      const job = await q.add('to-cancel', null);
      let release!: () => void;
      const gate = new Promise<void>((r) => (release = r));
      const w = cv.worker(q.name, async () => {
        await gate;
      });
      await waitUntil(async () => (await q.getJob(job.id))?.state === 'active', 'active');
      await q.cancel(job.id);
      release();
      await waitUntil(() => w.stats().staleAcks === 1, 'stale ack');
      assert.equal((await q.getJob(job.id))?.state, 'cancelled');
      await assert.rejects(q.waitForResult(job.id, { timeoutMs: 1000 }), /cancelled/);
      await w.close();
    });

    it('admin: retryJob, retryFailed, promote, removeJob, clean, drain', async () => {
      const q = cv.queue(qname());
      const failing = await q.add('f', null);
      const w = cv.worker(q.name, async (job) => {
        if (job.name === 'f') throw new Error('nope');
      });
      await assert.rejects(q.waitForResult(failing.id, { timeoutMs: 5000 }));
      await w.close();
      await q.retryJob(failing.id);
      const retried = await q.getJob(failing.id);
      assert.equal(retried?.state, 'waiting');
      assert.equal(retried?.attemptsMade, 0);
      assert.equal(retried?.errors.length, 1, 'history is kept');
      await assert.rejects(q.retryJob(failing.id), (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_STATE');
      await assert.rejects(q.retryJob('no-such-job'), (e: unknown) => e instanceof ConveyorError && e.code === 'JOB_NOT_FOUND');

      const delayed = await q.add('d', null, { delay: 60_000 });
      await q.promote(delayed.id);
      assert.equal((await q.getJob(delayed.id))?.state, 'waiting');
      assert.equal(await q.removeJob(delayed.id), true);
      assert.equal(await q.removeJob(delayed.id), false);

      await q.add('later', null, { delay: 60_000 });
      assert.equal(await q.drain(), 1, 'drain removes the waiting job');
      assert.equal((await q.getCounts()).delayed, 1);
      assert.equal(await q.drain({ delayed: true }), 1);

      const w2 = cv.worker(q.name, async () => {
        throw new Error('again');
      });
      const more = await Promise.all([q.add('f', null), q.add('f', null)]);
      for (const j of more) await assert.rejects(q.waitForResult(j.id, { timeoutMs: 5000 }));
      await w2.close();
      assert.equal(await q.retryFailed(), 2);
      assert.equal((await q.getCounts()).waiting, 2);
      await q.drain();
      assert.equal(await q.clean({ state: 'failed' }), 0);
    });

    it('removeOnComplete: true deletes the job once done; a count keeps the newest', async () => {
      const q = cv.queue(qname());
      const gone = await q.add('x', null, { removeOnComplete: true });
      let done = 0;
      const w = cv.worker(q.name, async () => void done++);
      await waitUntil(() => done === 1, 'first job');
      await waitUntil(async () => (await q.getJob(gone.id)) === null, 'job removed');
      await w.close();
      const q2 = cv.queue(qname());
      await q2.addBulk(Array.from({ length: 5 }, (_, i) => ({ name: 'k', data: i, opts: { removeOnComplete: 2 } })));
      const w2 = cv.worker(q2.name, async () => undefined, { concurrency: 5 });
      await waitUntil(async () => (await q2.getCounts()).completed <= 2 && (await q2.getCounts()).waiting === 0 && (await q2.getCounts()).active === 0, 'retention to keep 2');
      await w2.close();
    });

    it('lists jobs with cursor paging and counts them by state', async () => {
      const q = cv.queue(qname());
      await q.addBulk(Array.from({ length: 25 }, (_, i) => ({ name: i % 2 ? 'odd' : 'even', data: i })));
      const seen: unknown[] = [];
      let cursor: string | undefined;
      let pages = 0;
      do {
        const page = await q.getJobs('waiting', { limit: 10, order: 'asc', ...(cursor ? { cursor } : {}) });
        seen.push(...page.jobs.map((j) => j.data));
        cursor = page.nextCursor ?? undefined;
        pages++;
      } while (cursor);
      assert.equal(pages, 3);
      assert.deepEqual(seen, Array.from({ length: 25 }, (_, i) => i));
      const odd = await q.getJobs('waiting', { name: 'odd', limit: 100 });
      assert.equal(odd.jobs.length, 12);
      const counts = await q.getCounts();
      assert.deepEqual(counts, { waiting: 25, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 });
      await q.drain();
    });

    it('rejects bad input with typed errors and writes nothing', async () => {
      const q = cv.queue(qname());
      const expectCode = async (p: Promise<unknown>, code: string) =>
        assert.rejects(p, (e: unknown) => e instanceof ConveyorError && e.code === code && e.retryable === false);
      assert.throws(() => cv.queue('bad name!'), (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { priorty: 5 } as never), 'UNKNOWN_OPTION');
      await assert.rejects(q.add('x', null, { priorty: 5 } as never), /did you mean 'priority'/);
      await expectCode(q.add('x', null, { repeat: { every: 1000 } } as never), 'UNKNOWN_OPTION');
      await expectCode(q.add('x', { f: () => 1 } as never), 'NOT_SERIALIZABLE');
      await expectCode(q.add('x', { n: 10n } as never), 'NOT_SERIALIZABLE');
      await expectCode(q.add('x', { m: new Map() } as never), 'NOT_SERIALIZABLE');
      await expectCode(q.add('x', { nan: Number.NaN }), 'NOT_SERIALIZABLE');
      const circular: Record<string, unknown> = {};
      circular.self = circular;
      await expectCode(q.add('x', circular), 'NOT_SERIALIZABLE');
      await expectCode(q.add('x', 'y'.repeat(1024 * 1024 + 1)), 'PAYLOAD_TOO_LARGE');
      await expectCode(q.add('x', null, { priority: 1.5 }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { priority: 2_000_000 }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { attempts: 0 }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { delay: -5 }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { delay: 5, runAt: Date.now() }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { jobId: '123' }), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { backoff: { type: 'fixed', delay: 'soon' } } as never), 'INVALID_ARGUMENT');
      await expectCode(q.add('x', null, { backoff: (() => 5) as never }), 'INVALID_ARGUMENT');
      await expectCode(q.add('', null), 'INVALID_ARGUMENT');
      await expectCode(q.addBulk([{ name: 'ok', data: 1 }, { name: 'bad', data: { f: () => 1 } as never }]), 'NOT_SERIALIZABLE');
      assert.throws(() => cv.worker(q.name, async () => undefined, { concurency: 2 } as never), /did you mean 'concurrency'/);
      assert.deepEqual(await q.getCounts(), { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 });
    });
  });
}
