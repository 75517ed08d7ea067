/**
 * The event log on PostgreSQL, beyond the shared suite: events are written in the same
 * transaction as their change (a transactional enqueue's `added` event exists if and only
 * if the caller commits), and concurrent writers through several stores on one schema
 * produce a log that readEvents returns in strictly increasing seq order, with every
 * change in it exactly once. On PostgreSQL seq may have gaps and commit out of order, so
 * nothing here asks for consecutive seq.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { EventItem, NewJob, Store, StoredEvent } from '../src/store/contract.ts';
import { openPostgresStore, type PostgresStore } from '../src/stores/postgres/index.ts';
import { adminQuery, DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';

const T0 = 1_700_000_000_000;

function job(over: Partial<NewJob> = {}): NewJob {
  return { queue: 'q', name: 'job', data: '{}', opts: { attempts: 1 }, priority: 0, runAt: T0, ...over };
}

/** Every event after `after`, read in pages of `page`, checking seq order on the way. */
async function readAll(store: Store, after = 0, page = 7): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let mark = after;
  for (;;) {
    const batch = await store.readEvents({ after: mark, limit: page });
    for (const e of batch) {
      assert.ok(e.seq > mark, `seq ${e.seq} after ${mark}`);
      mark = e.seq;
      out.push(e);
    }
    if (batch.length < page) return out;
  }
}

async function stores(n: number, poolSize = 3): Promise<{ list: PostgresStore[]; schema: string; cleanup: () => Promise<void> }> {
  const schema = uniqueSchema();
  const list: PostgresStore[] = [];
  for (let i = 0; i < n; i++) list.push(await openPostgresStore({ url: DATABASE_URL, schema, poolSize }));
  return {
    list,
    schema,
    cleanup: async () => {
      await Promise.all(list.map((s) => s.close()));
      await dropSchema(schema);
    },
  };
}

