/**
 * Workers over HTTP: `Conveyor.connect({ server, apiKey })` and the library's own `Worker`
 * on the HTTP worker backend (src/client), against a real server on a loopback port and a
 * real store, on SQLite and on PostgreSQL. Remote worker processes
 * (test/fixtures/http-worker.ts) talk to the server only.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor, ConveyorError, UnrecoverableError, type RemoteConveyor } from '../src/index.ts';
import { createApiKey } from '../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import type { Store } from '../src/store/contract.ts';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';
import { waitUntil } from './conformance/engine.ts';
import { makePgStore } from './helpers/postgres.ts';
import { fixture, spawnChild } from './helpers/processes.ts';

const FIXTURE = fixture('http-worker.ts');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

function httpWorkerSuite(label: string, makeStore: StoreFactory): void {
  describe(`workers over HTTP: ${label}`, () => {
    let cv: Conveyor;
    let cleanup: () => Promise<void>;
    let server: RunningServer;
    let key: string;
    let keyId: string;
    let remote: RemoteConveyor;
    /** Every request the server received, in arrival order. */
    const requests: Array<{ method: string; url: string }> = [];
    let n = 0;
    const qname = () => `hw${++n}-${process.pid}`;
    const countSince = (from: number, path?: string) => requests.slice(from).filter((r) => path === undefined || r.url === path).length;

    before(async () => {
      const made = await makeStore();
      cleanup = made.cleanup;
      cv = await Conveyor.open({ store: made.store });
      // Short maintenance interval: expired leases are recovered within 200 ms of expiring.
      server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0, maintenance: { intervalMs: 200 } });
      server.app.server.on('request', (req) => requests.push({ method: req.method ?? '', url: req.url ?? '' }));
      // A key exists, so the server requires one from now on.
      const created = await createApiKey(cv.store, { name: 'workers', scopes: ['consume', 'produce'] });
      key = created.key;
      keyId = created.record.id;
      remote = await Conveyor.connect({ server: server.url, apiKey: key });
    });
    after(async () => {
      await remote?.close({ timeoutMs: 2000 });
      await server?.close();
      await cv?.close({ timeoutMs: 2000 });
      await cleanup?.();
    });

    it('drains 500 jobs added over HTTP; each runs and completes exactly once', async () => {
      const q = qname();
      const rq = remote.queue<{ i: number }, number>(q);
      const bulk = await rq.addBulk(Array.from({ length: 450 }, (_, i) => ({ name: 'double', data: { i } })));
      const singles = await Promise.all(Array.from({ length: 50 }, (_, k) => rq.add('double', { i: 450 + k })));
      assert.equal(bulk.length + singles.length, 500);
      assert.equal(new Set([...bulk, ...singles].map((j) => j.id)).size, 500);
      assert.equal(singles[0]!.state, 'waiting');
      assert.deepEqual(singles[0]!.data, { i: 450 });

      const runs = new Map<string, number>();
      const completed = new Set<string>();
      const w = remote.worker<{ i: number }, number>(
        q,
        async (job) => {
          runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
          return job.data.i * 2;
        },
        { concurrency: 16 },
      );
      const errors: Error[] = [];
      w.on('error', (e) => errors.push(e));
      w.on('completed', (job, result) => {
        assert.equal(result, job.data.i * 2);
        completed.add(job.id);
      });
      await waitUntil(() => completed.size === 500, '500 completions', 60_000);
      await w.close();
      assert.deepEqual(errors, []);
      assert.equal(runs.size, 500);
      assert.ok([...runs.values()].every((c) => c === 1), 'no job ran twice');
      const counts = await cv.queue(q).getCounts();
      assert.deepEqual(counts, { waiting: 0, delayed: 0, active: 0, completed: 500, failed: 0, cancelled: 0 });
      const sample = await cv.queue(q).getJob(singles[7]!.id);
      assert.equal(sample?.result, (450 + 7) * 2);
      assert.equal(sample?.attemptsMade, 1);
    });

    it('retries with the job\'s backoff (and the worker\'s named strategies); unrecoverable and exhausted jobs fail', async () => {
      const q = qname();
      const rq = remote.queue(q);
      const flaky = await rq.add('flaky', null, { attempts: 3, backoff: { type: 'fixed', delay: 300 } });
      const fatal = await rq.add('fatal', null, { attempts: 5 });
      const doomed = await rq.add('doomed', null, { attempts: 2, backoff: { type: 'tenth' } });
      const starts = new Map<string, number[]>();
      const verdicts: string[] = [];
      const w = remote.worker(
        q,
        async (job, ctx) => {
          starts.set(job.id, [...(starts.get(job.id) ?? []), Date.now()]);
          assert.equal(ctx.attempt, job.attemptsMade + 1);
          if (job.name === 'flaky') {
            if (ctx.attempt < 3) throw new Error(`flaky ${ctx.attempt}`);
            return 'ok';
          }
          if (job.name === 'fatal') throw new UnrecoverableError('no way');
          throw new Error('always');
        },
        { concurrency: 4, backoffStrategies: { tenth: () => 150 } },
      );
      w.on('failed', (job, err, willRetry) => verdicts.push(`${job.name}:${err.message}:${willRetry}`));
      const finished = async (id: string) => ['completed', 'failed'].includes((await cv.queue(q).getJob(id))?.state ?? '');
      await waitUntil(async () => (await finished(flaky.id)) && (await finished(fatal.id)) && (await finished(doomed.id)), 'all three finished', 30_000);
      await w.close();

      const f = (await cv.queue(q).getJob(flaky.id))!;
      assert.equal(f.state, 'completed');
      assert.equal(f.result, 'ok');
      assert.equal(f.attemptsMade, 3);
      assert.deepEqual(f.errors.map((e) => e.message), ['flaky 1', 'flaky 2']);
      const fs1 = starts.get(flaky.id)!;
      assert.equal(fs1.length, 3);
      // The server hands a retry out no earlier than its due time: the backoff is a lower bound.
      assert.ok(fs1[1]! - fs1[0]! >= 295 && fs1[2]! - fs1[1]! >= 295, `backoff of 300 ms respected: ${fs1.map((t) => t - fs1[0]!)}`);

      const u = (await cv.queue(q).getJob(fatal.id))!;
      assert.equal(u.state, 'failed');
      assert.equal(u.attemptsMade, 1, 'an unrecoverable error uses no further attempts');
      assert.equal(u.errors[0]?.reason, 'unrecoverable');
      assert.equal(u.errors[0]?.name, 'UnrecoverableError');

      const d = (await cv.queue(q).getJob(doomed.id))!;
      assert.equal(d.state, 'failed');
      assert.equal(d.attemptsMade, 2);
      assert.deepEqual(d.errors.map((e) => e.reason), [undefined, undefined], 'attempts used up, not marked unrecoverable');
      const ds = starts.get(doomed.id)!;
      assert.ok(ds[1]! - ds[0]! >= 145, `named strategy's 150 ms respected: ${ds[1]! - ds[0]!}`);

      assert.deepEqual(verdicts.filter((v) => v.startsWith('flaky')), ['flaky:flaky 1:true', 'flaky:flaky 2:true']);
      assert.deepEqual(verdicts.filter((v) => v.startsWith('fatal')), ['fatal:no way:false']);
      assert.deepEqual(verdicts.filter((v) => v.startsWith('doomed')), ['doomed:always:true', 'doomed:always:false']);
    });

    it('delivers progress and logs; a stale progress write is LEASE_LOST', async () => {
      const q = qname();
      const job = await remote.queue(q).add('report', { n: 1 });
      let lateProgress: Promise<void> | undefined;
      const w = remote.worker(q, async (j, ctx) => {
        await ctx.progress({ pct: 50 });
        await ctx.log('halfway');
        await j.log('almost');
        await ctx.progress({ pct: 100 });
        lateProgress = new Promise((resolve) => setTimeout(resolve, 300)).then(() => j.updateProgress({ pct: 101 }));
        lateProgress.catch(() => undefined);
        return 'fin';
      });
      const done = new Promise((resolve) => w.once('completed', resolve));
      await done;
      const stored = (await cv.queue(q).getJob(job.id))!;
      assert.equal(stored.state, 'completed');
      assert.deepEqual(stored.progress, { pct: 100 });
      assert.equal(stored.result, 'fin');
      const logs = await cv.queue(q).getJobLogs(job.id);
      assert.deepEqual(logs.entries.map((e) => e.message), ['halfway', 'almost']);
      // After completion the attempt's lease is gone: its writes are refused, typed.
      await assert.rejects(lateProgress!, (err: unknown) => err instanceof ConveyorError && err.code === 'LEASE_LOST');
      await w.close();
    });

    it('wakes for a delayed job when it is due (claims report nextRunAt), not at the safety-net poll', async () => {
      const q = qname();
      const job = await remote.queue(q).add('later', null, { delay: 700 });
      assert.equal(job.state, 'delayed');
      const w = remote.worker(q, async () => 'ran');
      const done = new Promise((resolve) => w.once('completed', resolve));
      // The safety-net poll is 30 s; only the due time reported by the claim wakes it sooner.
      await Promise.race([done, sleep(15_000).then(() => assert.fail('the delayed job did not run when due'))]);
      const stored = (await cv.queue(q).getJob(job.id))!;
      assert.ok(stored.startedAt! >= stored.runAt, 'not started before it was due');
      await w.close();
    });

    it('reports the worker to the registry as remote, and removes it on close', async () => {
      const q = qname();
      const w = remote.worker(q, async () => 'ok', { concurrency: 3 });
      const mine = async () => (await cv.store.listWorkers({ since: 0 })).find((x) => x.id === w.id);
      await waitUntil(async () => (await mine()) !== undefined, 'the worker in the registry');
      const row = (await mine())!;
      assert.equal(row.kind, 'remote');
      assert.equal(row.host, os.hostname());
      assert.equal(row.pid, process.pid);
      assert.deepEqual(row.queues, [q]);
      assert.equal(row.concurrency, 3);
      assert.equal(row.meta?.keyId, keyId);
      await w.close();
      assert.equal(await mine(), undefined, 'gone once closed');
    });

    it('an idle worker costs O(1) requests per wait period, and a new job still wakes it at once', async (t) => {
      const q = qname();
      const w = remote.worker(q, async () => 'ok');
      await waitUntil(() => requests.some((r) => r.url === '/api/v1/wait'), 'the wake-up loop');
      await sleep(500);
      const from = requests.length;
      await sleep(3000);
      const idle = countSince(from);
      // Default wait 30 s, safety-net claim 30 s, registry report 15 s: typically 0 here.
      t.diagnostic(`idle worker (waitMs 30 s): ${idle} requests in 3 s`);
      assert.ok(idle <= 6, `an idle worker made ${idle} requests in 3 s: ${JSON.stringify(requests.slice(from))}`);

      // A job added now wakes it through the open wait (not a poll): completed long before any poll.
      const before = requests.length;
      const done = new Promise((resolve) => w.once('completed', resolve));
      await remote.queue(q).add('wake', null);
      await Promise.race([done, sleep(10_000).then(() => assert.fail('the new job did not wake the idle worker'))]);
      await w.close();
      const perJob = countSince(before);
      t.diagnostic(`one job added to an idle worker: ${perJob} requests (${requests.slice(before).map((r) => r.url).join(', ')})`);
      assert.ok(perJob <= 8, `one job cost ${perJob} requests: ${JSON.stringify(requests.slice(before))}`);

      // With a 1 s wait, waits come once a second: O(1) per waitMs.
      const fast = await Conveyor.connect({ server: server.url, apiKey: key, waitMs: 1000 });
      const w2 = fast.worker(qname(), async () => 'ok');
      await sleep(500);
      const from2 = requests.length;
      await sleep(3000);
      const waits = countSince(from2, '/api/v1/wait');
      t.diagnostic(`waitMs 1000: ${waits} waits, ${countSince(from2)} requests in 3 s`);
      assert.ok(waits >= 1 && waits <= 8, `${waits} waits in 3 s with waitMs 1000`);
      await w2.close();
      await fast.close();
    });

    it('a wrong API key: the worker reports UNAUTHORIZED and backs off instead of spinning', async (t) => {
      const q = qname();
      const bad = await Conveyor.connect({ server: server.url, apiKey: 'cvk_0123456789abcdef_wrong' });
      await assert.rejects(bad.queue(q).add('x', 1), (err: unknown) => err instanceof ConveyorError && err.code === 'UNAUTHORIZED');
      const errors: Error[] = [];
      const from = requests.length;
      const w = bad.worker(q, async () => 'never');
      w.on('error', (e) => errors.push(e));
      await waitUntil(() => errors.length > 0, 'an error event');
      assert.ok(errors[0] instanceof ConveyorError);
      assert.equal((errors[0] as ConveyorError).code, 'UNAUTHORIZED');
      await sleep(2500);
      const claims = countSince(from, '/api/v1/claim');
      const total = countSince(from);
      t.diagnostic(`wrong key: ${claims} claims, ${total} requests in 2.5 s`);
      // Backing off (50 ms doubling to 5 s) makes about 6 claims in 2.5 s; spinning would make hundreds.
      assert.ok(claims <= 15 && total <= 30, `${claims} claims, ${total} requests in 2.5 s with a wrong key`);
      assert.ok(errors.every((e) => (e as ConveyorError).code === 'UNAUTHORIZED'));
      await w.close();
      await bad.close();
    });

    it('a remote worker process drains a queue over HTTP and closes gracefully', async () => {
      const q = qname();
      await remote.queue(q).addBulk(Array.from({ length: 300 }, (_, i) => ({ name: 'p', data: i })));
      const child = spawnChild(FIXTURE, [server.url, key, q, '8', '5000', 'sleep:1'], { timeoutMs: 30_000 });
      const completedIds = (lines: readonly string[]) => new Set(lines.filter((l) => l.startsWith('completed ')).map((l) => l.slice(10)));
      await child.waitFor((lines) => completedIds(lines).size >= 300, '300 completions in the child', 60_000);
      child.proc.kill('SIGTERM');
      await child.waitFor((lines) => lines.includes('closed'), 'graceful close');
      assert.equal(await child.exited, 0);
      assert.deepEqual(child.lines.filter((l) => l.startsWith('lost ') || l.startsWith('error ')), []);
      assert.equal(child.lines.filter((l) => l.startsWith('completed ')).length, 300, 'each completion once');
      const counts = await cv.queue(q).getCounts();
      assert.equal(counts.completed, 300);
      assert.equal(counts.waiting + counts.active, 0);
      const id = child.lines.find((l) => l.startsWith('ready '))!.slice(6);
      assert.equal((await cv.store.listWorkers({ since: 0 })).find((x) => x.id === id), undefined, 'removed from the registry on close');
    });

    it('a lease expiring mid-job: the server recovers the job, another worker completes it, the late ack is refused', async () => {
      const q = qname();
      const flag = path.join(os.tmpdir(), `conveyor-http-${q}-${Date.now()}`);
      const child = spawnChild(FIXTURE, [server.url, key, q, '1', '1000', `block-until:${flag}`], { timeoutMs: 30_000 });
      try {
        await child.waitFor((lines) => lines.some((l) => l.startsWith('ready ')), 'the child worker');
        const job = await remote.queue(q).add('slow', null);
        await child.waitFor((lines) => lines.includes(`run ${job.id}`), 'the child running the job');
        // The child's handler now blocks its event loop: no heartbeat renews its 1 s lease.
        // The server's maintenance recovers the job once the lease expires; a second worker
        // (woken by the recovery's signal) claims and completes it.
        const second = remote.worker(q, async () => 'second');
        const secondDone = new Promise<string>((resolve) => second.once('completed', (j) => resolve(j.id)));
        assert.equal(await secondDone, job.id);
        const mid = (await cv.queue(q).getJob(job.id))!;
        assert.equal(mid.state, 'completed');
        assert.equal(mid.stalls, 1, 'it stalled once');

        // Unblock the child: its handler returns and its completion goes out with the old
        // token (the job is no longer held, so no heartbeat runs first); the server refuses it.
        fs.writeFileSync(flag, '');
        await child.waitFor((lines) => lines.includes(`lost ${job.id}`), 'the late ack refused');
        assert.ok(!child.lines.includes(`completed ${job.id}`), 'the first worker never completed it');
        const stored = (await cv.queue(q).getJob(job.id))!;
        assert.equal(stored.state, 'completed');
        assert.equal(stored.result, 'second', 'the second worker\'s result stands');
        assert.equal(stored.attemptsMade, 1, 'completed exactly once');
        await second.close();
        child.proc.kill('SIGTERM');
        await child.waitFor((lines) => lines.includes('closed'), 'graceful close');
        assert.equal(await child.exited, 0);
      } finally {
        fs.rmSync(flag, { force: true });
      }
    });
  });
}

