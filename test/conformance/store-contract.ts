/**
 * The Store contract conformance suite.
 *
 * Every store (SQLite now; PostgreSQL and Redis later) runs this suite unchanged. It uses
 * only the `Store` interface from src/store/contract.ts: no SQL, no driver, no branching on
 * `store.kind` (only on `store.capabilities`). Every result is awaited, because a store may
 * answer synchronously or with a promise. Time is driven explicitly through the `now`
 * parameters from a fixed base, never by sleeping (signal delivery is the one exception:
 * signals may arrive asynchronously, so those tests poll with a deadline).
 *
 * Each test gets a fresh store from `makeStore` and cleans it up afterwards.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';

import type { EnqueueResult, Store, StoreCapability, StoreSignal } from '../../src/store/contract.ts';
import type { AttemptError, JobRecord, JobState, StoredJobOptions } from '../../src/job.ts';
import { ConveyorError } from '../../src/errors.ts';
import { add, addOne, claim, claimOne, type MakeStore, newJob, nth, plain, Q, storeTest, T0 } from './helpers.ts';

export type { MakeStore } from './helpers.ts';

const ALL_STATES: readonly JobState[] = ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'];
const ZERO_COUNTS: Record<JobState, number> = { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 };
const KNOWN_CAPABILITIES: readonly StoreCapability[] = ['multiProcess', 'crossProcessSignals', 'transactionalEnqueue'];

// ----------------------------------------------------------------------------- helpers

async function mustGet(store: Store, id: string, queue = Q): Promise<JobRecord> {
  const job = await store.getJob({ queue, id });
  assert.ok(job !== null, `job ${queue}/${id} should exist`);
  return job;
}

function ids(jobs: readonly { id: string }[]): string[] {
  return jobs.map((j) => j.id);
}

function err(attempt: number, at: number, extra: Partial<AttemptError> = {}): AttemptError {
  return { message: `boom ${attempt}`, name: 'Error', stack: `Error: boom ${attempt}\n    at handler (job.ts:1:1)`, at, attempt, ...extra };
}

async function complete(store: Store, id: string, token: string, now: number, result: string | null = null): Promise<void> {
  const out = await store.completeMany({ items: [{ id, token, result, remove: false }], now });
  assert.deepEqual(plain(out), [{ status: 'applied' }]);
}

async function failFinal(store: Store, id: string, token: string, now: number, attempt = 1): Promise<void> {
  const out = await store.failMany({ items: [{ id, token, error: err(attempt, now), retryAt: null, remove: false }], now });
  assert.deepEqual(plain(out), [{ status: 'applied', state: 'failed' }]);
}

async function waitFor(pred: () => boolean, timeoutMs = 2000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

function created(id: string): EnqueueResult {
  return { status: 'created', id };
}

// ------------------------------------------------------------------------------- suite

export function storeContractSuite(label: string, makeStore: MakeStore): void {
  /** One test with its own fresh store, always cleaned up. */
  const test = storeTest(makeStore);

  describe(`store contract: ${label}`, () => {
    // ------------------------------------------------------------------ lifecycle
    describe('lifecycle', () => {
      test('declares only known capabilities', async (store) => {
        assert.ok(store.capabilities instanceof Set, 'capabilities is a Set');
        for (const cap of store.capabilities) assert.ok(KNOWN_CAPABILITIES.includes(cap), `unknown capability ${String(cap)}`);
        assert.equal(typeof store.kind, 'string');
        assert.ok(store.kind.length > 0);
      });

      test('migrate is idempotent and keeps existing jobs', async (store) => {
        const id = await addOne(store, { data: '{"keep":true}' });
        await store.migrate();
        await store.migrate();
        assert.equal((await mustGet(store, id)).data, '{"keep":true}');
        const id2 = await addOne(store);
        assert.notEqual(id2, id);
      });

      test('generated ids are never reused, even after the newest job is deleted', async (store) => {
        const asNumber = (id: string) => Number(id);
        // removeJob of the newest job
        const [, , newest] = await add(store, [{}, {}, {}]);
        assert.deepEqual(await store.removeJob({ queue: Q, id: newest! }), { status: 'applied' });
        const next = await addOne(store);
        assert.ok(asNumber(next) > asNumber(newest!), `id ${next} reused or went backwards (removed ${newest})`);
        // completion with remove of the newest job
        const c = await claim(store, { limit: 10 });
        const top = c.jobs.reduce((a, j) => (asNumber(j.id) > asNumber(a.id) ? j : a));
        await store.completeMany({ items: c.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: true })), now: T0 });
        const after = await addOne(store);
        assert.ok(asNumber(after) > asNumber(top.id), `id ${after} reused after removing ${top.id}`);
        // drain and clean of the newest jobs
        assert.ok((await store.drain({ queue: Q, includeDelayed: true, limit: 100 })) >= 1);
        const afterDrain = await addOne(store);
        assert.ok(asNumber(afterDrain) > asNumber(after));
        // deletions never make tombstones or gaps visible
        assert.deepEqual((await store.countJobs({ queue: Q })).waiting, 1);
        const page = await store.listJobs({ queue: Q, states: [...ALL_STATES], limit: 100 });
        assert.deepEqual(page.jobs.map((j) => j.id), [afterDrain]);
      });

      test('ping answers', async (store) => {
        assert.equal(await store.ping(), undefined);
      });

      test('close is idempotent and later calls fail with a ConveyorError', async (store) => {
        const id = await addOne(store);
        await store.close();
        await store.close();
        const isConveyorError = (e: unknown): boolean => {
          assert.ok(e instanceof ConveyorError, `expected a ConveyorError, got ${String(e)}`);
          return true;
        };
        await assert.rejects(async () => {
          await store.getJob({ queue: Q, id });
        }, isConveyorError);
        await assert.rejects(async () => {
          await store.enqueueMany({ jobs: [newJob()], now: T0 });
        }, isConveyorError);
        await assert.rejects(async () => {
          await claim(store);
        }, isConveyorError);
      });
    });

    // -------------------------------------------------------------------- enqueue
    describe('enqueueMany', () => {
      test('returns one created result per job in input order, with distinct decimal ids', async (store) => {
        const jobs = [0, 1, 2, 3, 4].map((i) => newJob({ data: `{"i":${i}}` }));
        const results = await store.enqueueMany({ jobs, now: T0 });
        assert.equal(results.length, 5);
        for (const r of results) {
          assert.equal(r.status, 'created');
          assert.match(r.id, /^[0-9]+$/, 'generated ids are decimal strings');
        }
        assert.equal(new Set(ids(results)).size, 5, 'ids are distinct');
        for (const [i, r] of results.entries()) assert.equal((await mustGet(store, r.id)).data, `{"i":${i}}`);
        // A second batch gets fresh ids too.
        const more = await add(store, [{}, {}]);
        assert.equal(new Set([...ids(results), ...more]).size, 7);
      });

      test('round-trips every JobRecord field; runAt after now means delayed', async (store) => {
        const opts: StoredJobOptions = {
          attempts: 4,
          backoff: { type: 'exponential', delay: 1000, jitter: 0.5, maxDelay: 60_000 },
          timeout: 5000,
          leaseMs: 20_000,
          removeOnComplete: { age: 3600, count: 10 },
          removeOnFail: 100,
        };
        const [a, b, c, d] = await add(
          store,
          [
            { name: 'send-email', data: '{"to":"a@example.com","n":[1,2.5,null],"s":"h\\u00e9llo ✓"}', opts, priority: 3, runAt: T0 },
            { name: 'report', data: '[]', opts: { attempts: 1 }, priority: -2, runAt: T0 + 1 },
            { name: 'late', data: 'null', opts: { attempts: 2 }, priority: 0, runAt: T0 - 5000 },
            { queue: 'other', name: 'x', data: '"str"', opts: { attempts: 1 }, priority: 0, runAt: T0 + 60_000 },
          ],
          T0,
        );
        const base = {
          attemptsMade: 0,
          stalls: 0,
          createdAt: T0,
          startedAt: null,
          finishedAt: null,
          lease: null,
          progress: null,
          result: null,
          errors: [],
        };
        assert.deepEqual(plain(await mustGet(store, a as string)), {
          ...base,
          id: a,
          queue: Q,
          name: 'send-email',
          data: '{"to":"a@example.com","n":[1,2.5,null],"s":"h\\u00e9llo ✓"}',
          opts,
          state: 'waiting',
          priority: 3,
          maxAttempts: 4,
          runAt: T0,
        });
        assert.deepEqual(plain(await mustGet(store, b as string)), {
          ...base,
          id: b,
          queue: Q,
          name: 'report',
          data: '[]',
          opts: { attempts: 1 },
          state: 'delayed',
          priority: -2,
          maxAttempts: 1,
          runAt: T0 + 1,
        });
        assert.deepEqual(plain(await mustGet(store, c as string)), {
          ...base,
          id: c,
          queue: Q,
          name: 'late',
          data: 'null',
          opts: { attempts: 2 },
          state: 'waiting',
          priority: 0,
          maxAttempts: 2,
          runAt: T0 - 5000,
        });
        assert.deepEqual(plain(await mustGet(store, d as string, 'other')), {
          ...base,
          id: d,
          queue: 'other',
          name: 'x',
          data: '"str"',
          opts: { attempts: 1 },
          state: 'delayed',
          priority: 0,
          maxAttempts: 1,
          runAt: T0 + 60_000,
        });
      });

      test('getJob returns null for an unknown id or for the wrong queue', async (store) => {
        const id = await addOne(store);
        assert.equal(await store.getJob({ queue: Q, id: '999999999' }), null);
        assert.equal(await store.getJob({ queue: Q, id: 'no-such-job' }), null);
        assert.equal(await store.getJob({ queue: 'elsewhere', id }), null);
      });

      test('an empty batch returns an empty list', async (store) => {
        assert.deepEqual(plain(await store.enqueueMany({ jobs: [], now: T0 })), []);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), ZERO_COUNTS);
      });
    });

    // --------------------------------------------------------------- caller ids
    describe('caller-chosen ids', () => {
      test('a live duplicate (waiting, delayed, active) is reported and nothing changes', async (store) => {
        const results0 = await store.enqueueMany({ jobs: [newJob({ id: 'order-3', data: '{"v":"active"}' })], now: T0 });
        assert.deepEqual(plain(results0), [created('order-3')]);
        const claimed = await claimOne(store);
        assert.equal(claimed.id, 'order-3');
        const activeBefore = await mustGet(store, 'order-3');

        const results1 = await store.enqueueMany({
          jobs: [newJob({ id: 'order-1', data: '{"v":"waiting"}' }), newJob({ id: 'order-2', data: '{"v":"delayed"}', runAt: T0 + 10_000 })],
          now: T0,
        });
        assert.deepEqual(plain(results1), [created('order-1'), created('order-2')]);

        const dup = await store.enqueueMany({
          jobs: [
            newJob({ id: 'order-1', data: '{"v":"new1"}', priority: 9, runAt: T0 + 50_000 }),
            newJob({ id: 'order-2', data: '{"v":"new2"}', priority: 9, runAt: T0 }),
            newJob({ id: 'order-3', data: '{"v":"new3"}', priority: 9 }),
          ],
          now: T0 + 5,
        });
        assert.deepEqual(plain(dup), [
          { status: 'duplicate', id: 'order-1' },
          { status: 'duplicate', id: 'order-2' },
          { status: 'duplicate', id: 'order-3' },
        ]);

        const o1 = await mustGet(store, 'order-1');
        assert.equal(o1.data, '{"v":"waiting"}');
        assert.equal(o1.state, 'waiting');
        assert.equal(o1.priority, 0);
        assert.equal(o1.runAt, T0);
        const o2 = await mustGet(store, 'order-2');
        assert.equal(o2.data, '{"v":"delayed"}');
        assert.equal(o2.state, 'delayed');
        assert.equal(o2.runAt, T0 + 10_000);
        assert.deepEqual(plain(await mustGet(store, 'order-3')), plain(activeBefore));
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 1, delayed: 1, active: 1 });
      });

      test('a duplicate inside one batch: the first wins', async (store) => {
        const res = await store.enqueueMany({
          jobs: [newJob({ id: 'dup', data: '{"first":true}' }), newJob({ data: '{"other":true}' }), newJob({ id: 'dup', data: '{"second":true}' })],
          now: T0,
        });
        assert.equal(res.length, 3);
        assert.deepEqual(plain(res[0]), created('dup'));
        assert.equal(nth(res, 1).status, 'created');
        assert.deepEqual(plain(res[2]), { status: 'duplicate', id: 'dup' });
        assert.equal((await mustGet(store, 'dup')).data, '{"first":true}');
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 2 });
      });

      test('the same id in another queue is an independent job', async (store) => {
        const res = await store.enqueueMany({
          jobs: [newJob({ id: 'same', queue: 'qa', data: '{"q":"a"}' }), newJob({ id: 'same', queue: 'qb', data: '{"q":"b"}' })],
          now: T0,
        });
        assert.deepEqual(plain(res), [created('same'), created('same')]);
        assert.equal((await mustGet(store, 'same', 'qa')).data, '{"q":"a"}');
        assert.equal((await mustGet(store, 'same', 'qb')).data, '{"q":"b"}');
        // Finishing one does not touch the other.
        const c = await claimOne(store, { queues: ['qa'] });
        await complete(store, c.id, c.token, T0 + 1);
        assert.equal((await mustGet(store, 'same', 'qa')).state, 'completed');
        assert.equal((await mustGet(store, 'same', 'qb')).state, 'waiting');
      });

      for (const finish of ['completed', 'failed', 'cancelled'] as const) {
        test(`after the job is ${finish}, the same id is accepted again as a new job`, async (store) => {
          await add(store, [{ id: 'reuse', data: '{"gen":1}', priority: 1 }]);
          const c = await claimOne(store);
          await store.addLogs({ queue: Q, id: 'reuse', entries: [{ at: T0 + 1, message: 'old log' }] });
          if (finish === 'completed') await complete(store, c.id, c.token, T0 + 10, '"old"');
          else if (finish === 'failed') await failFinal(store, c.id, c.token, T0 + 10);
          else assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: 'reuse', now: T0 + 10 })), { status: 'applied' });
          assert.equal((await mustGet(store, 'reuse')).state, finish);

          const again = await store.enqueueMany({ jobs: [newJob({ id: 'reuse', data: '{"gen":2}', priority: 2, opts: { attempts: 5 } })], now: T0 + 100 });
          assert.deepEqual(plain(again), [created('reuse')]);
          assert.deepEqual(plain(await mustGet(store, 'reuse')), {
            id: 'reuse',
            queue: Q,
            name: 'job',
            data: '{"gen":2}',
            opts: { attempts: 5 },
            state: 'waiting',
            priority: 2,
            attemptsMade: 0,
            maxAttempts: 5,
            stalls: 0,
            runAt: T0,
            createdAt: T0 + 100,
            startedAt: null,
            finishedAt: null,
            lease: null,
            progress: null,
            result: null,
            errors: [],
          });
          assert.deepEqual(plain(await store.getLogs({ queue: Q, id: 'reuse', offset: 0, limit: 10 })), { entries: [], total: 0 });
          assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 1 });
          // And it is live again: the next enqueue with that id is a duplicate.
          const third = await store.enqueueMany({ jobs: [newJob({ id: 'reuse', data: '{"gen":3}' })], now: T0 + 200 });
          assert.deepEqual(plain(third), [{ status: 'duplicate', id: 'reuse' }]);
        });
      }
    });

    // ---------------------------------------------------------------------- claim
    describe('claim', () => {
      test('orders by priority DESC, then runAt ASC, then insertion order (due delayed jobs included)', async (store) => {
        const labels = new Map<string, string>();
        const put = async (label: string, priority: number, runAt: number): Promise<void> => {
          labels.set(await addOne(store, { priority, runAt, data: JSON.stringify(label) }, T0 + 100), label);
        };
        await put('j1', 0, T0 + 50);
        await put('j2', 0, T0 + 10);
        await put('j3', 5, T0 + 90);
        await put('j4', 0, T0 + 10);
        await put('j5', -1, T0);
        await put('j6', 5, T0 + 90);
        await put('j7', 0, T0 + 150); // delayed at enqueue, due at claim time
        await put('j8', 5, T0 + 120); // delayed at enqueue, due at claim time
        const first = await claim(store, { limit: 3, now: T0 + 200 });
        assert.deepEqual(first.jobs.map((j) => labels.get(j.id)), ['j3', 'j6', 'j8']);
        const rest = await claim(store, { limit: 10, now: T0 + 200 });
        assert.deepEqual(rest.jobs.map((j) => labels.get(j.id)), ['j2', 'j4', 'j1', 'j7', 'j5']);
        assert.equal(rest.nextRunAt, null);
      });

      test('insertion order breaks ties across separate batches', async (store) => {
        const a = await add(store, [{ data: '"a1"' }, { data: '"a2"' }]);
        const b = await add(store, [{ data: '"b1"' }]);
        const c = await add(store, [{ data: '"c1"' }, { data: '"c2"' }]);
        const res = await claim(store, { limit: 10 });
        assert.deepEqual(ids(res.jobs), [...a, ...b, ...c]);
      });

      test('never returns more than limit', async (store) => {
        const all = await add(store, [{}, {}, {}, {}, {}]);
        const r1 = await claim(store, { limit: 2 });
        const r2 = await claim(store, { limit: 2 });
        const r3 = await claim(store, { limit: 2 });
        assert.deepEqual(ids(r1.jobs), all.slice(0, 2));
        assert.deepEqual(ids(r2.jobs), all.slice(2, 4));
        assert.deepEqual(ids(r3.jobs), all.slice(4));
        assert.deepEqual(ids((await claim(store, { limit: 2 })).jobs), []);
      });

      test('a delayed job is invisible until now >= runAt', async (store) => {
        const id = await addOne(store, { runAt: T0 + 1000 });
        assert.equal((await mustGet(store, id)).state, 'delayed');
        const early = await claim(store, { now: T0 + 999 });
        assert.deepEqual(ids(early.jobs), []);
        assert.equal(early.nextRunAt, T0 + 1000);
        assert.equal((await mustGet(store, id)).state, 'delayed');
        const due = await claim(store, { now: T0 + 1000 });
        assert.deepEqual(ids(due.jobs), [id]);
        const job = nth(due.jobs, 0);
        assert.equal(job.state, 'active');
        assert.equal(job.runAt, T0 + 1000);
        assert.equal(job.startedAt, T0 + 1000);
      });

      test('nextRunAt reports the earliest delayed runAt of the claimed queues when fewer than limit are claimed', async (store) => {
        const [w1] = await add(store, [{}, { runAt: T0 + 500 }, { runAt: T0 + 300 }, { queue: 'other', runAt: T0 + 50 }]);
        const r1 = await claim(store, { limit: 5 });
        assert.deepEqual(ids(r1.jobs), [w1]);
        assert.equal(r1.nextRunAt, T0 + 300);
        const r2 = await claim(store, { limit: 5, now: T0 + 1 });
        assert.deepEqual(ids(r2.jobs), []);
        assert.equal(r2.nextRunAt, T0 + 300);

        await add(store, [{ queue: 'q2', runAt: T0 + 200 }]);
        const r3 = await claim(store, { queues: [Q, 'q2'], limit: 5, now: T0 + 2 });
        assert.deepEqual(ids(r3.jobs), []);
        assert.equal(r3.nextRunAt, T0 + 200);

        // Once the earliest one is claimed, the next earliest is reported.
        const r4 = await claim(store, { queues: [Q, 'q2'], limit: 5, now: T0 + 300 });
        assert.equal(r4.jobs.length, 2);
        assert.equal(r4.nextRunAt, T0 + 500);
      });

      test('nextRunAt is null when limit is reached or nothing is delayed', async (store) => {
        await add(store, [{}, {}, { runAt: T0 + 400 }]);
        const full = await claim(store, { limit: 1 });
        assert.equal(full.jobs.length, 1);
        assert.equal(full.nextRunAt, null);
        const exact = await claim(store, { limit: 1 });
        assert.equal(exact.jobs.length, 1);
        assert.equal(exact.nextRunAt, null);
        const empty = await claim(store, { queues: ['nothing-here'], limit: 5 });
        assert.deepEqual(ids(empty.jobs), []);
        assert.equal(empty.nextRunAt, null);
        await add(store, [{ queue: 'only-waiting' }]);
        const some = await claim(store, { queues: ['only-waiting'], limit: 5 });
        assert.equal(some.jobs.length, 1);
        assert.equal(some.nextRunAt, null);
      });

      test('several queues in one call follow one global order', async (store) => {
        const labels = new Map<string, string>();
        const put = async (label: string, queue: string, priority: number, runAt: number): Promise<void> => {
          labels.set(await addOne(store, { queue, priority, runAt }, T0 + 100), label);
        };
        await put('a1', 'qa', 0, T0);
        await put('b1', 'qb', 1, T0 + 50);
        await put('a2', 'qa', 0, T0 + 30);
        await put('b2', 'qb', 0, T0 + 10);
        await put('c1', 'qc', 9, T0); // not claimed: queue not asked for
        await put('b3', 'qb', 0, T0 + 30); // ties with a2 on runAt, inserted later
        const res = await claim(store, { queues: ['qa', 'qb'], limit: 10, now: T0 + 100 });
        assert.deepEqual(res.jobs.map((j) => labels.get(j.id)), ['b1', 'a1', 'b2', 'a2', 'b3']);
        assert.deepEqual(res.jobs.map((j) => j.queue), ['qb', 'qa', 'qb', 'qa', 'qb']);
      });

      test('a paused queue yields nothing and no nextRunAt; resume makes its jobs claimable', async (store) => {
        const [w] = await add(store, [{}, { runAt: T0 + 100 }]);
        const [o] = await add(store, [{ queue: 'q2' }, { queue: 'q2', runAt: T0 + 700 }]);
        assert.equal(await store.isPaused({ queue: Q }), false);
        await store.setPaused({ queue: Q, paused: true });
        assert.equal(await store.isPaused({ queue: Q }), true);
        assert.equal(await store.isPaused({ queue: 'q2' }), false);

        const r1 = await claim(store, { queues: [Q], limit: 5 });
        assert.deepEqual(ids(r1.jobs), []);
        assert.equal(r1.nextRunAt, null);
        const r2 = await claim(store, { queues: [Q, 'q2'], limit: 5 });
        assert.deepEqual(ids(r2.jobs), [o]);
        assert.equal(r2.nextRunAt, T0 + 700);
        // Due delayed jobs of a paused queue stay put as well.
        assert.deepEqual(ids((await claim(store, { queues: [Q], limit: 5, now: T0 + 200 })).jobs), []);

        await store.setPaused({ queue: Q, paused: false });
        assert.equal(await store.isPaused({ queue: Q }), false);
        const r3 = await claim(store, { queues: [Q], limit: 1, now: T0 + 1 });
        assert.deepEqual(ids(r3.jobs), [w]);
      });

      test('pausing twice and resuming an unpaused queue are harmless', async (store) => {
        await store.setPaused({ queue: Q, paused: true });
        await store.setPaused({ queue: Q, paused: true });
        assert.equal(await store.isPaused({ queue: Q }), true);
        await store.setPaused({ queue: Q, paused: false });
        await store.setPaused({ queue: Q, paused: false });
        assert.equal(await store.isPaused({ queue: Q }), false);
        const id = await addOne(store);
        assert.deepEqual(ids((await claim(store)).jobs), [id]);
      });

      test('a claimed job is active with a lease for the worker, and getJob agrees', async (store) => {
        const [a, b] = await add(store, [{ data: '{"a":1}' }, { data: '{"b":2}' }]);
        const res = await claim(store, { workerId: 'worker-A', leaseMs: 30_000, now: T0 + 10 });
        assert.deepEqual(ids(res.jobs), [a, b]);
        for (const job of res.jobs) {
          assert.equal(job.state, 'active');
          assert.equal(job.startedAt, T0 + 10);
          assert.equal(job.attemptsMade, 0);
          assert.equal(job.finishedAt, null);
          assert.equal(job.lease.owner, 'worker-A');
          assert.equal(typeof job.lease.token, 'string');
          assert.ok(job.lease.token.length > 0, 'token is non-empty');
          assert.equal(job.lease.expiresAt, T0 + 30_010);
          assert.deepEqual(plain(await mustGet(store, job.id)), plain(job));
        }
        assert.equal(nth(res.jobs, 0).data, '{"a":1}');
        assert.notEqual(nth(res.jobs, 0).lease.token, nth(res.jobs, 1).lease.token, 'tokens differ per job');
      });

      test("a job's opts.leaseMs overrides the claim's leaseMs", async (store) => {
        const [a, b] = await add(store, [{ opts: { attempts: 1, leaseMs: 5000 } }, { opts: { attempts: 1 } }]);
        const res = await claim(store, { leaseMs: 30_000, now: T0 + 7 });
        assert.deepEqual(ids(res.jobs), [a, b]);
        assert.equal(nth(res.jobs, 0).lease.expiresAt, T0 + 5007);
        assert.equal(nth(res.jobs, 1).lease.expiresAt, T0 + 30_007);
      });

      test('a job is never handed out twice while its lease is live', async (store) => {
        const all = await add(store, [{}, {}, {}]);
        const r1 = await claim(store, { workerId: 'w1', limit: 2 });
        assert.deepEqual(ids(r1.jobs), all.slice(0, 2));
        const r2 = await claim(store, { workerId: 'w2', limit: 10, now: T0 + 1000 });
        assert.deepEqual(ids(r2.jobs), all.slice(2));
        assert.equal(nth(r2.jobs, 0).lease.owner, 'w2');
        const r3 = await claim(store, { workerId: 'w3', limit: 10, now: T0 + 2000 });
        assert.deepEqual(ids(r3.jobs), []);
        assert.equal((await mustGet(store, nth(all, 0))).lease?.owner, 'w1');
      });

      test('large batches: 2000 jobs enqueued, claimed and completed in big calls', async (store) => {
        const all = await add(store, Array.from({ length: 2000 }, (_, i) => ({ data: String(i), id: i % 2 === 0 ? `k-${i}` : undefined })));
        assert.equal(new Set(all).size, 2000);
        assert.equal((await store.countJobs({ queue: Q })).waiting, 2000);
        const r1 = await claim(store, { limit: 1500 });
        assert.deepEqual(ids(r1.jobs), all.slice(0, 1500));
        const out = await store.completeMany({ items: r1.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: false })), now: T0 + 1 });
        assert.equal(out.length, 1500);
        assert.ok(out.every((o) => o.status === 'applied'));
        const r2 = await claim(store, { limit: 1500, now: T0 + 2 });
        assert.deepEqual(ids(r2.jobs), all.slice(1500));
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, active: 500, completed: 1500 });
      });

      test('a claim over many queues', async (store) => {
        const queues = Array.from({ length: 60 }, (_, i) => `many-${i}`);
        const labels = new Map<string, number>();
        for (const [i, queue] of queues.entries()) labels.set(await addOne(store, { queue, priority: i % 7, runAt: T0 - i }), i);
        const res = await claim(store, { queues, limit: 100 });
        assert.equal(res.jobs.length, 60);
        const got = res.jobs.map((j) => labels.get(j.id) as number);
        const want = [...queues.keys()].sort((x, y) => (y % 7) - (x % 7) || (T0 - x) - (T0 - y));
        assert.deepEqual(got, want);
      });

      test('concurrent claims split the jobs without overlap', async (store) => {
        const all = await add(store, [{}, {}, {}, {}, {}, {}, {}]);
        const results = await Promise.all([
          claim(store, { workerId: 'w1', limit: 3 }),
          claim(store, { workerId: 'w2', limit: 3 }),
          claim(store, { workerId: 'w3', limit: 3 }),
        ]);
        const got = results.flatMap((r) => ids(r.jobs));
        assert.equal(got.length, 7);
        assert.deepEqual([...got].sort(), [...all].sort());
        for (const r of results) assert.ok(r.jobs.length <= 3);
      });
    });

    // --------------------------------------------------------------- completeMany
    describe('completeMany', () => {
      test('applies for the current token: completed, result stored, attemptsMade 1, finishedAt set, lease cleared', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store, { now: T0 + 10 });
        const out = await store.completeMany({ items: [{ id, token: c.token, result: '{"ok":true,"n":[1,2]}', remove: false }], now: T0 + 20 });
        assert.deepEqual(plain(out), [{ status: 'applied' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'completed');
        assert.equal(job.result, '{"ok":true,"n":[1,2]}');
        assert.equal(job.attemptsMade, 1);
        assert.equal(job.finishedAt, T0 + 20);
        assert.equal(job.startedAt, T0 + 10);
        assert.equal(job.lease, null);
        assert.deepEqual(plain(job.errors), []);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, completed: 1 });
      });

      test('a null result is stored as null', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        await complete(store, id, c.token, T0 + 1, null);
        assert.equal((await mustGet(store, id)).result, null);
      });

      test('a wrong token is stale and the job stays with its holder', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        const before = await mustGet(store, id);
        const out = await store.completeMany({ items: [{ id, token: `${c.token}-wrong`, result: '1', remove: false }], now: T0 + 1 });
        assert.deepEqual(plain(out), [{ status: 'stale' }]);
        assert.deepEqual(plain(await mustGet(store, id)), plain(before));
      });

      test('completing an already completed job is stale and changes nothing', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        await complete(store, id, c.token, T0 + 5, '"first"');
        const out = await store.completeMany({ items: [{ id, token: c.token, result: '"second"', remove: false }], now: T0 + 9 });
        assert.deepEqual(plain(out), [{ status: 'stale' }]);
        const job = await mustGet(store, id);
        assert.equal(job.result, '"first"');
        assert.equal(job.finishedAt, T0 + 5);
        assert.equal(job.attemptsMade, 1);
      });

      test('an unknown job is stale', async (store) => {
        const out = await store.completeMany({ items: [{ id: '424242', token: 'nope', result: null, remove: false }], now: T0 });
        assert.deepEqual(plain(out), [{ status: 'stale' }]);
      });

      test('after recovery and a re-claim by another worker, the old token is stale and the job stays with the new holder', async (store) => {
        const id = await addOne(store);
        const old = await claimOne(store, { workerId: 'w1', leaseMs: 1000, now: T0 });
        const recovered = await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 2000 });
        assert.deepEqual(plain(recovered), [{ id, queue: Q, state: 'waiting' }]);
        const res = await claim(store, { workerId: 'w2', leaseMs: 10_000, now: T0 + 2000 });
        assert.deepEqual(ids(res.jobs), [id]);
        const fresh = nth(res.jobs, 0).lease;
        assert.notEqual(fresh.token, old.token, 'a re-claim issues a new token');

        const out = await store.completeMany({ items: [{ id, token: old.token, result: '"old"', remove: false }], now: T0 + 2100 });
        assert.deepEqual(plain(out), [{ status: 'stale' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'active');
        assert.deepEqual(plain(job.lease), { owner: 'w2', token: fresh.token, expiresAt: T0 + 12_000 });
        assert.equal(job.result, null);

        await complete(store, id, fresh.token, T0 + 2200, '"new"');
        assert.equal((await mustGet(store, id)).result, '"new"');
      });

      test('fencing is by token: an ack after the lease expired but before recovery still applies', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const res = await claim(store, { limit: 2, leaseMs: 100 });
        const [ja, jb] = res.jobs;
        assert.ok(ja && jb);
        assert.deepEqual(plain(await store.completeMany({ items: [{ id: a as string, token: ja.lease.token, result: null, remove: false }], now: T0 + 500 })), [
          { status: 'applied' },
        ]);
        assert.deepEqual(
          plain(await store.failMany({ items: [{ id: b as string, token: jb.lease.token, error: err(1, T0 + 500), retryAt: null, remove: false }], now: T0 + 500 })),
          [{ status: 'applied', state: 'failed' }],
        );
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 600 })), []);
        assert.equal((await mustGet(store, a as string)).state, 'completed');
        assert.equal((await mustGet(store, b as string)).state, 'failed');
      });

      test('remove: true deletes the job', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        const out = await store.completeMany({ items: [{ id, token: c.token, result: '"r"', remove: true }], now: T0 + 1 });
        assert.deepEqual(plain(out), [{ status: 'applied' }]);
        assert.equal(await store.getJob({ queue: Q, id }), null);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), ZERO_COUNTS);
      });

      test('a mixed batch answers per item in input order', async (store) => {
        const [a, b, c] = await add(store, [{}, {}, {}]);
        const res = await claim(store, { limit: 3 });
        const [ja, jb, jc] = res.jobs;
        assert.ok(ja && jb && jc);
        const out = await store.completeMany({
          items: [
            { id: a as string, token: ja.lease.token, result: '"a"', remove: false },
            { id: b as string, token: 'not-the-token', result: '"b"', remove: false },
            { id: c as string, token: jc.lease.token, result: '"c"', remove: false },
          ],
          now: T0 + 3,
        });
        assert.deepEqual(plain(out), [{ status: 'applied' }, { status: 'stale' }, { status: 'applied' }]);
        assert.equal((await mustGet(store, a as string)).state, 'completed');
        assert.equal((await mustGet(store, b as string)).state, 'active');
        assert.equal((await mustGet(store, c as string)).result, '"c"');
      });
    });

    // ------------------------------------------------------------------- failMany
    describe('failMany', () => {
      test('retryAt null moves the job to failed with finishedAt and the error preserved', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store, { now: T0 + 1 });
        const e = err(1, T0 + 50);
        const out = await store.failMany({ items: [{ id, token: c.token, error: e, retryAt: null, remove: false }], now: T0 + 50 });
        assert.deepEqual(plain(out), [{ status: 'applied', state: 'failed' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'failed');
        assert.equal(job.finishedAt, T0 + 50);
        assert.equal(job.attemptsMade, 1);
        assert.equal(job.lease, null);
        assert.deepEqual(plain(job.errors), plain([e]));
      });

      test('an error reason is preserved', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        const e = err(1, T0 + 2, { reason: 'unrecoverable', name: 'UnrecoverableError' });
        await store.failMany({ items: [{ id, token: c.token, error: e, retryAt: null, remove: false }], now: T0 + 2 });
        assert.deepEqual(plain((await mustGet(store, id)).errors), plain([e]));
      });

      test('retryAt in the future makes the job delayed until then; errors accumulate across attempts', async (store) => {
        const id = await addOne(store);
        const c1 = await claimOne(store, { now: T0 });
        const e1 = err(1, T0 + 10);
        const out1 = await store.failMany({ items: [{ id, token: c1.token, error: e1, retryAt: T0 + 5000, remove: false }], now: T0 + 10 });
        assert.deepEqual(plain(out1), [{ status: 'applied', state: 'delayed' }]);
        let job = await mustGet(store, id);
        assert.equal(job.state, 'delayed');
        assert.equal(job.runAt, T0 + 5000);
        assert.equal(job.lease, null);
        assert.equal(job.attemptsMade, 1);
        assert.deepEqual(plain(job.errors), plain([e1]));

        const early = await claim(store, { now: T0 + 4999 });
        assert.deepEqual(ids(early.jobs), []);
        assert.equal(early.nextRunAt, T0 + 5000);
        const c2 = await claimOne(store, { now: T0 + 5000 });
        assert.equal(c2.id, id);
        assert.notEqual(c2.token, c1.token);

        const e2 = err(2, T0 + 5100);
        const out2 = await store.failMany({ items: [{ id, token: c2.token, error: e2, retryAt: null, remove: false }], now: T0 + 5100 });
        assert.deepEqual(plain(out2), [{ status: 'applied', state: 'failed' }]);
        job = await mustGet(store, id);
        assert.equal(job.state, 'failed');
        assert.equal(job.attemptsMade, 2);
        assert.equal(job.finishedAt, T0 + 5100);
        assert.deepEqual(plain(job.errors), plain([e1, e2]));
      });

      test('retryAt <= now makes the job waiting and claimable at once', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const res = await claim(store, { limit: 2 });
        const [ja, jb] = res.jobs;
        assert.ok(ja && jb);
        const out = await store.failMany({
          items: [
            { id: a as string, token: ja.lease.token, error: err(1, T0 + 100), retryAt: T0 + 100, remove: false },
            { id: b as string, token: jb.lease.token, error: err(1, T0 + 100), retryAt: T0 + 40, remove: false },
          ],
          now: T0 + 100,
        });
        assert.deepEqual(plain(out), [
          { status: 'applied', state: 'waiting' },
          { status: 'applied', state: 'waiting' },
        ]);
        for (const id of [a, b] as string[]) {
          const job = await mustGet(store, id);
          assert.equal(job.state, 'waiting');
          assert.equal(job.lease, null);
          assert.equal(job.attemptsMade, 1);
          assert.equal(job.errors.length, 1);
        }
        const again = await claim(store, { limit: 5, now: T0 + 100 });
        assert.deepEqual([...ids(again.jobs)].sort(), [a, b].sort());
      });

      test('a stale token is rejected and changes nothing', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        const before = await mustGet(store, id);
        const out = await store.failMany({ items: [{ id, token: `${c.token}x`, error: err(1, T0 + 1), retryAt: null, remove: false }], now: T0 + 1 });
        assert.deepEqual(plain(out), [{ status: 'stale' }]);
        assert.deepEqual(plain(await mustGet(store, id)), plain(before));
        // Failing a finished job is stale too.
        await complete(store, id, c.token, T0 + 2);
        const out2 = await store.failMany({ items: [{ id, token: c.token, error: err(1, T0 + 3), retryAt: null, remove: false }], now: T0 + 3 });
        assert.deepEqual(plain(out2), [{ status: 'stale' }]);
        assert.equal((await mustGet(store, id)).state, 'completed');
      });

      test('remove with retryAt null deletes the job; with a retry it is kept', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const res = await claim(store, { limit: 2 });
        const [ja, jb] = res.jobs;
        assert.ok(ja && jb);
        const out = await store.failMany({
          items: [
            { id: a as string, token: ja.lease.token, error: err(1, T0 + 1), retryAt: null, remove: true },
            { id: b as string, token: jb.lease.token, error: err(1, T0 + 1), retryAt: T0 + 1000, remove: true },
          ],
          now: T0 + 1,
        });
        assert.deepEqual(plain(out), [
          { status: 'applied', state: 'failed' },
          { status: 'applied', state: 'delayed' },
        ]);
        assert.equal(await store.getJob({ queue: Q, id: a as string }), null);
        assert.equal((await mustGet(store, b as string)).state, 'delayed');
      });

      test('a mixed batch answers per item in input order', async (store) => {
        const [a, b, c] = await add(store, [{}, {}, {}]);
        const res = await claim(store, { limit: 3 });
        const [ja, , jc] = res.jobs;
        assert.ok(ja && jc);
        const out = await store.failMany({
          items: [
            { id: a as string, token: ja.lease.token, error: err(1, T0 + 1), retryAt: null, remove: false },
            { id: b as string, token: 'wrong', error: err(1, T0 + 1), retryAt: null, remove: false },
            { id: c as string, token: jc.lease.token, error: err(1, T0 + 1), retryAt: T0 + 60_000, remove: false },
          ],
          now: T0 + 1,
        });
        assert.deepEqual(plain(out), [{ status: 'applied', state: 'failed' }, { status: 'stale' }, { status: 'applied', state: 'delayed' }]);
        assert.equal((await mustGet(store, b as string)).state, 'active');
      });
    });

    // ---------------------------------------------------------------- extendLeases
    describe('extendLeases', () => {
      test('applied pushes expiresAt to now + leaseMs and keeps the job from being recovered', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store, { workerId: 'w1', leaseMs: 1000, now: T0 });
        const out = await store.extendLeases({ items: [{ id, token: c.token }], leaseMs: 4000, now: T0 + 900 });
        assert.deepEqual(plain(out), [{ status: 'applied', expiresAt: T0 + 4900 }]);
        assert.deepEqual(plain((await mustGet(store, id)).lease), { owner: 'w1', token: c.token, expiresAt: T0 + 4900 });
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 2000 })), []);
        assert.equal((await mustGet(store, id)).state, 'active');
        await complete(store, id, c.token, T0 + 3000);
      });

      test('a wrong token or a finished job is stale; answers keep input order', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const res = await claim(store, { limit: 2, leaseMs: 1000 });
        const [ja, jb] = res.jobs;
        assert.ok(ja && jb);
        await complete(store, b as string, jb.lease.token, T0 + 10);
        const out = await store.extendLeases({
          items: [
            { id: a as string, token: 'wrong' },
            { id: b as string, token: jb.lease.token },
            { id: a as string, token: ja.lease.token },
          ],
          leaseMs: 2000,
          now: T0 + 20,
        });
        assert.deepEqual(plain(out), [{ status: 'stale' }, { status: 'stale' }, { status: 'applied', expiresAt: T0 + 2020 }]);
        assert.equal((await mustGet(store, b as string)).lease, null);
        assert.equal((await mustGet(store, b as string)).state, 'completed');
      });
    });

    // ----------------------------------------------------------------- releaseMany
    describe('releaseMany', () => {
      test('a released job is waiting at once with attempts and stalls unchanged, and claimable again', async (store) => {
        const id = await addOne(store);
        // One stall first, so there is a non-zero stall count to keep.
        await claimOne(store, { leaseMs: 100 });
        await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 200 });
        const c = await claimOne(store, { workerId: 'w1', now: T0 + 300 });
        const out = await store.releaseMany({ items: [{ id, token: c.token }], now: T0 + 310 });
        assert.deepEqual(plain(out), [{ status: 'applied' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'waiting');
        assert.equal(job.lease, null);
        assert.equal(job.attemptsMade, 0);
        assert.equal(job.stalls, 1);
        assert.deepEqual(plain(job.errors), []);
        const again = await claimOne(store, { workerId: 'w2', now: T0 + 310 });
        assert.equal(again.id, id);
        assert.notEqual(again.token, c.token);
        // The releaser's token is dead.
        assert.deepEqual(plain(await store.completeMany({ items: [{ id, token: c.token, result: null, remove: false }], now: T0 + 320 })), [
          { status: 'stale' },
        ]);
        assert.equal((await mustGet(store, id)).lease?.owner, 'w2');
      });

      test('stale refs are answered stale and change nothing; answers keep input order', async (store) => {
        const [a, b, c] = await add(store, [{}, {}, {}]);
        const res = await claim(store, { limit: 3 });
        const [ja, jb, jc] = res.jobs;
        assert.ok(ja && jb && jc);
        await complete(store, c as string, jc.lease.token, T0 + 1);
        const out = await store.releaseMany({
          items: [
            { id: a as string, token: 'wrong' },
            { id: b as string, token: jb.lease.token },
            { id: c as string, token: jc.lease.token },
            { id: 'missing', token: 'x' },
          ],
          now: T0 + 2,
        });
        assert.deepEqual(plain(out), [{ status: 'stale' }, { status: 'applied' }, { status: 'stale' }, { status: 'stale' }]);
        assert.equal((await mustGet(store, a as string)).state, 'active');
        assert.equal((await mustGet(store, a as string)).lease?.token, ja.lease.token);
        assert.equal((await mustGet(store, b as string)).state, 'waiting');
        assert.equal((await mustGet(store, c as string)).state, 'completed');
      });
    });

    // -------------------------------------------------------------- recoverStalled
    describe('recoverStalled', () => {
      test('only expired leases recover: back to waiting, lease cleared, stalls + 1, attemptsMade unchanged', async (store) => {
        const [a, b] = await add(store, [{ opts: { attempts: 3 } }, { opts: { attempts: 3, leaseMs: 5000 } }]);
        const res = await claim(store, { limit: 2, leaseMs: 1000, now: T0 });
        assert.deepEqual(ids(res.jobs), [a, b]);
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 3, limit: 10, now: T0 + 999 })), []);
        const rec = await store.recoverStalled({ maxStalls: 3, limit: 10, now: T0 + 1001 });
        assert.deepEqual(plain(rec), [{ id: a, queue: Q, state: 'waiting' }]);
        const ja = await mustGet(store, a as string);
        assert.equal(ja.state, 'waiting');
        assert.equal(ja.lease, null);
        assert.equal(ja.stalls, 1);
        assert.equal(ja.attemptsMade, 0);
        assert.deepEqual(plain(ja.errors), []);
        const jb = await mustGet(store, b as string);
        assert.equal(jb.state, 'active');
        assert.equal(jb.stalls, 0);
        // The recovered job is claimable again.
        const again = await claim(store, { workerId: 'w9', now: T0 + 1001 });
        assert.deepEqual(ids(again.jobs), [a]);
      });

      test('a job that stalls more than maxStalls times goes to failed with reason stalled', async (store) => {
        const id = await addOne(store);
        await claimOne(store, { leaseMs: 100, now: T0 });
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 1, limit: 10, now: T0 + 200 })), [{ id, queue: Q, state: 'waiting' }]);
        assert.equal((await mustGet(store, id)).stalls, 1);
        await claimOne(store, { leaseMs: 100, now: T0 + 300 });
        const rec = await store.recoverStalled({ maxStalls: 1, limit: 10, now: T0 + 500 });
        assert.deepEqual(plain(rec), [{ id, queue: Q, state: 'failed' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'failed');
        assert.equal(job.lease, null);
        assert.equal(job.finishedAt, T0 + 500);
        assert.equal(job.attemptsMade, 0, 'a stalled attempt does not count');
        assert.equal(job.errors.length, 1);
        const e = nth(job.errors, 0);
        assert.equal(e.reason, 'stalled');
        assert.equal(typeof e.message, 'string');
        assert.ok(e.message.length > 0);
        // Not claimable any more.
        assert.deepEqual(ids((await claim(store, { now: T0 + 600 })).jobs), []);
      });

      test('maxStalls 0 fails on the first stall', async (store) => {
        const id = await addOne(store);
        await claimOne(store, { leaseMs: 100 });
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 0, limit: 10, now: T0 + 200 })), [{ id, queue: Q, state: 'failed' }]);
        assert.equal((await mustGet(store, id)).state, 'failed');
      });

      test('limit is respected', async (store) => {
        const all = await add(store, [{}, {}, {}]);
        await claim(store, { leaseMs: 100 });
        const r1 = await store.recoverStalled({ maxStalls: 5, limit: 2, now: T0 + 200 });
        assert.equal(r1.length, 2);
        const r2 = await store.recoverStalled({ maxStalls: 5, limit: 2, now: T0 + 200 });
        assert.equal(r2.length, 1);
        assert.deepEqual([...ids(r1), ...ids(r2)].sort(), [...all].sort());
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 5, limit: 2, now: T0 + 200 })), []);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 3 });
      });

      test('the queue filter is respected; omitted means all queues', async (store) => {
        const [a] = await add(store, [{ queue: 'qa' }]);
        const [b] = await add(store, [{ queue: 'qb' }]);
        const [c] = await add(store, [{ queue: 'qc' }]);
        await claim(store, { queues: ['qa', 'qb', 'qc'], leaseMs: 100 });
        const r1 = await store.recoverStalled({ queues: ['qa'], maxStalls: 5, limit: 10, now: T0 + 200 });
        assert.deepEqual(plain(r1), [{ id: a, queue: 'qa', state: 'waiting' }]);
        assert.equal((await mustGet(store, b as string, 'qb')).state, 'active');
        const r2 = await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 200 });
        assert.deepEqual(
          plain(r2).map((r) => `${r.queue}/${r.id}/${r.state}`).sort(),
          [`qb/${b}/waiting`, `qc/${c}/waiting`],
        );
      });

      test("the old holder's acks are stale after recovery", async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store, { leaseMs: 100 });
        await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 200 });
        assert.deepEqual(plain(await store.completeMany({ items: [{ id, token: c.token, result: null, remove: false }], now: T0 + 201 })), [
          { status: 'stale' },
        ]);
        assert.deepEqual(
          plain(await store.failMany({ items: [{ id, token: c.token, error: err(1, T0 + 201), retryAt: null, remove: false }], now: T0 + 201 })),
          [{ status: 'stale' }],
        );
        assert.deepEqual(plain(await store.extendLeases({ items: [{ id, token: c.token }], leaseMs: 1000, now: T0 + 201 })), [{ status: 'stale' }]);
        const job = await mustGet(store, id);
        assert.equal(job.state, 'waiting');
        assert.equal(job.attemptsMade, 0);
        assert.deepEqual(plain(job.errors), []);
      });
    });

    // ----------------------------------------------------------- progress and logs
    describe('updateProgress and addLogs', () => {
      test('updateProgress: current token applies, stale token is rejected, no token applies, unknown is not_found', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id, token: c.token, progress: '{"pct":50}' })), { status: 'applied' });
        assert.equal((await mustGet(store, id)).progress, '{"pct":50}');
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id, token: 'wrong', progress: '{"pct":99}' })), { status: 'stale' });
        assert.equal((await mustGet(store, id)).progress, '{"pct":50}');
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id, progress: '75' })), { status: 'applied' });
        assert.equal((await mustGet(store, id)).progress, '75');
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id: '987654321', progress: '1' })), { status: 'not_found' });
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id: 'nope', token: 'x', progress: '1' })), { status: 'not_found' });
        assert.deepEqual(plain(await store.updateProgress({ queue: 'elsewhere', id, progress: '1' })), { status: 'not_found' });
        // A token for a finished attempt is stale.
        await complete(store, id, c.token, T0 + 5);
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id, token: c.token, progress: '100' })), { status: 'stale' });
        assert.equal((await mustGet(store, id)).progress, '75');
      });

      test('updateProgress without a token applies to a waiting job', async (store) => {
        const id = await addOne(store);
        assert.deepEqual(plain(await store.updateProgress({ queue: Q, id, progress: '"queued"' })), { status: 'applied' });
        assert.equal((await mustGet(store, id)).progress, '"queued"');
      });

      test('addLogs: current token applies, stale token adds nothing, no token applies, unknown is not_found', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        assert.deepEqual(plain(await store.addLogs({ queue: Q, id, token: c.token, entries: [{ at: T0 + 1, message: 'one' }] })), {
          status: 'applied',
        });
        assert.deepEqual(plain(await store.addLogs({ queue: Q, id, token: 'wrong', entries: [{ at: T0 + 2, message: 'bad' }] })), {
          status: 'stale',
        });
        assert.deepEqual(plain(await store.addLogs({ queue: Q, id, entries: [{ at: T0 + 3, message: 'two' }] })), { status: 'applied' });
        assert.deepEqual(plain(await store.addLogs({ queue: Q, id: '55555555', entries: [{ at: T0, message: 'x' }] })), { status: 'not_found' });
        assert.deepEqual(plain(await store.addLogs({ queue: Q, id: 'ghost', token: 't', entries: [{ at: T0, message: 'x' }] })), {
          status: 'not_found',
        });
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id, offset: 0, limit: 10 })), {
          entries: [
            { at: T0 + 1, message: 'one' },
            { at: T0 + 3, message: 'two' },
          ],
          total: 2,
        });
      });

      test('getLogs pages with offset and limit, oldest first, with the total', async (store) => {
        const id = await addOne(store);
        const e = (i: number) => ({ at: T0 + i, message: `line ${i}` });
        assert.equal((await store.addLogs({ queue: Q, id, entries: [e(1), e(2), e(3)] })).status, 'applied');
        assert.equal((await store.addLogs({ queue: Q, id, entries: [e(4), e(5)] })).status, 'applied');
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id, offset: 0, limit: 10 })), { entries: [e(1), e(2), e(3), e(4), e(5)], total: 5 });
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id, offset: 1, limit: 2 })), { entries: [e(2), e(3)], total: 5 });
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id, offset: 4, limit: 10 })), { entries: [e(5)], total: 5 });
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id, offset: 10, limit: 10 })), { entries: [], total: 5 });
        // Logs belong to the job in its queue.
        const other = await addOne(store);
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id: other, offset: 0, limit: 10 })), { entries: [], total: 0 });
      });
    });

    // -------------------------------------------------------------- listJobs, counts
    describe('listJobs, countJobs and listQueues', () => {
      test('cursor paging returns every job exactly once, newest first by default', async (store) => {
        const all: string[] = [];
        for (let i = 0; i < 5; i++) all.push(...(await add(store, [{}, {}, {}, {}, {}])));
        await add(store, [{ queue: 'other' }, { queue: 'other' }]);
        assert.equal(all.length, 25);
        const sizes: number[] = [];
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page++) {
          const res = await store.listJobs({ queue: Q, states: ALL_STATES, limit: 10, ...(cursor === undefined ? {} : { cursor }) });
          sizes.push(res.jobs.length);
          seen.push(...ids(res.jobs));
          for (const j of res.jobs) assert.equal(j.queue, Q);
          if (res.nextCursor === null) break;
          assert.equal(typeof res.nextCursor, 'string');
          cursor = res.nextCursor;
        }
        assert.deepEqual(sizes, [10, 10, 5]);
        assert.deepEqual(seen, [...all].reverse());
      });

      test('order asc pages oldest first', async (store) => {
        const all = await add(store, Array.from({ length: 25 }, (_, i) => ({ data: String(i) })));
        const sizes: number[] = [];
        const seen: string[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page++) {
          const res = await store.listJobs({ queue: Q, states: ALL_STATES, limit: 10, order: 'asc', ...(cursor === undefined ? {} : { cursor }) });
          sizes.push(res.jobs.length);
          seen.push(...ids(res.jobs));
          if (res.nextCursor === null) break;
          cursor = res.nextCursor;
        }
        assert.deepEqual(sizes, [10, 10, 5]);
        assert.deepEqual(seen, all);
        const desc = await store.listJobs({ queue: Q, states: ALL_STATES, limit: 3, order: 'desc' });
        assert.deepEqual(ids(desc.jobs), all.slice(-3).reverse());
      });

      test('listJobs returns full records', async (store) => {
        const id = await addOne(store, { name: 'full', data: '{"x":1}', priority: 4 });
        const page = await store.listJobs({ queue: Q, states: ['waiting'], limit: 10 });
        assert.equal(page.jobs.length, 1);
        assert.deepEqual(plain(nth(page.jobs, 0)), plain(await mustGet(store, id)));
        assert.equal(page.nextCursor, null);
      });

      test('the states filter and the name filter select exactly', async (store) => {
        const [w1, w2, d1, a1, c1] = await add(store, [
          { name: 'a' },
          { name: 'b' },
          { name: 'a', runAt: T0 + 10_000 },
          { name: 'b', priority: 10 },
          { name: 'a', priority: 9 },
        ]);
        const res = await claim(store, { limit: 2 });
        assert.deepEqual(ids(res.jobs), [a1, c1]);
        const jc = nth(res.jobs, 1);
        await complete(store, c1 as string, jc.lease.token, T0 + 1);

        const list = async (states: readonly JobState[], name?: string): Promise<string[]> =>
          ids((await store.listJobs({ queue: Q, states, limit: 100, order: 'asc', ...(name === undefined ? {} : { name }) })).jobs);
        assert.deepEqual(await list(['waiting']), [w1, w2]);
        assert.deepEqual(await list(['delayed']), [d1]);
        assert.deepEqual(await list(['active']), [a1]);
        assert.deepEqual(await list(['active', 'completed']), [a1, c1]);
        assert.deepEqual(await list(['failed', 'cancelled']), []);
        assert.deepEqual(await list(ALL_STATES), [w1, w2, d1, a1, c1]);
        assert.deepEqual(await list(ALL_STATES, 'a'), [w1, d1, c1]);
        assert.deepEqual(await list(['waiting'], 'b'), [w2]);
        assert.deepEqual(await list(ALL_STATES, 'zzz'), []);
      });

      test('a filter combined with paging still returns each match once', async (store) => {
        const waiting: string[] = [];
        for (let i = 0; i < 7; i++) {
          const [w] = await add(store, [{}, { runAt: T0 + 1000 }]);
          waiting.push(w as string);
        }
        const seen: string[] = [];
        const sizes: number[] = [];
        let cursor: string | undefined;
        for (let page = 0; page < 10; page++) {
          const res = await store.listJobs({ queue: Q, states: ['waiting'], limit: 3, ...(cursor === undefined ? {} : { cursor }) });
          sizes.push(res.jobs.length);
          seen.push(...ids(res.jobs));
          if (res.nextCursor === null) break;
          cursor = res.nextCursor;
        }
        assert.deepEqual(sizes, [3, 3, 1]);
        assert.deepEqual(seen, [...waiting].reverse());
      });

      test('a cursor stays valid when jobs are added and the anchor job is removed between pages', async (store) => {
        const all = await add(store, Array.from({ length: 25 }, () => ({})));
        const first = await store.listJobs({ queue: Q, states: ALL_STATES, limit: 10 });
        assert.deepEqual(ids(first.jobs), all.slice(15).reverse());
        assert.ok(first.nextCursor !== null);
        // Newer jobs arrive, and the last job of the page (the cursor's anchor) goes away.
        await add(store, [{}, {}, {}], T0 + 1);
        assert.deepEqual(plain(await store.removeJob({ queue: Q, id: nth(all, 15) })), { status: 'applied' });
        const seen: string[] = [];
        let cursor: string | null = first.nextCursor;
        for (let page = 0; page < 10 && cursor !== null; page++) {
          const res = await store.listJobs({ queue: Q, states: ALL_STATES, limit: 10, cursor });
          seen.push(...ids(res.jobs));
          cursor = res.nextCursor;
        }
        assert.deepEqual(seen, all.slice(0, 15).reverse());
      });

      test('countJobs reports all six states, zeros included', async (store) => {
        const js = await add(store, [{}, {}, {}, {}, {}, {}, { runAt: T0 + 9999 }]);
        const res = await claim(store, { limit: 5 });
        assert.deepEqual(ids(res.jobs), js.slice(0, 5));
        const tok = (i: number): string => nth(res.jobs, i).lease.token;
        await complete(store, nth(js, 0), tok(0), T0 + 1);
        await complete(store, nth(js, 1), tok(1), T0 + 1);
        await complete(store, nth(js, 2), tok(2), T0 + 1);
        await failFinal(store, nth(js, 3), tok(3), T0 + 1);
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: nth(js, 5), now: T0 + 1 })), { status: 'applied' });
        await add(store, [{}, {}], T0 + 2);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { waiting: 2, delayed: 1, active: 1, completed: 3, failed: 1, cancelled: 1 });
        assert.deepEqual(plain(await store.countJobs({ queue: 'unknown-queue' })), ZERO_COUNTS);
      });

      test('listQueues shows queues with jobs or a pause flag, their counts and paused state', async (store) => {
        await add(store, [{ queue: 'alpha' }, { queue: 'alpha', runAt: T0 + 100 }, { queue: 'beta' }]);
        await store.setPaused({ queue: 'beta', paused: true });
        await store.setPaused({ queue: 'gamma', paused: true });
        const queues = await store.listQueues();
        const names = queues.map((q) => q.name);
        assert.equal(new Set(names).size, names.length, 'no queue listed twice');
        assert.deepEqual([...names].sort(), ['alpha', 'beta', 'gamma']);
        const byName = new Map(queues.map((q) => [q.name, plain(q)]));
        assert.deepEqual(byName.get('alpha'), { name: 'alpha', paused: false, counts: { ...ZERO_COUNTS, waiting: 1, delayed: 1 } });
        assert.deepEqual(byName.get('beta'), { name: 'beta', paused: true, counts: { ...ZERO_COUNTS, waiting: 1 } });
        assert.deepEqual(byName.get('gamma'), { name: 'gamma', paused: true, counts: ZERO_COUNTS });
      });

      test('listQueues is empty for an empty store', async (store) => {
        assert.deepEqual(plain(await store.listQueues()), []);
      });
    });

    // ---------------------------------------------------------------------- admin
    describe('administration', () => {
      test('retryJob: a failed job goes back to waiting with attempts reset and errors kept', async (store) => {
        const id = await addOne(store);
        const c = await claimOne(store);
        await failFinal(store, id, c.token, T0 + 10);
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id, now: T0 + 100 })), { status: 'applied' });
        const job = await mustGet(store, id);
        assert.equal(job.state, 'waiting');
        assert.equal(job.attemptsMade, 0);
        assert.equal(job.lease, null);
        assert.deepEqual(plain(job.errors), plain([err(1, T0 + 10)]));
        const again = await claim(store, { now: T0 + 100 });
        assert.deepEqual(ids(again.jobs), [id]);
      });

      test('retryJob: completed and cancelled jobs can be retried too', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const c = await claimOne(store);
        await complete(store, a as string, c.token, T0 + 1, '"done"');
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: b as string, now: T0 + 1 })), { status: 'applied' });
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: a as string, now: T0 + 2 })), { status: 'applied' });
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: b as string, now: T0 + 2 })), { status: 'applied' });
        assert.equal((await mustGet(store, a as string)).attemptsMade, 0);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 2 });
      });

      test('retryJob: a live job is invalid_state, an unknown one not_found', async (store) => {
        const [w, d, a] = await add(store, [{ priority: 0 }, { runAt: T0 + 1000 }, { priority: 5 }]);
        await claimOne(store);
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: w as string, now: T0 })), { status: 'invalid_state', state: 'waiting' });
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: d as string, now: T0 })), { status: 'invalid_state', state: 'delayed' });
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: a as string, now: T0 })), { status: 'invalid_state', state: 'active' });
        assert.deepEqual(plain(await store.retryJob({ queue: Q, id: 'missing', now: T0 })), { status: 'not_found' });
        assert.deepEqual(plain(await store.retryJob({ queue: 'elsewhere', id: w as string, now: T0 })), { status: 'not_found' });
        assert.equal((await mustGet(store, a as string)).state, 'active');
      });

      test('retryMany moves up to limit jobs of one state and returns the count', async (store) => {
        const js = await add(store, [{}, {}, {}, {}, {}]);
        const res = await claim(store, { limit: 5 });
        for (let i = 0; i < 3; i++) await failFinal(store, nth(js, i), nth(res.jobs, i).lease.token, T0 + 1);
        for (let i = 3; i < 5; i++) await complete(store, nth(js, i), nth(res.jobs, i).lease.token, T0 + 1);
        assert.equal(await store.retryMany({ queue: Q, limit: 2, now: T0 + 2 }), 2);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 2, failed: 1, completed: 2 });
        assert.equal(await store.retryMany({ queue: Q, state: 'failed', limit: 2, now: T0 + 3 }), 1);
        assert.equal(await store.retryMany({ queue: Q, limit: 2, now: T0 + 4 }), 0);
        assert.equal(await store.retryMany({ queue: Q, state: 'completed', limit: 10, now: T0 + 5 }), 2);
        assert.equal(await store.retryMany({ queue: Q, state: 'cancelled', limit: 10, now: T0 + 5 }), 0);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, waiting: 5 });
        for (const id of js) assert.equal((await mustGet(store, id)).attemptsMade, 0);
      });

      test('cancelJob: waiting, delayed and active jobs are cancelled; the holder then gets stale', async (store) => {
        const [a, w, d] = await add(store, [{ priority: 5 }, {}, { runAt: T0 + 1000 }]);
        const c = await claimOne(store);
        assert.equal(c.id, a);
        for (const id of [w, d, a] as string[]) {
          assert.deepEqual(plain(await store.cancelJob({ queue: Q, id, now: T0 + 50 })), { status: 'applied' });
          const job = await mustGet(store, id);
          assert.equal(job.state, 'cancelled');
          assert.equal(job.lease, null);
          assert.equal(job.finishedAt, T0 + 50);
        }
        assert.deepEqual(plain(await store.completeMany({ items: [{ id: a as string, token: c.token, result: null, remove: false }], now: T0 + 60 })), [
          { status: 'stale' },
        ]);
        assert.deepEqual(
          plain(await store.failMany({ items: [{ id: a as string, token: c.token, error: err(1, T0 + 60), retryAt: T0 + 61, remove: false }], now: T0 + 60 })),
          [{ status: 'stale' }],
        );
        assert.deepEqual(plain(await store.extendLeases({ items: [{ id: a as string, token: c.token }], leaseMs: 100, now: T0 + 60 })), [{ status: 'stale' }]);
        assert.equal((await mustGet(store, a as string)).state, 'cancelled');
        assert.deepEqual(ids((await claim(store, { now: T0 + 5000 })).jobs), []);
        assert.deepEqual(plain(await store.recoverStalled({ maxStalls: 5, limit: 10, now: T0 + 100_000 })), []);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, cancelled: 3 });
      });

      test('cancelJob: a finished job is invalid_state, an unknown one not_found', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const c = await claimOne(store);
        await complete(store, a as string, c.token, T0 + 1);
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: a as string, now: T0 + 2 })), { status: 'invalid_state', state: 'completed' });
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: b as string, now: T0 + 2 })), { status: 'applied' });
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: b as string, now: T0 + 3 })), { status: 'invalid_state', state: 'cancelled' });
        assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: 'missing', now: T0 })), { status: 'not_found' });
        assert.equal((await mustGet(store, a as string)).state, 'completed');
      });

      test('promoteJob: a delayed job becomes waiting and claimable now', async (store) => {
        const [d, w] = await add(store, [{ runAt: T0 + 100_000 }, { runAt: T0 }]);
        assert.deepEqual(plain(await store.promoteJob({ queue: Q, id: d as string, now: T0 + 5 })), { status: 'applied' });
        const job = await mustGet(store, d as string);
        assert.equal(job.state, 'waiting');
        assert.ok(job.runAt <= T0 + 5, `runAt ${job.runAt} should be due by the promote time`);
        const res = await claim(store, { limit: 10, now: T0 + 5 });
        assert.deepEqual([...ids(res.jobs)].sort(), [d, w].sort());
        assert.equal(res.nextRunAt, null);
      });

      test('promoteJob: a non-delayed job is invalid_state, an unknown one not_found', async (store) => {
        const [w, a] = await add(store, [{}, { priority: 1 }]);
        await claimOne(store);
        assert.deepEqual(plain(await store.promoteJob({ queue: Q, id: w as string, now: T0 })), { status: 'invalid_state', state: 'waiting' });
        assert.deepEqual(plain(await store.promoteJob({ queue: Q, id: a as string, now: T0 })), { status: 'invalid_state', state: 'active' });
        assert.deepEqual(plain(await store.promoteJob({ queue: Q, id: 'missing', now: T0 })), { status: 'not_found' });
      });

      test('removeJob: an active job is invalid_state; finished or waiting jobs are deleted', async (store) => {
        const [a, b, w] = await add(store, [{ priority: 2 }, { priority: 1 }, {}]);
        const res = await claim(store, { limit: 2 });
        assert.deepEqual(ids(res.jobs), [a, b]);
        await store.addLogs({ queue: Q, id: b as string, entries: [{ at: T0, message: 'log' }] });
        assert.deepEqual(plain(await store.removeJob({ queue: Q, id: a as string })), { status: 'invalid_state', state: 'active' });
        assert.equal((await mustGet(store, a as string)).state, 'active');
        await complete(store, b as string, nth(res.jobs, 1).lease.token, T0 + 1);
        assert.deepEqual(plain(await store.removeJob({ queue: Q, id: b as string })), { status: 'applied' });
        assert.equal(await store.getJob({ queue: Q, id: b as string }), null);
        assert.deepEqual(plain(await store.getLogs({ queue: Q, id: b as string, offset: 0, limit: 10 })), { entries: [], total: 0 });
        assert.deepEqual(plain(await store.removeJob({ queue: Q, id: w as string })), { status: 'applied' });
        assert.equal(await store.getJob({ queue: Q, id: w as string }), null);
        assert.deepEqual(plain(await store.removeJob({ queue: Q, id: w as string })), { status: 'not_found' });
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, active: 1 });
      });

      /** Five completed jobs, finished at T0+10, +20, …, +50 in insertion order; plus one failed job. */
      async function fiveCompleted(store: Store): Promise<{ done: string[]; failed: string }> {
        const js = await add(store, [{}, {}, {}, {}, {}, {}]);
        const res = await claim(store, { limit: 6 });
        assert.deepEqual(ids(res.jobs), js);
        for (let i = 0; i < 5; i++) await complete(store, nth(js, i), nth(res.jobs, i).lease.token, T0 + 10 * (i + 1));
        await failFinal(store, nth(js, 5), nth(res.jobs, 5).lease.token, T0 + 5);
        return { done: js.slice(0, 5), failed: nth(js, 5) };
      }

      async function remaining(store: Store, state: JobState): Promise<string[]> {
        return ids((await store.listJobs({ queue: Q, states: [state], limit: 100, order: 'asc' })).jobs);
      }

      test('clean by state removes only that state', async (store) => {
        const { failed } = await fiveCompleted(store);
        assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 100 }), 5);
        assert.deepEqual(await remaining(store, 'completed'), []);
        assert.deepEqual(await remaining(store, 'failed'), [failed]);
        assert.equal(await store.clean({ queue: Q, state: 'failed', limit: 100 }), 1);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), ZERO_COUNTS);
      });

      test('clean olderThan removes jobs finished at or before it', async (store) => {
        const { done } = await fiveCompleted(store);
        assert.equal(await store.clean({ queue: Q, state: 'completed', olderThan: T0 + 30, limit: 100 }), 3);
        assert.deepEqual(await remaining(store, 'completed'), done.slice(3));
        assert.equal(await store.clean({ queue: Q, state: 'completed', olderThan: T0 + 39, limit: 100 }), 0);
      });

      test('clean keep leaves the newest N', async (store) => {
        const { done } = await fiveCompleted(store);
        assert.equal(await store.clean({ queue: Q, state: 'completed', keep: 2, limit: 100 }), 3);
        assert.deepEqual(await remaining(store, 'completed'), done.slice(3));
        assert.equal(await store.clean({ queue: Q, state: 'completed', keep: 2, limit: 100 }), 0);
      });

      test('clean keep and olderThan combine: the newest N stay whatever their age', async (store) => {
        const { done } = await fiveCompleted(store);
        assert.equal(await store.clean({ queue: Q, state: 'completed', olderThan: T0 + 40, keep: 3, limit: 100 }), 2);
        assert.deepEqual(await remaining(store, 'completed'), done.slice(2));
      });

      test('clean removes at most limit per call', async (store) => {
        await fiveCompleted(store);
        assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 2 }), 2);
        assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 2 }), 2);
        assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 2 }), 1);
        assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 2 }), 0);
        assert.equal((await store.countJobs({ queue: Q })).failed, 1);
      });

      test('clean of waiting jobs uses creation time', async (store) => {
        const early = await add(store, [{}, {}], T0);
        const late = await add(store, [{}], T0 + 100);
        assert.equal(await store.clean({ queue: Q, state: 'waiting', olderThan: T0 + 50, limit: 100 }), 2);
        assert.deepEqual(await remaining(store, 'waiting'), late);
        for (const id of early) assert.equal(await store.getJob({ queue: Q, id }), null);
      });

      test('clean leaves other queues alone', async (store) => {
        await add(store, [{ queue: 'keep-me' }]);
        await add(store, [{}]);
        assert.equal(await store.clean({ queue: Q, state: 'waiting', limit: 100 }), 1);
        assert.equal((await store.countJobs({ queue: 'keep-me' })).waiting, 1);
      });

      test('drain removes waiting jobs, delayed only with includeDelayed, never active ones', async (store) => {
        const [a] = await add(store, [{ priority: 9 }]);
        const done = await add(store, [{ priority: 8 }]);
        const res = await claim(store, { limit: 2 });
        assert.deepEqual(ids(res.jobs), [a, ...done]);
        await complete(store, nth(done, 0), nth(res.jobs, 1).lease.token, T0 + 1);
        await add(store, [{}, {}, {}, { runAt: T0 + 100 }, { runAt: T0 + 200 }, { queue: 'other' }]);
        assert.equal(await store.drain({ queue: Q, includeDelayed: false, limit: 100 }), 3);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, delayed: 2, active: 1, completed: 1 });
        assert.equal(await store.drain({ queue: Q, includeDelayed: true, limit: 100 }), 2);
        assert.deepEqual(plain(await store.countJobs({ queue: Q })), { ...ZERO_COUNTS, active: 1, completed: 1 });
        assert.equal((await mustGet(store, a as string)).state, 'active');
        assert.equal((await store.countJobs({ queue: 'other' })).waiting, 1);
      });

      test('drain respects limit', async (store) => {
        await add(store, [{}, {}, {}, {}, {}]);
        assert.equal(await store.drain({ queue: Q, includeDelayed: false, limit: 2 }), 2);
        assert.equal(await store.drain({ queue: Q, includeDelayed: false, limit: 2 }), 2);
        assert.equal(await store.drain({ queue: Q, includeDelayed: false, limit: 2 }), 1);
        assert.equal(await store.drain({ queue: Q, includeDelayed: false, limit: 2 }), 0);
      });
    });

    // ------------------------------------------------------------------ subscribe
    describe('subscribe', () => {
      test("a listener gets 'enqueued' for its queue and 'finished' after completeMany", async (store) => {
        const signals: StoreSignal[] = [];
        const unsubscribe = store.subscribe((s) => signals.push(s));
        try {
          const id = await addOne(store, { runAt: T0 });
          const isEnqueued = (s: StoreSignal): boolean => s.type === 'enqueued' && s.queue === Q;
          assert.ok(await waitFor(() => signals.some(isEnqueued)), `no enqueued signal, got ${JSON.stringify(signals)}`);
          assert.deepEqual(plain(signals.find(isEnqueued)), { type: 'enqueued', queue: Q, runAt: T0 });

          const c = await claimOne(store);
          await complete(store, id, c.token, T0 + 1);
          const isFinished = (s: StoreSignal): boolean => s.type === 'finished' && s.id === id;
          assert.ok(await waitFor(() => signals.some(isFinished)), `no finished signal, got ${JSON.stringify(signals)}`);
          assert.deepEqual(plain(signals.find(isFinished)), { type: 'finished', queue: Q, id, state: 'completed' });
        } finally {
          unsubscribe();
        }
      });

      test("a job that fails for good signals 'finished' with state failed", async (store) => {
        const signals: StoreSignal[] = [];
        const unsubscribe = store.subscribe((s) => signals.push(s));
        try {
          const id = await addOne(store);
          const c = await claimOne(store);
          await failFinal(store, id, c.token, T0 + 1);
          const isFinished = (s: StoreSignal): boolean => s.type === 'finished' && s.id === id;
          assert.ok(await waitFor(() => signals.some(isFinished)), `no finished signal, got ${JSON.stringify(signals)}`);
          assert.deepEqual(plain(signals.find(isFinished)), { type: 'finished', queue: Q, id, state: 'failed' });
        } finally {
          unsubscribe();
        }
      });

      test('pause, resume, promote, retry and cancel send wake-up signals', async (store) => {
        const signals: StoreSignal[] = [];
        const unsubscribe = store.subscribe((s) => signals.push(s));
        try {
          const expect = async (want: StoreSignal): Promise<void> => {
            const key = JSON.stringify(want);
            assert.ok(await waitFor(() => signals.some((s) => JSON.stringify(plain(s)) === key)), `expected ${key}, got ${JSON.stringify(signals)}`);
          };
          await store.setPaused({ queue: Q, paused: true });
          await expect({ type: 'paused', queue: Q });
          await store.setPaused({ queue: Q, paused: false });
          await expect({ type: 'resumed', queue: Q });

          const [d, f, w] = await add(store, [{ runAt: T0 + 60_000 }, { priority: 5 }, {}]);
          signals.length = 0;
          assert.deepEqual(plain(await store.promoteJob({ queue: Q, id: d as string, now: T0 + 10 })), { status: 'applied' });
          assert.ok(await waitFor(() => signals.some((s) => s.type === 'enqueued' && s.queue === Q)), 'promote signals enqueued');

          const c = await claimOne(store);
          assert.equal(c.id, f);
          await failFinal(store, f as string, c.token, T0 + 20);
          signals.length = 0;
          assert.deepEqual(plain(await store.retryJob({ queue: Q, id: f as string, now: T0 + 30 })), { status: 'applied' });
          assert.ok(await waitFor(() => signals.some((s) => s.type === 'enqueued' && s.queue === Q)), 'retry signals enqueued');

          assert.deepEqual(plain(await store.cancelJob({ queue: Q, id: w as string, now: T0 + 40 })), { status: 'applied' });
          await expect({ type: 'finished', queue: Q, id: w as string, state: 'cancelled' });
        } finally {
          unsubscribe();
        }
      });

      test('unsubscribe stops delivery', async (store) => {
        const gone: StoreSignal[] = [];
        const kept: StoreSignal[] = [];
        const unsubscribeGone = store.subscribe((s) => gone.push(s));
        const unsubscribeKept = store.subscribe((s) => kept.push(s));
        try {
          await addOne(store, { queue: 'first' });
          const isFirst = (s: StoreSignal): boolean => s.type === 'enqueued' && s.queue === 'first';
          assert.ok(await waitFor(() => gone.some(isFirst) && kept.some(isFirst)), 'both listeners hear the first enqueue');
          unsubscribeGone();
          unsubscribeGone(); // idempotent
          const goneBefore = gone.length;
          await addOne(store, { queue: 'second' });
          const isSecond = (s: StoreSignal): boolean => s.type === 'enqueued' && s.queue === 'second';
          assert.ok(await waitFor(() => kept.some(isSecond)), 'the remaining listener hears the second enqueue');
          await new Promise((resolve) => setTimeout(resolve, 50));
          assert.equal(gone.length, goneBefore, `unsubscribed listener still got ${JSON.stringify(gone.slice(goneBefore))}`);
        } finally {
          unsubscribeKept();
        }
      });

      test('a throwing listener breaks neither the store call nor other listeners, and rolls nothing back', async (store) => {
        const heard: StoreSignal[] = [];
        const unsubscribeBad = store.subscribe(() => {
          throw new Error('listener failure');
        });
        const unsubscribeGood = store.subscribe((s) => heard.push(s));
        try {
          const results = await store.enqueueMany({ jobs: [newJob({ data: '{"survives":true}' })], now: T0 });
          assert.equal(results.length, 1);
          const id = nth(results, 0).id;
          assert.equal(nth(results, 0).status, 'created');
          assert.equal((await mustGet(store, id)).data, '{"survives":true}');
          assert.ok(await waitFor(() => heard.some((s) => s.type === 'enqueued' && s.queue === Q)), 'other listener still hears');

          const c = await claimOne(store);
          const out = await store.completeMany({ items: [{ id, token: c.token, result: '"kept"', remove: false }], now: T0 + 1 });
          assert.deepEqual(plain(out), [{ status: 'applied' }]);
          assert.ok(await waitFor(() => heard.some((s) => s.type === 'finished' && s.id === id)), 'other listener hears finished');
          const job = await mustGet(store, id);
          assert.equal(job.state, 'completed');
          assert.equal(job.result, '"kept"');
        } finally {
          unsubscribeBad();
          unsubscribeGood();
        }
      });
    });
  });
}