describe('postgres event log', () => {
  it("enqueueInTransaction: the added event appears only when the caller's transaction commits, never after a rollback", async () => {
    const { list, cleanup } = await stores(2);
    const [producer, reader] = list as [PostgresStore, PostgresStore];
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      // A queue row first, so nothing of this test runs outside the transactions below.
      await producer.enqueueMany({ jobs: [job({ queue: 'tx' })], now: T0 });
      const start = await reader.lastEventSeq();
      assert.ok(start > 0);

      // Rolled back: neither the jobs nor their event.
      await client.query('BEGIN');
      const rolled = await producer.enqueueInTransaction!(client, { jobs: [job({ queue: 'tx', name: 'a' }), job({ queue: 'tx', name: 'b' })], now: T0 + 1 });
      assert.equal(rolled.length, 2);
      assert.deepEqual(await reader.readEvents({ after: start, limit: 100 }), [], 'nothing visible before the commit');
      await client.query('ROLLBACK');
      assert.deepEqual(await reader.readEvents({ after: start, limit: 100 }), [], 'nothing after the rollback');
      assert.equal(await reader.lastEventSeq(), start);

      // Committed: one added event with both jobs, visible only from the commit on.
      await client.query('BEGIN');
      const created = await producer.enqueueInTransaction!(client, {
        jobs: [job({ queue: 'tx', name: 'c' }), job({ queue: 'tx', name: 'd', id: 'key-d', runAt: T0 + 60_000 })],
        now: T0 + 2,
      });
      // A duplicate inside the same transaction writes no event.
      const dup = await producer.enqueueInTransaction!(client, { jobs: [job({ queue: 'tx', id: 'key-d' })], now: T0 + 3 });
      assert.equal(dup[0]!.status, 'duplicate');
      // Seen from inside the transaction, through the caller's own client.
      const inside = await client.query(`SELECT count(*)::int AS n FROM "${producer.schema}".events WHERE seq > $1`, [start]);
      assert.equal(inside.rows[0].n, 1);
      assert.deepEqual(await reader.readEvents({ after: start, limit: 100 }), [], 'invisible to others until the commit');
      await client.query('COMMIT');

      const events = await reader.readEvents({ after: start, limit: 100 });
      assert.equal(events.length, 1, JSON.stringify(events));
      const e = events[0]!;
      assert.equal(e.type, 'added');
      assert.equal(e.queue, 'tx');
      assert.equal(e.at, T0 + 2);
      assert.equal(e.count, undefined);
      assert.deepEqual(e.jobs, [
        { id: created[0]!.id, name: 'c', state: 'waiting' },
        { id: 'key-d', name: 'd', state: 'delayed' },
      ]);
      assert.ok(e.seq > start);
      assert.equal(await reader.lastEventSeq(), e.seq);
    } finally {
      await client.end();
      await cleanup();
    }
  });

  it('concurrent writers through two stores: readEvents returns every event once, in strictly increasing seq, covering every change once', async () => {
    const { list, cleanup } = await stores(2, 4);
    const [a, b] = list as [PostgresStore, PostgresStore];
    try {
      const PER = 40;
      const BATCH = 5;
      // Producers: both stores add batches into two queues at once.
      const producers = [a, b, a, b].map(async (store, p) => {
        const ids: string[] = [];
        for (let i = 0; i < PER; i++) {
          const res = await store.enqueueMany({
            jobs: Array.from({ length: BATCH }, (_, k) => job({ queue: k % 2 === 0 ? 'even' : 'odd', name: `p${p}` })),
            now: T0,
          });
          ids.push(...res.map((r) => r.id));
        }
        return ids;
      });
      // Workers: claim and complete concurrently with the producers, through both stores.
      const total = 4 * PER * BATCH;
      let done = 0;
      const workers = [a, b, a, b].map(async (store, w) => {
        const finished: string[] = [];
        let idle = 0;
        while (done < total && idle < 2000) {
          const res = await store.claim({ queues: ['even', 'odd'], workerId: `w${w}`, limit: 8, leaseMs: 60_000, now: T0 + 1 });
          if (res.jobs.length === 0) {
            idle++;
            await new Promise((resolve) => setTimeout(resolve, 2));
            continue;
          }
          const out = await store.completeMany({
            items: res.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: w % 2 === 0 })),
            now: T0 + 2,
          });
          assert.ok(out.every((o) => o.status === 'applied'));
          finished.push(...res.jobs.map((j) => j.id));
          done += res.jobs.length;
        }
        return finished;
      });
      const added = (await Promise.all(producers)).flat();
      const completed = (await Promise.all(workers)).flat();
      assert.equal(added.length, total);
      assert.equal(completed.length, total, 'every job completed once');

      for (const reader of [a, b]) {
        const events = await readAll(reader);
        // Strictly increasing seq, so no event twice.
        for (let i = 1; i < events.length; i++) assert.ok(events[i]!.seq > events[i - 1]!.seq);
        assert.equal(new Set(events.map((e) => e.seq)).size, events.length);
        const itemsOf = (type: string): EventItem[] => events.filter((e) => e.type === type).flatMap((e) => e.jobs);
        const count = (items: EventItem[]): Map<string, number> => {
          const m = new Map<string, number>();
          for (const it of items) m.set(it.id, (m.get(it.id) ?? 0) + 1);
          return m;
        };
        for (const type of ['added', 'active', 'completed']) {
          const seen = count(itemsOf(type));
          assert.equal(seen.size, total, `${type}: every job once`);
          assert.ok([...seen.values()].every((n) => n === 1), `${type}: no job twice`);
          assert.deepEqual([...seen.keys()].sort(), [...added].sort());
        }
        // One event per (operation, queue): batches of 5 over two queues make two added events each.
        assert.equal(events.filter((e) => e.type === 'added').length, 4 * PER * 2);
        for (const e of events) {
          assert.ok(e.queue === 'even' || e.queue === 'odd');
          assert.ok(e.jobs.length > 0);
        }
        assert.equal(await reader.lastEventSeq(), events.at(-1)!.seq);
      }
    } finally {
      await cleanup();
    }
  });

  it('a reader polling while writers commit out of seq order never sees an event twice or out of order', async () => {
    const { list, schema, cleanup } = await stores(2, 4);
    const [a, b] = list as [PostgresStore, PostgresStore];
    const slow = new pg.Client({ connectionString: DATABASE_URL });
    await slow.connect();
    try {
      await a.enqueueMany({ jobs: [job({ queue: 'o' })], now: T0 });
      // A transaction that takes a seq, then holds its commit back while others append.
      await slow.query('BEGIN');
      await a.enqueueInTransaction!(slow, { jobs: [job({ queue: 'o', name: 'late' })], now: T0 });
      const held = await slow.query(`SELECT max(seq)::int AS seq FROM "${schema}".events`);
      const heldSeq = held.rows[0].seq as number;
      for (let i = 0; i < 5; i++) await b.enqueueMany({ jobs: [job({ queue: 'o', name: `early${i}` })], now: T0 });

      const seen: StoredEvent[] = [];
      let mark = 0;
      const poll = async (): Promise<void> => {
        for (const e of await a.readEvents({ after: mark, limit: 100 })) {
          seen.push(e);
          mark = e.seq;
        }
      };
      await poll();
      assert.ok(!seen.some((e) => e.seq === heldSeq), 'the uncommitted event is not visible');
      assert.ok(seen.some((e) => e.seq > heldSeq), 'later events committed first are');
      await slow.query('COMMIT');
      await poll();
      // A reader that resumes after the highest seq it saw skips the late commit (the engine's
      // feed waits for gaps to fill for that reason); re-reading from before the gap finds it.
      const all = await readAll(a);
      assert.ok(all.some((e) => e.seq === heldSeq && e.jobs[0]?.name === 'late'));
      assert.equal(new Set(seen.map((e) => e.seq)).size, seen.length, 'no duplicates');
      for (let i = 1; i < seen.length; i++) assert.ok(seen[i]!.seq > seen[i - 1]!.seq);
    } finally {
      await slow.end();
      await cleanup();
    }
  });

  it('clean lists at most the first 1,000 ids, with the count of all', async () => {
    const { list, cleanup } = await stores(1);
    const store = list[0]!;
    try {
      const ids = (await store.enqueueMany({ jobs: Array.from({ length: 1500 }, () => job({ queue: 'c' })), now: T0 })).map((r) => r.id);
      const start = await store.lastEventSeq();
      assert.equal(await store.clean({ queue: 'c', state: 'waiting', limit: 5000 }), 1500);
      const [removed] = await store.readEvents({ after: start, limit: 10 });
      assert.equal(removed?.type, 'removed');
      assert.equal(removed.count, 1500);
      assert.deepEqual(
        removed.jobs.map((j) => j.id),
        ids.slice(0, 1000),
      );
    } finally {
      await cleanup();
    }
  });

  it('pruning walks from the oldest event, in batches, and stops at the cut-off; the newest event stays', async () => {
    const { list, schema, cleanup } = await stores(1);
    const store = list[0]!;
    try {
      // Events with at < before go, oldest first, in batches, up to the limit.
      for (let i = 0; i < 30; i++) await store.enqueueMany({ jobs: [job({ queue: 'p' })], now: T0 + 10 * i });
      const before = await readAll(store);
      const old = before.filter((e) => e.at < T0 + 100);
      assert.equal(await store.pruneEvents({ before: T0 + 100, limit: 3 }), 3);
      assert.equal(await store.pruneEvents({ before: T0 + 100, limit: 1000 }), old.length - 3);
      assert.equal(await store.pruneEvents({ before: T0 + 100, limit: 1000 }), 0);
      const rest = await readAll(store);
      assert.deepEqual(
        rest.map((e) => e.seq),
        before.filter((e) => e.at >= T0 + 100).map((e) => e.seq),
      );
      // Pruning "everything" keeps the newest event, so lastEventSeq stays where it was.
      const last = await store.lastEventSeq();
      assert.equal(await store.pruneEvents({ before: Number.MAX_SAFE_INTEGER, limit: 100_000 }), rest.length - 1);
      const left = await adminQuery<{ seq: string }>(`SELECT seq FROM "${schema}".events`);
      assert.deepEqual(left.map((r) => Number(r.seq)), [last]);
      assert.equal(await store.lastEventSeq(), last);
      await store.enqueueMany({ jobs: [job({ queue: 'p' })], now: T0 });
      assert.ok((await store.readEvents({ after: last, limit: 10 }))[0]!.seq > last);
    } finally {
      await cleanup();
    }
  });
});