describe('workers over HTTP: the server goes away and comes back', () => {
  it('reports STORE_UNAVAILABLE, backs off, and resumes on the restarted server', async (t) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-http-restart-'));
    const store = openSqliteStore({ path: path.join(dir, 'conveyor.db'), durability: 'normal', busyTimeoutMs: 5000 });
    const cv = await Conveyor.open({ store });
    let server = await startServer(cv, { port: 0, logger: false, maintenance: { intervalMs: 200 } });
    const port = Number(new URL(server.url).port);
    const remote = await Conveyor.connect({ server: server.url, requestTimeoutMs: 2000 });
    try {
      const q = `restart-${process.pid}`;
      const completed: string[] = [];
      const errors: Error[] = [];
      const w = remote.worker(q, async (job) => job.id);
      w.on('completed', (job) => completed.push(job.id));
      w.on('error', (e) => errors.push(e));
      const first = await remote.queue(q).add('before', null);
      await waitUntil(() => completed.includes(first.id), 'a job before the outage');

      await server.close();
      // Written straight to the store while the server is down.
      const during = await cv.queue(q).add('during', null);
      await waitUntil(() => errors.some((e) => (e as ConveyorError).code === 'STORE_UNAVAILABLE'), 'STORE_UNAVAILABLE reported', 20_000);
      await sleep(1000);
      const failedClaims = errors.length;
      t.diagnostic(`${failedClaims} errors reported in the first ~1 s of the outage`);
      assert.ok(failedClaims <= 20, `backs off while the server is down (${failedClaims} errors)`);
      assert.ok(errors.every((e) => e instanceof ConveyorError && e.code === 'STORE_UNAVAILABLE' && e.retryable), errors.map((e) => e.message).join('; '));

      server = await startServer(cv, { port, logger: false, maintenance: { intervalMs: 200 } });
      await waitUntil(() => completed.includes(during.id), 'the job added during the outage, once the server is back', 30_000);
      const after = await remote.queue(q).add('after', null);
      await waitUntil(() => completed.includes(after.id), 'a job after the restart', 30_000);
      await w.close();
      assert.equal((await cv.queue(q).getCounts()).completed, 3);
    } finally {
      await remote.close({ timeoutMs: 1000 });
      await server.close();
      await cv.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

httpWorkerSuite('sqlite', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-http-worker-'));
  const store = openSqliteStore({ path: path.join(dir, 'conveyor.db'), durability: 'normal', busyTimeoutMs: 5000 });
  return {
    store,
    cleanup: async () => {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

httpWorkerSuite('postgres', async () => {
  const { store, cleanup } = await makePgStore();
  return { store, cleanup };
});
