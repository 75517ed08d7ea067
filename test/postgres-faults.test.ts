/**
 * Connection faults while workers run, on the PostgreSQL store:
 *   (a) every backend of the workers' stores is killed with pg_terminate_backend, over and
 *       over (shared server, own schema, own application_name);
 *   (b) the PostgreSQL server is stopped, left down for 2 s and started again (a PRIVATE
 *       server created for this file, since other test files share the main one), with
 *       real worker processes.
 * Workers must report the errors (typed, retryable), back off, reconnect and carry on: no
 * job lost, none completed twice, none left active after its lease, and idle workers must
 * hear of new jobs again through LISTEN after the restart.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { Conveyor, ConveyorError, type Job } from '../src/index.ts';
import type { PostgresStore } from '../src/stores/postgres/index.ts';
import { createPgInstance } from './helpers/pg-instance.ts';
import { adminQuery, DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';
import { fixture, spawnChild } from './helpers/processes.ts';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let ok = false;
    try {
      ok = await cond();
    } catch {
      ok = false; // the server may be down right now
    }
    if (ok) return;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function withParams(url: string, params: Record<string, string>): string {
  return `${url}${url.includes('?') ? '&' : '?'}${new URLSearchParams(params).toString()}`;
}

// ------------------------------------------------------------------ child processes

const CHILD = fixture('pg-engine-worker.ts');

/** Jobs in each state, and how many finished jobs record more than one attempt, read directly from the tables. */
async function tableState(query: (sql: string) => Promise<Array<Record<string, unknown>>>, schema: string) {
  const rows = await query(
    `SELECT (SELECT count(*) FROM "${schema}".jobs WHERE state = 0) AS waiting,
            (SELECT count(*) FROM "${schema}".jobs WHERE state = 1) AS active,
            (SELECT count(*) FROM "${schema}".jobs WHERE state = 2) AS delayed,
            (SELECT count(*) FROM "${schema}".jobs_done WHERE state = 3) AS completed,
            (SELECT count(*) FROM "${schema}".jobs_done WHERE state <> 3) AS other,
            (SELECT count(*) FROM "${schema}".jobs_done WHERE attempts_made <> 1) AS multi_attempt`,
  );
  const r = rows[0]!;
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Number(v)])) as Record<
    'waiting' | 'active' | 'delayed' | 'completed' | 'other' | 'multi_attempt',
    number
  >;
}

