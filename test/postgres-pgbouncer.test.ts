/**
 * The PostgreSQL store behind a REAL PgBouncer in transaction pooling mode (started by this
 * file, stopped at its end): LISTEN does not survive there and server connections are
 * shared by clients, so session state (named prepared statements, LISTEN) cannot be
 * trusted. The engine flow (add, workers complete, waitForResult, a stale ack fenced off,
 * transactional enqueue) must work through it:
 *   - with `listenUrl` (a direct connection for LISTEN): wake-ups by NOTIFY;
 *   - without it: the store finds LISTEN useless (its probe never arrives), warns once
 *     (CONVEYOR_NO_LISTEN) and wakes subscribers by polling;
 *   - with `listen=false&preparedStatements=false`: polling from the start, no warning.
 * A small server pool (4) with several client pools makes clients share server connections,
 * so named prepared statements collide and the store has to fall back to unnamed ones.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Conveyor, type Job } from '../src/index.ts';
import { parsePostgresUrl, redactUrl } from '../src/stores/postgres/connection.ts';
import type { PostgresStore } from '../src/stores/postgres/index.ts';
import { ConveyorError } from '../src/errors.ts';
import { startPgBouncer, type PgBouncer } from './helpers/pgbouncer.ts';
import { DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** Process warnings with code CONVEYOR_NO_LISTEN since the last reset. */
const noListenWarnings: Error[] = [];
process.on('warning', (w) => {
  if ((w as Error & { code?: string }).code === 'CONVEYOR_NO_LISTEN') noListenWarnings.push(w);
});

let bouncer: PgBouncer;
before(async () => {
  bouncer = await startPgBouncer({ serverPoolSize: 4 });
});
after(async () => {
  await bouncer?.stop();
});

const pgStore = (cv: Conveyor): PostgresStore => cv.store as PostgresStore;

/**
 * Two Conveyors on one url (as two processes would be): a producer and a consumer whose
 * worker has a 60 s safety-net poll, so only the store's wake-ups (NOTIFY, or polling
 * without LISTEN) can make it react quickly to the producer's adds.
 */
