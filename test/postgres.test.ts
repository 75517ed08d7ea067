/**
 * The PostgreSQL store against the shared Store contract suite (a fresh schema per test),
 * plus what only a networked multi-process store shows: several stores on one schema,
 * signals across connections, LISTEN reconnection, concurrent migrations, error
 * translation.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import type { NewJob, Store, StoreSignal } from '../src/store/contract.ts';
import { ConveyorError, StoreError } from '../src/errors.ts';
import { openPostgresStore, PostgresStore } from '../src/stores/postgres/index.ts';
import { Database, parsePostgresUrl, translateError } from '../src/stores/postgres/connection.ts';
import { storeContractSuite } from './conformance/store-contract.ts';
import { storeEventsSuite } from './conformance/store-events.ts';
import { storeRegistrySuite } from './conformance/store-registry.ts';
import { adminQuery, DATABASE_URL, dropSchema, makePgStore, uniqueSchema } from './helpers/postgres.ts';

storeContractSuite('postgres', async () => {
  const { store, cleanup } = await makePgStore({ poolSize: 4 });
  return { store, cleanup };
});

storeEventsSuite('postgres', async () => {
  const { store, cleanup } = await makePgStore({ poolSize: 4 });
  return { store, cleanup };
});

storeRegistrySuite('postgres', async () => {
  const { store, cleanup } = await makePgStore({ poolSize: 4 });
  return { store, cleanup };
});

// ------------------------------------------------------------------ postgres specifics


const T0 = 1_700_000_000_000;

function job(over: Partial<NewJob> = {}): NewJob {
  return { queue: 'q', name: 'job', data: '{}', opts: { attempts: 1 }, priority: 0, runAt: T0, ...over };
}

async function waitFor(pred: () => boolean, timeoutMs = 5000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

/** Two stores (two pools, two LISTEN connections: as good as two processes) on one fresh schema. */
async function twoStores(): Promise<{ a: PostgresStore; b: PostgresStore; schema: string; cleanup: () => Promise<void> }> {
  const schema = uniqueSchema();
  const a = await openPostgresStore({ url: DATABASE_URL, schema, poolSize: 3 });
  const b = await openPostgresStore({ url: DATABASE_URL, schema, poolSize: 3 });
  return {
    a,
    b,
    schema,
    cleanup: async () => {
      await Promise.all([a.close(), b.close()]);
      await dropSchema(schema);
    },
  };
}

/** Adds a unique application_name, so a test can find (and kill) exactly this store's connections. */
function urlWithAppName(name: string, extra = ''): string {
  const sep = DATABASE_URL.includes('?') ? '&' : '?';
  return `${DATABASE_URL}${sep}application_name=${name}${extra}`;
}

