/**
 * Smoke test of the SQLite store on a real temp file: the main paths and the
 * SQLite-specific behaviour (busy retries, schema version, bulk id derivation). The shared
 * contract suite (test/conformance) is the thorough check; this one is quick and local.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';

import { openSqliteStore, type SqliteStore } from '../src/stores/sqlite/index.ts';
import type { NewJob } from '../src/store/contract.ts';
import { isConveyorError } from '../src/errors.ts';

const T0 = 1_700_000_000_000;
let dir: string;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-sqlite-smoke-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

let counter = 0;
function open(busyTimeoutMs = 2000): { store: SqliteStore; file: string } {
  const file = path.join(dir, `nested-${++counter}`, 'q.db');
  return { store: openSqliteStore({ path: file, durability: 'normal', busyTimeoutMs }), file };
}

function job(over: Partial<NewJob> = {}): NewJob {
  return { queue: 'q', name: 'n', data: '{"x":1}', opts: { attempts: 3 }, priority: 0, runAt: T0, ...over };
}

describe('sqlite store smoke', () => {
  it('enqueue → claim → complete, with ids derived from consecutive seqs', async () => {
    const { store } = open();
    try {
      const jobs = Array.from({ length: 250 }, (_, i) => job({ data: JSON.stringify({ i }) }));
      const res = await store.enqueueMany({ jobs, now: T0 });
      assert.equal(res.length, 250);
      // Every derived id must name the job that was inserted at that position.
      for (let i = 0; i < res.length; i += 37) {
        const rec = await store.getJob({ queue: 'q', id: res[i]!.id });
        assert.equal(rec?.data, JSON.stringify({ i }));
        assert.equal(rec?.state, 'waiting');
      }
      const claimed = await store.claim({ queues: ['q'], workerId: 'w1', limit: 10, leaseMs: 1000, now: T0 });
      assert.deepEqual(
        claimed.jobs.map((j) => j.id),
        res.slice(0, 10).map((r) => r.id),
      );
      const first = claimed.jobs[0]!;
      assert.equal(first.state, 'active');
      assert.equal(first.lease.owner, 'w1');
      assert.equal(first.lease.expiresAt, T0 + 1000);
      const acks = await store.completeMany({
        items: claimed.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: '"ok"', remove: false })),
        now: T0 + 5,
      });
      assert.ok(acks.every((a) => a.status === 'applied'));
      const done = await store.getJob({ queue: 'q', id: first.id });
      assert.equal(done?.state, 'completed');
      assert.equal(done?.result, '"ok"');
      assert.equal(done?.attemptsMade, 1);
      assert.equal(done?.lease, null);
      const counts = await store.countJobs({ queue: 'q' });
      assert.deepEqual(counts, { waiting: 240, active: 0, delayed: 0, completed: 10, failed: 0, cancelled: 0 });
    } finally {
      store.close();
    }
  });

  it('fail retries (delayed/waiting) then fails for good; fencing rejects stale tokens', async () => {
    const { store } = open();
    try {
      const [r] = await store.enqueueMany({ jobs: [job()], now: T0 });
      const c1 = (await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 })).jobs[0]!;
      const err = { message: 'boom', at: T0 + 1, attempt: 1 };
      assert.deepEqual(await store.failMany({ items: [{ id: c1.id, token: c1.lease.token, error: err, retryAt: T0 + 100, remove: false }], now: T0 + 1 }), [
        { status: 'applied', state: 'delayed' },
      ]);
      // The old token is stale now.
      assert.deepEqual(await store.completeMany({ items: [{ id: c1.id, token: c1.lease.token, result: null, remove: false }], now: T0 + 2 }), [
        { status: 'stale' },
      ]);
      const none = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 + 50 });
      assert.equal(none.jobs.length, 0);
      assert.equal(none.nextRunAt, T0 + 100);
      const c2 = (await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 + 100 })).jobs[0]!;
      assert.equal(c2.id, r!.id);
      assert.notEqual(c2.lease.token, c1.lease.token);
      const out = await store.failMany({
        items: [{ id: c2.id, token: c2.lease.token, error: { ...err, attempt: 2 }, retryAt: null, remove: false }],
        now: T0 + 101,
      });
      assert.deepEqual(out, [{ status: 'applied', state: 'failed' }]);
      const rec = await store.getJob({ queue: 'q', id: c2.id });
      assert.equal(rec?.state, 'failed');
      assert.equal(rec?.attemptsMade, 2);
      assert.deepEqual(
        rec?.errors.map((e) => e.attempt),
        [1, 2],
      );
    } finally {
      store.close();
    }
  });

  it('stall recovery: back to waiting, then failed after maxStalls', async () => {
    const { store } = open();
    try {
      await store.enqueueMany({ jobs: [job({ opts: { attempts: 3, leaseMs: 10 } })], now: T0 });
      let now = T0;
      for (let stall = 1; stall <= 2; stall++) {
        const c = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now });
        assert.equal(c.jobs[0]!.lease.expiresAt, now + 10, 'the job’s own leaseMs wins');
        assert.deepEqual(await store.recoverStalled({ maxStalls: 1, limit: 10, now: now + 10 }), [], 'held at expiresAt');
        now += 11;
        assert.deepEqual(await store.recoverStalled({ queues: ['other'], maxStalls: 1, limit: 10, now }), []);
        const rec = await store.recoverStalled({ queues: ['q'], maxStalls: 1, limit: 10, now });
        assert.deepEqual(rec.map((r) => r.state), [stall === 1 ? 'waiting' : 'failed']);
      }
      const final = await store.getJob({ queue: 'q', id: '1' });
      assert.equal(final?.state, 'failed');
      assert.equal(final?.stalls, 2);
      assert.equal(final?.attemptsMade, 0);
      assert.equal(final?.errors[0]?.reason, 'stalled');
      assert.equal(final?.errors[0]?.message, 'job stalled more than 1 times');
    } finally {
      store.close();
    }
  });

  it('caller ids deduplicate against live jobs and replace finished ones', async () => {
    const { store } = open();
    try {
      const res = await store.enqueueMany({ jobs: [job({ id: 'k1' }), job({ id: 'k1' }), job(), job({ id: 'k2' })], now: T0 });
      assert.deepEqual(res, [
        { status: 'created', id: 'k1' },
        { status: 'duplicate', id: 'k1' },
        { status: 'created', id: '2' },
        { status: 'created', id: 'k2' },
      ]);
      // Another queue may reuse the key.
      assert.deepEqual(await store.enqueueMany({ jobs: [job({ id: 'k1', queue: 'other' })], now: T0 }), [{ status: 'created', id: 'k1' }]);
      const c = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 });
      assert.equal(c.jobs[0]!.id, 'k1');
      await store.addLogs({ queue: 'q', id: 'k1', token: c.jobs[0]!.lease.token, entries: [{ at: T0, message: 'hi' }] });
      await store.completeMany({ items: [{ id: 'k1', token: c.jobs[0]!.lease.token, result: null, remove: false }], now: T0 });
      assert.deepEqual(await store.enqueueMany({ jobs: [job({ id: 'k1', data: '"new"' })], now: T0 + 1 }), [{ status: 'created', id: 'k1' }]);
      const rec = await store.getJob({ queue: 'q', id: 'k1' });
      assert.equal(rec?.data, '"new"');
      assert.equal(rec?.state, 'waiting');
      assert.equal((await store.getLogs({ queue: 'q', id: 'k1', offset: 0, limit: 10 })).total, 0, 'logs of the replaced job are gone');
    } finally {
      store.close();
    }
  });

  it('claims by priority, then runAt, then insertion order, across queues; paused queues are skipped', async () => {
    const { store } = open();
    try {
      await store.enqueueMany({
        jobs: [
          job({ queue: 'a', data: '"a-low"', priority: 0 }),
          job({ queue: 'b', data: '"b-high"', priority: 5 }),
          job({ queue: 'a', data: '"a-late"', priority: 5, runAt: T0 + 10 }),
          job({ queue: 'a', data: '"a-mid"', priority: 1 }),
          job({ queue: 'b', data: '"b-low"', priority: 0 }),
          job({ queue: 'c', data: '"c-top"', priority: 9 }),
        ],
        now: T0 + 20,
      });
      await store.setPaused({ queue: 'c', paused: true });
      assert.equal(await store.isPaused({ queue: 'c' }), true);
      const c = await store.claim({ queues: ['a', 'b', 'c'], workerId: 'w', limit: 4, leaseMs: 1000, now: T0 + 20 });
      assert.deepEqual(
        c.jobs.map((j) => j.data),
        ['"b-high"', '"a-late"', '"a-mid"', '"a-low"'],
      );
      await store.setPaused({ queue: 'c', paused: false });
      const c2 = await store.claim({ queues: ['c', 'b'], workerId: 'w', limit: 5, leaseMs: 1000, now: T0 + 20 });
      assert.deepEqual(
        c2.jobs.map((j) => j.data),
        ['"c-top"', '"b-low"'],
      );
      const queues = await store.listQueues();
      assert.deepEqual(
        queues.map((q) => [q.name, q.counts.active]),
        [
          ['a', 3],
          ['b', 2],
          ['c', 1],
        ],
      );
    } finally {
      store.close();
    }
  });

  it('delayed jobs become claimable when due', async () => {
    const { store } = open();
    try {
      await store.enqueueMany({ jobs: [job({ runAt: T0 + 1000 })], now: T0 });
      assert.equal((await store.getJob({ queue: 'q', id: '1' }))?.state, 'delayed');
      const early = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 + 999 });
      assert.deepEqual(early, { jobs: [], nextRunAt: T0 + 1000 });
      const due = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 + 1000 });
      assert.equal(due.jobs.length, 1);
      assert.equal(due.nextRunAt, null);
    } finally {
      store.close();
    }
  });

  it('waits for a write lock held by another connection, and succeeds', async () => {
    const { store, file } = open(2000);
    const other = new DatabaseSync(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      const release = setTimeout(() => other.exec('COMMIT'), 100);
      const started = Date.now();
      const pending = store.enqueueMany({ jobs: [job()], now: T0 });
      assert.ok(pending instanceof Promise, 'a contended call falls back to a promise');
      const res = await pending;
      clearTimeout(release);
      assert.equal(res[0]?.status, 'created');
      assert.ok(Date.now() - started >= 90, 'it waited for the lock');
      // Uncontended calls answer synchronously.
      const sync = store.enqueueMany({ jobs: [job()], now: T0 });
      assert.ok(Array.isArray(sync));
    } finally {
      if (other.isTransaction) other.exec('ROLLBACK');
      other.close();
      store.close();
    }
  });

  it('fails with STORE_BUSY once busyTimeoutMs has passed', async () => {
    const { store, file } = open(60);
    const other = new DatabaseSync(file);
    try {
      other.exec('BEGIN IMMEDIATE');
      // An idle poll (nothing to claim) is a plain read and never waits for the lock.
      assert.deepEqual(store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 }), { jobs: [], nextRunAt: null });
      other.exec('ROLLBACK');
      await store.enqueueMany({ jobs: [job()], now: T0 });
      other.exec('BEGIN IMMEDIATE');
      const started = Date.now();
      await assert.rejects(
        async () => store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 }),
        (err: unknown) => isConveyorError(err, 'STORE_BUSY') && (err as { operation?: string }).operation === 'claim',
      );
      const waited = Date.now() - started;
      assert.ok(waited >= 50 && waited < 1000, `waited ${waited} ms`);
    } finally {
      other.exec('ROLLBACK');
      other.close();
      store.close();
    }
  });

  it('refuses a database with a newer schema, and throws CLOSED after close', async () => {
    const { store, file } = open();
    store.close();
    store.close(); // idempotent
    assert.throws(() => store.getJob({ queue: 'q', id: '1' }), (err: unknown) => isConveyorError(err, 'CLOSED'));
    const raw = new DatabaseSync(file);
    raw.exec('PRAGMA user_version = 999');
    raw.close();
    assert.throws(
      () => openSqliteStore({ path: file, durability: 'full', busyTimeoutMs: 100 }),
      (err: unknown) => isConveyorError(err, 'STORE_SCHEMA'),
    );
  });

  it('an unopenable path or a file that is not a database is STORE_UNAVAILABLE', () => {
    const blocker = path.join(dir, 'not-a-dir');
    fs.writeFileSync(blocker, 'x');
    assert.throws(
      () => openSqliteStore({ path: path.join(blocker, 'q.db'), durability: 'normal', busyTimeoutMs: 100 }),
      (err: unknown) => isConveyorError(err, 'STORE_UNAVAILABLE'),
    );
    const garbage = path.join(dir, 'garbage.db');
    fs.writeFileSync(garbage, 'this is not a database, it is just a text file that is long enough '.repeat(100));
    assert.throws(
      () => openSqliteStore({ path: garbage, durability: 'normal', busyTimeoutMs: 100 }),
      (err: unknown) => isConveyorError(err, 'STORE_UNAVAILABLE'),
    );
  });
});