async function engineFlow(url: string, expect: { mode: 'listen' | 'poll'; wakeWithinMs: number }): Promise<void> {
  const producer = await Conveyor.open({ url });
  const consumer = await Conveyor.open({ url });
  try {
    const q = producer.queue<{ n: number }, number>('flow');
    const runs = new Map<string, number>();
    const activeAt = new Map<string, number>();
    const errors: Error[] = [];
    const worker = consumer.worker<{ n: number }, number>(
      'flow',
      async (job) => {
        runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
        return job.data.n * 2;
      },
      { concurrency: 4, pollMs: 60_000 },
    );
    worker.on('active', (job: Job<{ n: number }, number>) => activeAt.set(job.id, Date.now()));
    worker.on('error', (e) => errors.push(e));
    const store = pgStore(consumer);
    await waitUntil(() => store.signalMode === expect.mode && (expect.mode === 'poll' || store.listening), `signal mode ${expect.mode}`);

    // Many adds, bulk and concurrent singles, from the other "process".
    const bulk = await q.addBulk(Array.from({ length: 100 }, (_, i) => ({ name: 'double', data: { n: i } })));
    const singles = await Promise.all(Array.from({ length: 20 }, (_, i) => q.add('double', { n: 100 + i })));
    const all = [...bulk, ...singles];
    assert.equal(await q.waitForResult(singles[7]!.id, { timeoutMs: 15_000 }), 214);
    await waitUntil(async () => (await q.getCounts()).completed === all.length, 'all jobs completed', 20_000);
    for (const job of all) assert.equal(runs.get(job.id), 1, `job ${job.id} ran once`);

    // An idle worker wakes for another process's add through the store's signals.
    await sleep(300);
    const lone = await q.add('double', { n: 500 });
    const addedAt = Date.now();
    assert.equal(await q.waitForResult(lone.id, { timeoutMs: 15_000 }), 1000);
    const woke = activeAt.get(lone.id)! - addedAt;
    assert.ok(woke < expect.wakeWithinMs, `the idle worker started the job ${woke} ms after the add (allowed ${expect.wakeWithinMs})`);

    // Fencing through the pooler: a lease that expired and was re-issued cannot be acknowledged.
    const s = pgStore(producer);
    const [fenced] = await s.enqueueMany({ jobs: [{ queue: 'fence', name: 'f', data: '{}', opts: { attempts: 1 }, priority: 0, runAt: Date.now() }], now: Date.now() });
    const first = await s.claim({ queues: ['fence'], workerId: 'old', limit: 1, leaseMs: 200, now: Date.now() });
    assert.equal(first.jobs[0]?.id, fenced!.id);
    await sleep(300);
    assert.deepEqual(await s.recoverStalled({ queues: ['fence'], maxStalls: 5, limit: 10, now: Date.now() }), [{ id: fenced!.id, queue: 'fence', state: 'waiting' }]);
    const second = await s.claim({ queues: ['fence'], workerId: 'new', limit: 1, leaseMs: 30_000, now: Date.now() });
    assert.equal(second.jobs[0]?.id, fenced!.id);
    const item = (token: string) => ({ id: fenced!.id, token, result: '"x"', remove: false });
    assert.deepEqual(await s.completeMany({ items: [item(first.jobs[0]!.lease.token)], now: Date.now() }), [{ status: 'stale' }]);
    assert.deepEqual(await s.completeMany({ items: [item(second.jobs[0]!.lease.token)], now: Date.now() }), [{ status: 'applied' }]);
    assert.equal((await s.getJob({ queue: 'fence', id: fenced!.id }))?.result, '"x"');

    // Transactional enqueue with the application's own client through the pooler.
    const app = new pg.Client({ connectionString: bouncer.url() });
    await app.connect();
    try {
      await app.query('BEGIN');
      const job = await q.addInTransaction(app, 'double', { n: 21 });
      await sleep(100);
      assert.equal(await q.getJob(job.id), null, 'invisible before the commit');
      await app.query('COMMIT');
      assert.equal(await q.waitForResult(job.id, { timeoutMs: 15_000 }), 42);
    } finally {
      await app.end();
    }

    assert.deepEqual(errors.map((e) => e.message), [], 'the worker saw no store errors');
    assert.equal(store.signalMode, expect.mode);
    // Workers keep their long safety-net poll only while LISTEN works.
    assert.equal(store.signalsReliable(), expect.mode === 'listen');
  } finally {
    await Promise.all([producer.close({ timeoutMs: 2000 }), consumer.close({ timeoutMs: 2000 })]);
  }
}

