/**
 * Transactional enqueue (the outbox pattern) on PostgreSQL: jobs added with the caller's
 * own `pg` client inside the caller's transaction exist if and only if it commits; workers
 * and other processes hear of them only on commit; jobId deduplication holds inside the
 * transaction and against concurrent ones; validation is the same as `add`'s; stores
 * without the capability refuse with NOT_SUPPORTED.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Conveyor, ConveyorError, type TransactionClient } from '../src/index.ts';
import type { StoreSignal } from '../src/store/contract.ts';
import type { PostgresStore } from '../src/stores/postgres/index.ts';
import { adminQuery, DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const isCode = (code: string) => (e: unknown): boolean => e instanceof ConveyorError && e.code === code;

describe('postgres: transactional enqueue', () => {
  const schema = uniqueSchema();
  const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}&poolSize=4`;
  /** The application's own pool: its transactions are where jobs get added. */
  let app: pg.Pool;
  /** The producer (the web app) and, as a separate store, another process. */
  let cv: Conveyor;
  let other: Conveyor;
  const heardByOther: Array<{ at: number; signal: StoreSignal }> = [];
  let unsubscribeOther: () => void;

  before(async () => {
    app = new pg.Pool({ connectionString: DATABASE_URL, max: 4 });
    cv = await Conveyor.open({ url });
    other = await Conveyor.open({ url });
    await app.query(`CREATE TABLE "${schema}".orders (id serial PRIMARY KEY, item text NOT NULL)`);
    unsubscribeOther = other.store.subscribe((signal) => heardByOther.push({ at: Date.now(), signal }));
    await waitUntil(() => (other.store as PostgresStore).listening, "the other store's LISTEN connection");
  });

  after(async () => {
    unsubscribeOther();
    await Promise.all([cv.close({ timeoutMs: 2000 }), other.close({ timeoutMs: 2000 })]);
    await app.end();
    await dropSchema(schema);
  });

  /** Runs `fn` in a transaction on one client of the app's pool; commits, or rolls back when it throws. */
  async function inTransaction<T>(fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const client = await app.connect();
    try {
      await client.query('BEGIN');
      const value = await fn(client);
      await client.query('COMMIT');
      return value;
    } catch (err) {
      await client.query('ROLLBACK');
      throw err;
    } finally {
      client.release();
    }
  }

  it('commit: the job appears only then, and an idle worker of the same store wakes on the commit', async () => {
    const q = cv.queue<{ orderId: number }, string>('ship');
    const started: Array<{ id: string; at: number }> = [];
    // A 60 s safety-net poll: only the NOTIFY sent in the transaction can wake it in time.
    const worker = cv.worker<{ orderId: number }, string>(
      'ship',
      async (job) => {
        started.push({ id: job.id, at: Date.now() });
        return `shipped ${job.data.orderId}`;
      },
      { pollMs: 60_000 },
    );
    const errors: Error[] = [];
    worker.on('error', (e) => errors.push(e));
    await waitUntil(() => (cv.store as PostgresStore).listening, 'the LISTEN connection');
    await sleep(100); // the worker has claimed nothing and sleeps

    const client = await app.connect();
    let commitSentAt = 0;
    let committedAt = 0;
    let jobId: string;
    try {
      await client.query('BEGIN');
      const order = await client.query<{ id: number }>(`INSERT INTO "${schema}".orders (item) VALUES ('book') RETURNING id`);
      const orderId = order.rows[0]!.id;
      const job = await q.addInTransaction(client, 'ship-order', { orderId });
      jobId = job.id;
      assert.match(job.id, /^\d+$/);
      assert.equal(job.state, 'waiting');
      assert.deepEqual(job.data, { orderId });

      // Not committed: invisible to everyone else, not run, not announced.
      await sleep(300);
      assert.equal(await q.getJob(job.id), null);
      assert.equal((await q.getCounts()).waiting, 0);
      assert.equal(started.length, 0, "nothing ran before the commit");
      assert.equal(heardByOther.filter((h) => h.signal.type === 'enqueued' && h.signal.queue === 'ship').length, 0, 'no signal before the commit');

      commitSentAt = Date.now();
      await client.query('COMMIT');
      committedAt = Date.now();
    } finally {
      client.release();
    }
    assert.equal(await q.waitForResult(jobId, { timeoutMs: 10_000 }), `shipped 1`);
    const run = started.find((s) => s.id === jobId);
    assert.ok(run !== undefined);
    assert.ok(run.at - committedAt < 2000, `the worker woke ${run.at - committedAt} ms after the commit (its own poll is 60 s)`);
    const heardOf = () => heardByOther.find((h) => h.signal.type === 'enqueued' && h.signal.queue === 'ship');
    await waitUntil(() => heardOf() !== undefined, 'the other process to hear of the job');
    assert.ok(heardOf()!.at >= commitSentAt, 'the other process heard of the job only with the commit');
    assert.deepEqual(errors, []);
    await worker.close();
  });

  it('rollback: no job, no signal, nothing written to the job tables', async () => {
    const q = cv.queue<{ n: number }>('rolled-back');
    const ran: string[] = [];
    const worker = other.worker('rolled-back', async (job) => void ran.push(job.id), { pollMs: 60_000 });
    heardByOther.length = 0;
    const ids: string[] = [];
    await assert.rejects(
      inTransaction(async (client) => {
        await client.query(`INSERT INTO "${schema}".orders (item) VALUES ('lamp')`);
        ids.push((await q.addInTransaction(client, 'one', { n: 1 }, { jobId: 'rb-1' })).id);
        ids.push(...(await q.addBulkInTransaction(client, [{ name: 'two', data: { n: 2 } }, { name: 'three', data: { n: 3 }, opts: { delay: 10 } }])).map((j) => j.id));
        throw new Error('the app changed its mind');
      }),
      /changed its mind/,
    );
    assert.equal(ids.length, 3);
    await sleep(500);
    for (const id of ids) assert.equal(await q.getJob(id), null, `job ${id}`);
    assert.deepEqual(await q.getCounts(), { waiting: 0, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 });
    const rows = await adminQuery<{ n: string }>(
      `SELECT (SELECT count(*) FROM "${schema}".jobs j JOIN "${schema}".queues q ON q.id = j.queue WHERE q.name = 'rolled-back')
            + (SELECT count(*) FROM "${schema}".jobs_done j JOIN "${schema}".queues q ON q.id = j.queue WHERE q.name = 'rolled-back') AS n`,
    );
    assert.equal(Number(rows[0]!.n), 0);
    assert.equal((await adminQuery<{ n: string }>(`SELECT count(*) AS n FROM "${schema}".orders WHERE item = 'lamp'`))[0]!.n, '0');
    assert.deepEqual(heardByOther.filter((h) => h.signal.type === 'enqueued'), [], 'nothing was announced');
    assert.deepEqual(ran, []);
    await worker.close();
    // The jobId is free: the rolled-back job never held it.
    const again = await q.add('one', { n: 1 }, { jobId: 'rb-1' });
    assert.equal(again.id, 'rb-1');
    assert.deepEqual((await q.getJob('rb-1'))?.data, { n: 1 });
  });

  it('jobId deduplication inside a transaction: against committed jobs, earlier adds of the same transaction, and a concurrent transaction', async () => {
    const q = cv.queue<{ v: string }>('dedup');
    // A live committed job keeps its id: the transaction gets the existing job, writes nothing.
    await q.add('x', { v: 'committed' }, { jobId: 'order-1' });
    const dup = await inTransaction((client) => q.addInTransaction(client, 'x', { v: 'in-tx' }, { jobId: 'order-1' }));
    assert.equal(dup.id, 'order-1');
    assert.deepEqual(dup.data, { v: 'committed' }, 'the existing job is returned');
    assert.equal((await q.getJob('order-1'))?.data.v, 'committed');

    // Twice in one transaction (singly and in a bulk): the first wins.
    const [a, b, c] = await inTransaction(async (client) => {
      const first = await q.addInTransaction(client, 'x', { v: 'first' }, { jobId: 'order-2' });
      const second = await q.addInTransaction(client, 'x', { v: 'second' }, { jobId: 'order-2' });
      const bulk = await q.addBulkInTransaction(client, [
        { name: 'x', data: { v: 'bulk-a' }, opts: { jobId: 'order-3' } },
        { name: 'x', data: { v: 'bulk-b' }, opts: { jobId: 'order-3' } },
      ]);
      return [first, second, ...bulk];
    });
    assert.deepEqual([a!.id, b!.id, c!.id], ['order-2', 'order-2', 'order-3']);
    assert.equal((await q.getJob('order-2'))?.data.v, 'first');
    assert.equal((await q.getJob('order-3'))?.data.v, 'bulk-a');
    assert.equal((await q.getCounts()).waiting, 3);

    // Two transactions race for one id: the second waits for the first, then gets a duplicate.
    const tx1 = await app.connect();
    const tx2 = await app.connect();
    try {
      await tx1.query('BEGIN');
      await tx2.query('BEGIN');
      await q.addInTransaction(tx1, 'x', { v: 'tx1' }, { jobId: 'order-4' });
      let settled = false;
      const second = q.addInTransaction(tx2, 'x', { v: 'tx2' }, { jobId: 'order-4' }).finally(() => {
        settled = true;
      });
      await sleep(300);
      assert.equal(settled, false, 'the second transaction waits for the first');
      await tx1.query('COMMIT');
      const job = await second;
      assert.equal(job.id, 'order-4');
      assert.equal(job.data.v, 'tx1');
      await tx2.query('COMMIT');
    } finally {
      tx1.release();
      tx2.release();
    }
    const live = await q.getJobs(['waiting'], { name: 'x', limit: 100 });
    assert.deepEqual(live.jobs.map((j) => j.id).sort(), ['order-1', 'order-2', 'order-3', 'order-4']);
  });

  it('a plain pg.Client works too; delayed jobs, priorities and options are stored as with add', async () => {
    const q = cv.queue<{ k: number }>('options');
    const client = new pg.Client({ connectionString: DATABASE_URL });
    await client.connect();
    try {
      await client.query('BEGIN');
      const job = await q.addInTransaction(client, 'later', { k: 1 }, { delay: 60_000, priority: 7, attempts: 3 });
      await client.query('COMMIT');
      const stored = await q.getJob(job.id);
      assert.equal(stored?.state, 'delayed');
      assert.equal(stored?.priority, 7);
      assert.equal(stored?.opts.attempts, 3);
    } finally {
      await client.end();
    }
  });

  it('bad input is refused before anything reaches the transaction, which stays usable', async () => {
    const q = cv.queue<unknown>('validation');
    await inTransaction(async (client) => {
      await assert.rejects(q.addInTransaction(client, 'x', {}, { priorty: 1 } as never), isCode('UNKNOWN_OPTION'));
      await assert.rejects(q.addInTransaction(client, 'x', { f: () => 1 }), isCode('NOT_SERIALIZABLE'));
      await assert.rejects(q.addInTransaction(client, '', {}), isCode('INVALID_ARGUMENT'));
      await assert.rejects(q.addBulkInTransaction(client, [{ name: 'ok', data: 1 }, { name: 'bad', data: 1n }]), isCode('NOT_SERIALIZABLE'));
      await assert.rejects(q.addBulkInTransaction(client, 'nope' as never), isCode('INVALID_ARGUMENT'));
      await assert.rejects(q.addInTransaction({} as never, 'x', {}), isCode('INVALID_ARGUMENT'));
      await assert.rejects(q.addInTransaction(null as never, 'x', {}), isCode('INVALID_ARGUMENT'));
      // The transaction was never touched, so it can go on and commit.
      await q.addInTransaction(client, 'x', { ok: true });
    });
    assert.equal((await q.getCounts()).waiting, 1);
    assert.deepEqual(await inTransaction((client) => q.addBulkInTransaction(client, [])), []);
  });

  it('a failure inside the transaction is a typed StoreError and leaves the rollback to the caller', async () => {
    const q = cv.queue<unknown>('aborted');
    const client = await app.connect();
    try {
      await client.query('BEGIN');
      await client.query('SELECT 1/0').catch(() => undefined); // the app's transaction is now aborted
      await assert.rejects(q.addInTransaction(client, 'x', {}), (e: unknown) => isCode('STORE_ERROR')(e) && /25P02|aborted/.test((e as Error).message));
      await client.query('ROLLBACK');
    } finally {
      client.release();
    }
    assert.equal((await q.getCounts()).waiting, 0);
  });

  it('stores without the capability refuse with NOT_SUPPORTED and write nothing', async () => {
    const lite = await Conveyor.open({ url: 'sqlite::memory:' });
    try {
      assert.equal(lite.store.capabilities.has('transactionalEnqueue'), false);
      assert.equal(cv.store.capabilities.has('transactionalEnqueue'), true);
      const calls: string[] = [];
      const client: TransactionClient = {
        query: async (text: string) => {
          calls.push(text);
          return { rows: [] };
        },
      };
      const q = lite.queue('lite');
      await assert.rejects(q.addInTransaction(client, 'x', {}), (e: unknown) => isCode('NOT_SUPPORTED')(e) && (e as ConveyorError).retryable === false);
      await assert.rejects(q.addBulkInTransaction(client, [{ name: 'x', data: {} }]), isCode('NOT_SUPPORTED'));
      assert.deepEqual(calls, []);
      assert.equal((await q.getCounts()).waiting, 0);
    } finally {
      await lite.close();
    }
  });
});