describe('postgres: connection faults while workers run', () => {
  it('(a) backends killed again and again: errors reported, workers reconnect, every job completed exactly once', async () => {
    const schema = uniqueSchema();
    const app = `cv_fault_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
    const workersUrl = withParams(DATABASE_URL, { schema, poolSize: '4', application_name: app });
    const producer = await Conveyor.open({ url: withParams(DATABASE_URL, { schema, poolSize: '2' }) });
    const cvs = await Promise.all([0, 1].map(() => Conveyor.open({ url: workersUrl })));
    const N = 600;
    const LEASE_MS = 1500;
    const runs = new Map<string, number>();
    const completed = new Map<string, number>();
    const errors: Error[] = [];
    try {
      const q = producer.queue<{ i: number }>('faults');
      const jobs = await q.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'work', data: { i } })));
      for (const cv of cvs) {
        const worker = cv.worker<{ i: number }>(
          'faults',
          async (job) => {
            runs.set(job.id, (runs.get(job.id) ?? 0) + 1);
            await sleep(40 + Math.random() * 40);
          },
          { concurrency: 4, leaseMs: LEASE_MS, maxStalls: 1000, pollMs: 1000 },
        );
        worker.on('completed', (job: Job<{ i: number }>) => completed.set(job.id, (completed.get(job.id) ?? 0) + 1));
        worker.on('error', (err) => errors.push(err));
      }
      await waitUntil(() => completed.size >= 20, 'the workers to get going', 10_000);

      // Kill every backend of the workers' stores (pools and LISTEN connections) every 150 ms,
      // until 90% of the jobs are done (at most 15 s).
      let rounds = 0;
      let killed = 0;
      const killUntil = Date.now() + 15_000;
      while (Date.now() < killUntil && completed.size < N * 0.9) {
        const rows = await adminQuery<{ ok: boolean }>(
          'SELECT pg_terminate_backend(pid) AS ok FROM pg_stat_activity WHERE application_name = $1 AND pid <> pg_backend_pid()',
          [app],
        );
        if (rows.length > 0) rounds++;
        killed += rows.length;
        await sleep(150);
      }
      const doneDuringKills = completed.size;

      await waitUntil(async () => (await q.getCounts()).completed === N, `all ${N} jobs completed`, 30_000);
      const state = await tableState(async (sql) => adminQuery(sql), schema);
      assert.deepEqual(state, { waiting: 0, active: 0, delayed: 0, completed: N, other: 0, multi_attempt: 0 }, 'every job completed, once');

      assert.ok(rounds >= 10 && killed >= 20, `backends were killed (${killed} in ${rounds} rounds)`);
      assert.ok(doneDuringKills < N, 'the kills hit a queue that still had work');
      for (const job of jobs) {
        assert.ok((runs.get(job.id) ?? 0) >= 1, `job ${job.id} ran`);
        assert.ok((completed.get(job.id) ?? 0) <= 1, `job ${job.id} reported completed ${completed.get(job.id)} times`);
      }
      assert.ok(errors.length > 0, 'the workers reported the faults');
      const untyped = errors.filter((e) => !(e instanceof ConveyorError && e.code === 'STORE_UNAVAILABLE' && e.retryable));
      assert.deepEqual(untyped.map((e) => `${e.name}: ${e.message}`), [], 'every fault is reported as a retryable STORE_UNAVAILABLE');
      // Afterwards the stores are whole again: LISTEN came back, new jobs run at once.
      await waitUntil(() => cvs.every((cv) => (cv.store as PostgresStore).listening), 'LISTEN connections back', 15_000);
      const late = await q.add('work', { i: -1 });
      await q.waitForResult(late.id, { timeoutMs: 10_000 });
    } finally {
      await Promise.all([...cvs, producer].map((cv) => cv.close({ timeoutMs: 5000 })));
      await dropSchema(schema);
    }
  });

  it('(b) the server restarts under two worker processes: they report it, reconnect, finish every job once, and hear new jobs again', async () => {
    const instance = await createPgInstance();
    try {
      const schema = 'faults';
      const url = withParams(instance.url, { schema });
      const admin = new pg.Pool({ connectionString: instance.url, max: 1 });
      admin.on('error', () => undefined);
      const query = async (sql: string) => (await admin.query(sql)).rows as Array<Record<string, unknown>>;
      const producer = await Conveyor.open({ url });
      try {
        const q = producer.queue<{ i: number }>('restart');
        const N = 300;
        await q.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'work', data: { i } })));
        const children = [0, 1].map((i) => spawnChild(CHILD, [url, 'restart', '4', '25', '2000'], { name: `worker-${i}` }));
        const count = (kind: string): number => children.reduce((n, c) => n + c.lines.filter((l) => l.startsWith(`${kind} `)).length, 0);
        await waitUntil(() => count('completed') >= 40, 'some jobs completed before the restart', 20_000);

        instance.stop('fast');
        await sleep(2000);
        instance.start();

        await waitUntil(async () => (await tableState(query, schema)).completed === N, `all ${N} jobs completed after the restart`, 30_000);
        for (const child of children) {
          assert.ok(
            child.lines.some((l) => l.startsWith('error STORE_UNAVAILABLE ')),
            `${child.name} reported the outage: ${child.lines.filter((l) => l.startsWith('error')).slice(0, 3).join(' | ')}`,
          );
          const untyped = child.lines.filter((l) => l.startsWith('error ') && !l.startsWith('error STORE_UNAVAILABLE '));
          assert.deepEqual(untyped, [], `${child.name}: every error is a typed STORE_UNAVAILABLE`);
        }

        // Idle workers (60 s safety-net poll) hear of new jobs again: LISTEN reconnected.
        await waitUntil(
          async () => Number((await query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'conveyor:listen'`))[0]!.n) >= 2,
          'the workers to LISTEN again',
          15_000,
        );
        await sleep(500);
        const M = 20;
        const addedAt = Date.now();
        await q.addBulk(Array.from({ length: M }, (_, i) => ({ name: 'work', data: { i: N + i } })));
        await waitUntil(async () => (await tableState(query, schema)).completed === N + M, 'the jobs added after the restart', 10_000);
        assert.ok(Date.now() - addedAt < 5000, `new jobs ran within ${Date.now() - addedAt} ms`);

        const state = await tableState(query, schema);
        assert.deepEqual(state, { waiting: 0, active: 0, delayed: 0, completed: N + M, other: 0, multi_attempt: 0 });
        const completions = new Map<string, number>();
        for (const child of children) {
          for (const line of child.lines) {
            if (line.startsWith('completed ')) {
              const id = line.split(' ')[1]!;
              completions.set(id, (completions.get(id) ?? 0) + 1);
            }
          }
        }
        const twice = [...completions].filter(([, n]) => n > 1);
        assert.deepEqual(twice, [], 'no job was reported completed twice');
        assert.ok(completions.size >= N + M - 10, `completions reported for ${completions.size} of ${N + M} jobs`);

        for (const child of children) {
          child.proc.kill('SIGTERM');
          assert.equal(await child.exited, 0, `${child.name} exits cleanly; stderr: ${child.stderr.join('')}`);
          assert.equal(child.lines.at(-1), 'closed');
        }
      } finally {
        await producer.close({ timeoutMs: 5000 });
        await admin.end();
      }
    } catch (err) {
      throw new Error(`${err instanceof Error ? err.message : String(err)}\n--- private server log (tail) ---\n${instance.log().split('\n').slice(-30).join('\n')}`, { cause: err });
    } finally {
      instance.destroy();
    }
  });
});