describe('postgres through PgBouncer (transaction pooling)', () => {
  it('with a direct listenUrl: LISTEN works, jobs run once, waitForResult, fencing, transactional enqueue', async () => {
    const schema = uniqueSchema();
    noListenWarnings.length = 0;
    try {
      await engineFlow(bouncer.url({ schema, poolSize: '4', listenUrl: DATABASE_URL }), { mode: 'listen', wakeWithinMs: 1000 });
      assert.deepEqual(noListenWarnings, []);
    } finally {
      await dropSchema(schema);
    }
  });

  it('without listenUrl: LISTEN is found useless, one CONVEYOR_NO_LISTEN warning per store, workers wake by polling', async () => {
    const schema = uniqueSchema();
    noListenWarnings.length = 0;
    try {
      await engineFlow(bouncer.url({ schema, poolSize: '4' }), { mode: 'poll', wakeWithinMs: 2500 });
      // Two stores subscribed (the consumer's worker, the producer's waitForResult): one warning each, however often they subscribed.
      assert.equal(noListenWarnings.length, 2, noListenWarnings.map((w) => w.message).join('\n'));
      assert.match(noListenWarnings[0]!.message, /connection pooler/);
      assert.match(noListenWarnings[0]!.message, /listenUrl/);
    } finally {
      await dropSchema(schema);
    }
  });

  it('with listen=false and preparedStatements=false: polling from the start, no warning, no named statements', async () => {
    const schema = uniqueSchema();
    noListenWarnings.length = 0;
    const cv = await Conveyor.open({ url: bouncer.url({ schema, listen: 'false', preparedStatements: 'false', signalPollMs: '200' }) });
    try {
      const store = pgStore(cv);
      assert.equal(store.signalMode, 'poll');
      assert.equal(store.preparedStatements, false);
      const changed: number[] = [];
      const unsubscribe = store.subscribe((s) => {
        if (s.type === 'changed') changed.push(Date.now());
      });
      await sleep(1100);
      unsubscribe();
      assert.ok(changed.length >= 3 && changed.length <= 7, `polled ${changed.length} times in 1.1 s at 200 ms`);
      const count = changed.length;
      await sleep(500);
      assert.equal(changed.length, count, 'no polling without subscribers');
      assert.equal(store.listening, false);
    } finally {
      await cv.close();
      await dropSchema(schema);
    }
    await engineFlow(bouncer.url({ schema, listen: 'false', preparedStatements: 'false' }), { mode: 'poll', wakeWithinMs: 2500 });
    await dropSchema(schema);
    assert.deepEqual(noListenWarnings, []);
  });

  it('named prepared statements that PgBouncer mixes up are detected, and the store switches to unnamed ones without an error', async () => {
    const schema = uniqueSchema();
    // Several pools of 6 over 4 shared server connections: a statement prepared by one
    // client meets the server connection of another sooner or later.
    const cvs = await Promise.all([0, 1, 2].map(() => Conveyor.open({ url: bouncer.url({ schema, poolSize: '6', listen: 'false' }) })));
    try {
      for (let round = 0; round < 20; round++) {
        await Promise.all(
          cvs.flatMap((cv, i) => [cv.queue('ps').add('x', { round, i }), cv.queue('ps').getCounts(), cv.store.ping(), cv.queue('ps').getJobs('waiting', { limit: 5 })]),
        );
      }
      assert.equal((await cvs[0]!.queue('ps').getCounts()).waiting, 60);
      assert.ok(
        cvs.some((cv) => !pgStore(cv).preparedStatements),
        'at least one store met a mixed-up prepared statement and switched to unnamed statements',
      );
    } finally {
      await Promise.all(cvs.map((cv) => cv.close()));
      await dropSchema(schema);
    }
  });

  it('url parameters: listen, listenUrl (URL-encoded, password redacted), preparedStatements, signalPollMs', () => {
    const direct = 'postgres://app:s3cret@db.internal:5432/app?sslmode=require';
    const url = `postgres://app:s3cret@pgbouncer:6432/app?schema=jobs&listenUrl=${encodeURIComponent(direct)}&listen=true&preparedStatements=false&signalPollMs=500`;
    const parsed = parsePostgresUrl(url);
    assert.equal(parsed.connectionString, 'postgres://app:s3cret@pgbouncer:6432/app');
    assert.equal(parsed.listenUrl, direct);
    assert.equal(parsed.listen, true);
    assert.equal(parsed.preparedStatements, false);
    assert.equal(parsed.signalPollMs, 500);
    assert.ok(!redactUrl(url).includes('s3cret'), redactUrl(url));
    assert.ok(!redactUrl(`postgres://pgb/app?listenUrl=${direct}`).includes('s3cret'));
    const bad = (u: string): void =>
      assert.throws(
        () => parsePostgresUrl(u),
        (e: unknown) => e instanceof ConveyorError && e.code === 'INVALID_ARGUMENT' && !e.message.includes('s3cret'),
        u,
      );
    bad('postgres://h/db?listen=maybe');
    bad('postgres://h/db?preparedStatements=yes');
    bad('postgres://h/db?signalPollMs=5');
    bad(`postgres://h/db?listenUrl=${encodeURIComponent('mysql://u:s3cret@h/db')}`);
  });
});
