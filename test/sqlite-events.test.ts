/**
 * The SQLite store's event log beyond the shared suite (test/conformance/store-events.ts):
 * acknowledgements of leases claimed through another connection (no claim-time facts in
 * memory, so the items come from the row), the bounded claim cache, and pruning's
 * oldest-first walk.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

import { openSqliteStore } from '../src/stores/sqlite/index.ts';
import { AttemptStarts, EventBatch, type EventLog } from '../src/stores/sqlite/events.ts';
import type { NewJob, Store, StoredEvent } from '../src/store/contract.ts';

const T0 = 1_700_000_000_000;

function job(over: Partial<NewJob> = {}): NewJob {
  return { queue: 'q', name: 'job', data: '{}', opts: { attempts: 3 }, priority: 0, runAt: T0, ...over };
}

function open(file: string): Store {
  return openSqliteStore({ path: file, durability: 'normal', busyTimeoutMs: 5000 });
}

async function eventsAfter(store: Store, after: number): Promise<StoredEvent[]> {
  return [...(await store.readEvents({ after, limit: 1000 }))];
}

describe('sqlite event log: acks through another connection', () => {
  it('completions and failures of leases claimed elsewhere carry the same attempt and durationMs', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-events-'));
    const file = path.join(dir, 'conveyor.db');
    const a = open(file);
    const b = open(file);
    try {
      const created = await a.enqueueMany({ jobs: [job(), job({ id: 'k' }), job(), job()], now: T0 });
      const [j1, j2, j3, j4] = created.map((r) => r.id) as [string, string, string, string];
      const claimed = await a.claim({ queues: ['q'], workerId: 'wa', limit: 10, leaseMs: 30_000, now: T0 + 100 });
      const token = new Map(claimed.jobs.map((j) => [j.id, j.lease.token]));
      const mark = await b.lastEventSeq();

      // B never claimed these: it reads attempt and start time from the rows.
      assert.deepEqual(
        await b.completeMany({
          items: [
            { id: j1, token: token.get(j1)!, result: null, remove: false },
            { id: j2, token: token.get(j2)!, result: null, remove: true },
            { id: j3, token: 'not-a-lease-token', result: null, remove: false },
            { id: j3, token: 'x.1.999999', result: null, remove: false },
          ],
          now: T0 + 350,
        }),
        [{ status: 'applied' }, { status: 'applied' }, { status: 'stale' }, { status: 'stale' }],
      );
      assert.deepEqual(
        await b.failMany({
          items: [
            { id: j3, token: token.get(j3)!, error: { message: 'no', at: T0 + 400, attempt: 1 }, retryAt: T0 + 1000, remove: false },
            { id: j4, token: token.get(j4)!, error: { message: 'gone', at: T0 + 400, attempt: 1 }, retryAt: null, remove: true },
          ],
          now: T0 + 400,
        }),
        [
          { status: 'applied', state: 'delayed' },
          { status: 'applied', state: 'failed' },
        ],
      );
      const events = (await eventsAfter(a, mark)).map(({ seq: _seq, ...rest }) => rest);
      assert.deepEqual(events, [
        {
          at: T0 + 350,
          queue: 'q',
          type: 'completed',
          jobs: [
            { id: j1, attempt: 1, durationMs: 250 },
            { id: 'k', attempt: 1, durationMs: 250 },
          ],
        },
        {
          at: T0 + 400,
          queue: 'q',
          type: 'failed',
          jobs: [
            { id: j3, attempt: 1, durationMs: 300, error: 'no', state: 'delayed' },
            { id: j4, attempt: 1, durationMs: 300, error: 'gone', state: 'failed' },
          ],
        },
      ]);

      // A's own memory of those leases is now stale; its acks are answered stale, without events.
      const before = await a.lastEventSeq();
      assert.deepEqual(await a.completeMany({ items: [{ id: j1, token: token.get(j1)!, result: null, remove: false }], now: T0 + 500 }), [
        { status: 'stale' },
      ]);
      assert.equal(await a.lastEventSeq(), before);

      // The second attempt of j3, claimed by B and completed by A.
      const again = await b.claim({ queues: ['q'], workerId: 'wb', limit: 10, leaseMs: 30_000, now: T0 + 1000 });
      assert.deepEqual(again.jobs.map((j) => j.id), [j3]);
      await a.completeMany({ items: [{ id: j3, token: again.jobs[0]!.lease.token, result: null, remove: false }], now: T0 + 1010 });
      const [last] = (await eventsAfter(b, before)).slice(-1);
      assert.deepEqual(last?.jobs, [{ id: j3, attempt: 2, durationMs: 10 }]);
    } finally {
      await a.close();
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('sqlite event log: claim cache', () => {
  it('keeps at most MAX_ENTRIES leases, evicting the oldest', () => {
    const starts = new AttemptStarts();
    const n = AttemptStarts.MAX_ENTRIES + 5;
    for (let i = 0; i < n; i++) starts.remember(`t${i}`, { queue: 'q', attempt: 1, startedAt: i });
    assert.equal(starts.size, AttemptStarts.MAX_ENTRIES);
    for (let i = 0; i < 5; i++) assert.equal(starts.take(`t${i}`), undefined, `t${i} was evicted`);
    assert.deepEqual(starts.take(`t${n - 1}`), { queue: 'q', attempt: 1, startedAt: n - 1 });
    assert.equal(starts.take(`t${n - 1}`), undefined, 'take removes the entry');
  });

  it('a lease whose entry was evicted still gets full items (read from the row)', async () => {
    const store = open(':memory:');
    try {
      const [r] = await store.enqueueMany({ jobs: [job()], now: T0 });
      const claimed = await store.claim({ queues: ['q'], workerId: 'w', limit: 1, leaseMs: 30_000, now: T0 + 5 });
      const token = claimed.jobs[0]!.lease.token;
      // Push the entry out with other claims' leases (the store's own cache, through its API).
      const filler = Array.from({ length: 1000 }, () => job({ queue: 'filler' }));
      for (let i = 0; i * 1000 < AttemptStarts.MAX_ENTRIES + 1000; i++) {
        await store.enqueueMany({ jobs: filler, now: T0 });
        await store.claim({ queues: ['filler'], workerId: 'w', limit: 1000, leaseMs: 30_000, now: T0 + 6 });
      }
      const mark = await store.lastEventSeq();
      await store.completeMany({ items: [{ id: r!.id, token, result: null, remove: false }], now: T0 + 105 });
      const [e] = await eventsAfter(store, mark);
      assert.deepEqual(e?.jobs, [{ id: r!.id, attempt: 1, durationMs: 100 }]);
    } finally {
      await store.close();
    }
  });
});

describe('sqlite event log: runs of consecutive ids', () => {
  it('are stored once: the first item and how many follow', () => {
    const written: string[] = [];
    const log = { appendJson: (_at: number, queue: string, _type: string, json: string) => void written.push(`${queue} ${json}`) };
    const batch = new EventBatch('active');
    for (const seq of [5, 6, 7]) batch.add('q', { id: String(seq), attempt: 1, waitMs: 3 }, seq);
    batch.add('q', { id: '8', attempt: 2, waitMs: 3 }, 8);
    batch.add('q', { id: 'key', attempt: 1, waitMs: 3 }, -1);
    batch.add('other', { id: '9', attempt: 1, waitMs: 3 }, 9);
    batch.add('q', { id: '10', attempt: 1, waitMs: 3 }, 10);
    batch.add('q', { id: '11', attempt: 1, waitMs: 3 }, 11);
    batch.flush(log as unknown as EventLog, T0);
    assert.deepEqual(written, [
      'q [{"id":"5","attempt":1,"waitMs":3,"+":2},{"id":"8","attempt":2,"waitMs":3},{"id":"key","attempt":1,"waitMs":3},{"id":"10","attempt":1,"waitMs":3,"+":1}]',
      'other [{"id":"9","attempt":1,"waitMs":3}]',
    ]);
  });

  it('read back one item per job, in the order written, whatever breaks a run', async () => {
    const store = open(':memory:');
    try {
      const results = await store.enqueueMany({
        jobs: [
          job(),
          job(),
          job({ id: 'k1' }), // a caller-chosen id ends a run (and takes a seq)
          job(),
          job({ runAt: T0 + 60_000 }), // another state
          job({ runAt: T0 + 60_000 }),
          job({ name: 'other' }), // another name
          job(),
          job({ id: '1abc' }), // a key that starts with a digit
          job(),
        ],
        now: T0,
      });
      const ids = results.map((r) => r.id);
      const [added] = await eventsAfter(store, 0);
      const delayed = new Set([4, 5]);
      assert.deepEqual(
        added?.jobs,
        ids.map((id, i) => ({ id, name: i === 6 ? 'other' : 'job', state: delayed.has(i) ? 'delayed' : 'waiting' })),
      );

      // Claims: equal waitMs form runs, a different creation time breaks them.
      await store.enqueueMany({ jobs: [job(), job()], now: T0 + 7 });
      const mark = await store.lastEventSeq();
      const claimed = await store.claim({ queues: ['q'], workerId: 'w', limit: 100, leaseMs: 30_000, now: T0 + 10 });
      const [active] = await eventsAfter(store, mark);
      assert.deepEqual(
        active?.jobs,
        claimed.jobs.map((j) => ({ id: j.id, attempt: 1, waitMs: j.createdAt === T0 ? 10 : 3 })),
      );
      assert.equal(active?.jobs.length, 10);

      // Completions: the order of the call, with runs broken where ids are not consecutive.
      const items = [...claimed.jobs].reverse().concat().sort((a, b) => (a.id.length - b.id.length) || (a.id < b.id ? -1 : 1));
      const mark2 = await store.lastEventSeq();
      await store.completeMany({ items: items.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: false })), now: T0 + 20 });
      const [completed] = await eventsAfter(store, mark2);
      assert.deepEqual(completed?.jobs, items.map((j) => ({ id: j.id, attempt: 1, durationMs: 10 })));
    } finally {
      await store.close();
    }
  });
});

describe('sqlite event log: pruning', () => {
  it('walks from the oldest and stops at the first event not older than `before`', async () => {
    const store = open(':memory:');
    try {
      // at: T0+30, T0+10 (a writer with a clock behind), T0+40, T0+50
      for (const at of [T0 + 30, T0 + 10, T0 + 40, T0 + 50]) await store.enqueueMany({ jobs: [job()], now: at });
      assert.equal(await store.pruneEvents({ before: T0 + 20, limit: 100 }), 0, 'the oldest is not older than before');
      assert.equal(await store.pruneEvents({ before: T0 + 45, limit: 100 }), 3);
      assert.deepEqual((await eventsAfter(store, 0)).map((e) => e.at), [T0 + 50]);
    } finally {
      await store.close();
    }
  });
});