describe('postgres store specifics', () => {
  it('two stores on one schema share jobs; concurrent claims from both split them without overlap', async () => {
    const { a, b, cleanup } = await twoStores();
    try {
      const ids = (await a.enqueueMany({ jobs: Array.from({ length: 300 }, (_, i) => job({ data: String(i) })), now: T0 })).map((r) => r.id);
      assert.equal((await b.countJobs({ queue: 'q' })).waiting, 300);
      const claimers = [a, b, a, b, a, b].map(async (store, w) => {
        const got: string[] = [];
        for (;;) {
          const res = await store.claim({ queues: ['q'], workerId: `w${w}`, limit: 7, leaseMs: 30_000, now: T0 });
          if (res.jobs.length === 0) return got;
          got.push(...res.jobs.map((j) => j.id));
        }
      });
      const got = (await Promise.all(claimers)).flat();
      assert.equal(got.length, 300, 'every job claimed once');
      assert.deepEqual([...got].sort(), [...ids].sort());
    } finally {
      await cleanup();
    }
  });

  it('the same key added concurrently through two stores is created once', async () => {
    const { a, b, cleanup } = await twoStores();
    try {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 === 0 ? a : b).enqueueMany({ jobs: [job({ id: 'only-one', data: String(i) })], now: T0 })),
      );
      const statuses = results.map((r) => r[0]!.status);
      assert.equal(statuses.filter((s) => s === 'created').length, 1, JSON.stringify(statuses));
      assert.equal((await a.countJobs({ queue: 'q' })).waiting, 1);
    } finally {
      await cleanup();
    }
  });

  it("signals cross stores through LISTEN/NOTIFY, and a store does not hear its own writes twice", async () => {
    const { a, b, cleanup } = await twoStores();
    const heard: StoreSignal[] = [];
    const unsubscribe = a.subscribe((s) => heard.push(s));
    try {
      assert.ok(await waitFor(() => a.listening), 'the LISTEN connection comes up');
      const has = (want: StoreSignal): boolean => heard.some((s) => JSON.stringify(s) === JSON.stringify(want));

      const [id] = (await b.enqueueMany({ jobs: [job({ queue: 'remote', runAt: T0 + 5 })], now: T0 })).map((r) => r.id);
      assert.ok(await waitFor(() => has({ type: 'enqueued', queue: 'remote', runAt: T0 + 5 })), `no remote enqueued: ${JSON.stringify(heard)}`);

      await b.setPaused({ queue: 'remote', paused: true });
      assert.ok(await waitFor(() => has({ type: 'paused', queue: 'remote' })), 'remote paused');
      await b.setPaused({ queue: 'remote', paused: false });
      assert.ok(await waitFor(() => has({ type: 'resumed', queue: 'remote' })), 'remote resumed');

      const claimed = await b.claim({ queues: ['remote'], workerId: 'w', limit: 1, leaseMs: 1000, now: T0 + 10 });
      await b.completeMany({ items: [{ id: id!, token: claimed.jobs[0]!.lease.token, result: null, remove: false }], now: T0 + 11 });
      assert.ok(await waitFor(() => has({ type: 'finished', queue: 'remote', id: id!, state: 'completed' })), 'remote finished');

      // A big batch of completions travels in several payloads, none lost.
      const many = (await b.enqueueMany({ jobs: Array.from({ length: 400 }, () => job({ queue: 'bulk' })), now: T0 })).map((r) => r.id);
      const res = await b.claim({ queues: ['bulk'], workerId: 'w', limit: 400, leaseMs: 1000, now: T0 });
      await b.completeMany({ items: res.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: false })), now: T0 });
      assert.ok(
        await waitFor(() => many.every((m) => heard.some((s) => s.type === 'finished' && s.id === m))),
        'all 400 remote finished signals arrive',
      );

      // Our own write: heard once (locally), not again through the echo of our NOTIFY.
      heard.length = 0;
      await a.enqueueMany({ jobs: [job({ queue: 'local' })], now: T0 });
      await new Promise((resolve) => setTimeout(resolve, 300));
      assert.equal(heard.filter((s) => s.type === 'enqueued' && s.queue === 'local').length, 1, JSON.stringify(heard));
    } finally {
      unsubscribe();
      await cleanup();
    }
  });

  it('the LISTEN connection reconnects when it is killed, emits changed, and hears again', async () => {
    const { a, b, cleanup } = await twoStores();
    const heard: StoreSignal[] = [];
    /** signalsReliable() as each `changed` arrives. */
    const reliable: boolean[] = [];
    const unsubscribe = a.subscribe((s) => {
      heard.push(s);
      if (s.type === 'changed') reliable.push(a.signalsReliable());
    });
    try {
      assert.ok(await waitFor(() => a.listening), 'listening');
      assert.equal(a.signalsReliable(), true, 'reliable once LISTEN is verified');
      const pid = a.listenPid;
      assert.ok(pid !== null);
      heard.length = 0;
      reliable.length = 0;
      await adminQuery('SELECT pg_terminate_backend($1)', [pid]);
      assert.ok(await waitFor(() => a.listening && a.listenPid !== pid), 'a new LISTEN connection');
      assert.ok(await waitFor(() => reliable.length >= 2), 'changed on the loss and after reconnecting');
      assert.deepEqual([reliable[0], reliable.at(-1)], [false, true], 'unreliable while reconnecting, reliable again after');
      await b.enqueueMany({ jobs: [job({ queue: 'after' })], now: T0 });
      assert.ok(await waitFor(() => heard.some((s) => s.type === 'enqueued' && s.queue === 'after')), 'hears after the reconnect');
    } finally {
      unsubscribe();
      await cleanup();
    }
  });

  it('several stores migrating one new schema at once apply each migration once', async () => {
    const schema = uniqueSchema();
    try {
      const stores = await Promise.all(Array.from({ length: 6 }, () => openPostgresStore({ url: DATABASE_URL, schema, poolSize: 1 })));
      const rows = await adminQuery<{ version: number; n: string }>(`SELECT version, count(*) AS n FROM "${schema}".schema_migrations GROUP BY version`);
      assert.ok(rows.length >= 1 && rows.every((r) => Number(r.n) === 1));
      await stores[0]!.enqueueMany({ jobs: [job()], now: T0 });
      assert.equal((await stores[5]!.countJobs({ queue: 'q' })).waiting, 1);
      await Promise.all(stores.map((s) => s.close()));
    } finally {
      await dropSchema(schema);
    }
  });

  it('a schema newer than this code, or (with migrate: false) an unmigrated one, is refused with STORE_SCHEMA', async () => {
    const schema = uniqueSchema();
    try {
      await assert.rejects(openPostgresStore({ url: DATABASE_URL, schema, migrate: false }), (e: unknown) => e instanceof StoreError && e.code === 'STORE_SCHEMA');
      const store = await openPostgresStore({ url: DATABASE_URL, schema });
      await store.close();
      const ok = await openPostgresStore({ url: DATABASE_URL, schema, migrate: false });
      await ok.close();
      await adminQuery(`INSERT INTO "${schema}".schema_migrations (version, description) VALUES (999, 'from the future')`);
      await assert.rejects(openPostgresStore({ url: DATABASE_URL, schema }), (e: unknown) => e instanceof StoreError && e.code === 'STORE_SCHEMA' && /newer/.test(e.message));
    } finally {
      await dropSchema(schema);
    }
  });

  it('an unreachable server is STORE_UNAVAILABLE, and no message carries the password', async () => {
    const url = 'postgres://someone:s3cret-pw@127.0.0.1:1/nowhere?connectTimeoutMs=2000';
    await assert.rejects(openPostgresStore({ url }), (e: unknown) => {
      assert.ok(e instanceof StoreError, String(e));
      assert.equal(e.code, 'STORE_UNAVAILABLE');
      assert.equal(e.retryable, true);
      assert.equal(e.operation, 'migrate');
      assert.ok(!e.message.includes('s3cret-pw'), e.message);
      assert.ok(!JSON.stringify(e.toJSON()).includes('s3cret-pw'));
      return true;
    });
  });

  it('a statement blocked past statementTimeoutMs is STORE_BUSY; a killed connection is STORE_UNAVAILABLE, then the pool recovers', async () => {
    const schema = uniqueSchema();
    const app = `cv_kill_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const store = await openPostgresStore({ url: urlWithAppName(app, '&statementTimeoutMs=300'), schema, poolSize: 2 });
    const locker = new pg.Client({ connectionString: DATABASE_URL });
    await locker.connect();
    try {
      const [id] = (await store.enqueueMany({ jobs: [job()], now: T0 })).map((r) => r.id);
      await locker.query('BEGIN');
      await locker.query(`LOCK TABLE "${schema}".jobs IN ACCESS EXCLUSIVE MODE`);
      await assert.rejects(store.getJob({ queue: 'q', id: id! }), (e: unknown) => e instanceof StoreError && e.code === 'STORE_BUSY' && e.operation === 'getJob');

      // Blocked again, and this time its connection is terminated under it.
      const pending = store.countJobs({ queue: 'q' });
      const settled = pending.then(
        () => null,
        (e: unknown) => e,
      );
      await new Promise((resolve) => setTimeout(resolve, 100));
      await adminQuery(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [app]);
      const err = await settled;
      assert.ok(err instanceof StoreError && err.code === 'STORE_UNAVAILABLE', `got ${String(err)}`);
      await locker.query('ROLLBACK');
      // The pool drops the dead connection and opens a new one.
      assert.equal((await store.getJob({ queue: 'q', id: id! }))?.state, 'waiting');
      await store.ping();
    } finally {
      await locker.end();
      await store.close();
      await dropSchema(schema);
    }
  });

  it('url parameters and options: schema, poolSize, statementTimeoutMs are conveyor options; bad ones are refused', async () => {
    const parsed = parsePostgresUrl('postgres://u:p@h:5/db?sslmode=disable&schema=jobs_x&poolSize=3&statementTimeoutMs=500&connectTimeoutMs=100');
    assert.equal(parsed.connectionString, 'postgres://u:p@h:5/db?sslmode=disable');
    assert.equal(parsed.schema, 'jobs_x');
    assert.equal(parsed.poolSize, 3);
    assert.equal(parsed.statementTimeoutMs, 500);
    assert.equal(parsed.connectTimeoutMs, 100);
    assert.throws(() => parsePostgresUrl('postgres://h/db?poolSize=0'), (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_ARGUMENT');
    assert.throws(() => parsePostgresUrl('postgres://h/db?schema=bad-name'), (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_ARGUMENT');
    for (const schema of ['', 'a b', 'x"; DROP TABLE y; --', 'é', 'a'.repeat(64)]) {
      assert.throws(() => new PostgresStore({ url: DATABASE_URL, schema }), (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_ARGUMENT', schema);
    }
    // The schema from the URL is used when the option is absent.
    const schema = uniqueSchema();
    const sep = DATABASE_URL.includes('?') ? '&' : '?';
    const store = await openPostgresStore({ url: `${DATABASE_URL}${sep}schema=${schema}&poolSize=2` });
    try {
      assert.equal(store.schema, schema);
      await store.enqueueMany({ jobs: [job()], now: T0 });
      const rows = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".jobs`);
      assert.equal(Number(rows[0]!.n), 1);
    } finally {
      await store.close();
      await dropSchema(schema);
    }
  });

  it('live and finished jobs live in separate tables; text with odd characters round-trips', async () => {
    const { a: store, schema, cleanup } = await twoStores();
    try {
      const data = '{"s":"nul \\u0000 é ✓ \\ud83d\\ude00 \'quote\' \\"dq\\""}';
      const [id] = (await store.enqueueMany({ jobs: [job({ data, name: "n'ame" })], now: T0 })).map((r) => r.id);
      const c = await store.claim({ queues: ['q'], workerId: "w'1", limit: 1, leaseMs: 1000, now: T0 });
      const error = { message: 'bad \u0000 byte, "quotes", \\ backslash, ✓', at: T0 + 1, attempt: 1, name: 'Error' };
      assert.deepEqual(
        await store.failMany({ items: [{ id: id!, token: c.jobs[0]!.lease.token, error, retryAt: null, remove: false }], now: T0 + 1 }),
        [{ status: 'applied', state: 'failed' }],
      );
      const rec = await store.getJob({ queue: 'q', id: id! });
      assert.equal(rec?.data, data);
      assert.equal(rec?.name, "n'ame");
      assert.deepEqual(rec?.errors, [error]);
      const live = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".jobs`);
      const done = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".jobs_done`);
      assert.deepEqual([Number(live[0]!.n), Number(done[0]!.n)], [0, 1]);
      assert.equal((await store.retryJob({ queue: 'q', id: id!, now: T0 + 2 })).status, 'applied');
      const live2 = await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".jobs`);
      assert.equal(Number(live2[0]!.n), 1);
    } finally {
      await cleanup();
    }
  });

  it('serialization failures and deadlocks are retried; SQLSTATEs map to conveyor codes', async () => {
    const pool = new pg.Pool({ connectionString: DATABASE_URL, max: 1 });
    const db = new Database(pool, DATABASE_URL);
    try {
      let calls = 0;
      const value = await db.run('test', async () => {
        calls++;
        if (calls < 3) throw Object.assign(new Error(calls === 1 ? 'could not serialize access' : 'deadlock detected'), { code: calls === 1 ? '40001' : '40P01' });
        return 'ok';
      });
      assert.equal(value, 'ok');
      assert.equal(calls, 3);
      await assert.rejects(
        db.run('claim', async () => {
          throw Object.assign(new Error('relation does not exist'), { code: '42P01' });
        }),
        (e: unknown) => e instanceof StoreError && e.code === 'STORE_ERROR' && e.operation === 'claim' && /claim/.test(e.message),
      );
    } finally {
      await pool.end();
    }
    const codeOf = (err: unknown): string => translateError('op', err).code;
    assert.equal(codeOf(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' })), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(Object.assign(new Error('the database system is starting up'), { code: '57P03' })), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(Object.assign(new Error('connection failure'), { code: '08006' })), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(Object.assign(new Error('sorry, too many clients already'), { code: '53300' })), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' })), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(new Error('Connection terminated unexpectedly')), 'STORE_UNAVAILABLE');
    assert.equal(codeOf(Object.assign(new Error('canceling statement due to statement timeout'), { code: '57014' })), 'STORE_BUSY');
    assert.equal(codeOf(Object.assign(new Error('syntax error'), { code: '42601' })), 'STORE_ERROR');
    const leaky = translateError('op', new Error('password authentication failed: hunter2'), 'hunter2');
    assert.ok(!leaky.message.includes('hunter2'));
  });

  it('close is idempotent, waits for pending notifications, and later calls fail with CLOSED', async () => {
    const { a, b, cleanup } = await twoStores();
    try {
      const heard: StoreSignal[] = [];
      const unsubscribe = b.subscribe((s) => heard.push(s));
      assert.ok(await waitFor(() => b.listening));
      await a.enqueueMany({ jobs: [job({ queue: 'last-words' })], now: T0 });
      await Promise.all([a.close(), a.close()]);
      assert.ok(await waitFor(() => heard.some((s) => s.type === 'enqueued' && s.queue === 'last-words')), 'the notification sent before close arrives');
      unsubscribe();
      const closed = (e: unknown): boolean => e instanceof ConveyorError && e.code === 'CLOSED';
      await assert.rejects(a.ping(), closed);
      await assert.rejects(a.countJobs({ queue: 'q' }), closed);
      assert.throws(() => (a as Store).subscribe(() => undefined), closed);
    } finally {
      await cleanup();
    }
  });
});
