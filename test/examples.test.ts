/**
 * The examples in examples/, run as the README says (`node examples/<file>.ts`), as real
 * subprocesses against real stores, each checked by its effect in the store:
 *   - quickstart.ts: runs to the end on the default store of its working directory
 *   - express-producer.ts + worker.ts: HTTP posts become jobs that another process runs
 *     (SQLite file, and PostgreSQL)
 *   - cleanup-cron.ts: two copies at once keep one self-rescheduling chain and clean old
 *     completed jobs (SQLite file)
 *   - transactional-outbox.ts: the committed order has its job, the rolled-back one has
 *     neither row nor job (PostgreSQL)
 * Every spawned process is killed in `after`.
 */
import { it, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { DATABASE_URL, adminQuery, dropSchema, uniqueSchema } from './helpers/postgres.ts';

const EXAMPLES = path.join(import.meta.dirname, '..', 'examples');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-examples-'));

const live = new Set<ChildProcess>();
after(() => {
  for (const p of live) p.kill('SIGKILL');
  fs.rmSync(dir, { recursive: true, force: true });
});

interface Running {
  proc: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

/** Starts `node examples/<file>` with only the given conveyor settings in its environment. */
function example(file: string, env: Record<string, string>, cwd = dir): Running {
  const base: NodeJS.ProcessEnv = { ...process.env };
  for (const k of ['CONVEYOR_URL', 'DATABASE_URL', 'PORT', 'EXAMPLE_RUN_MS', 'CONVEYOR_DEBUG']) delete base[k];
  const proc = spawn(process.execPath, [path.join(EXAMPLES, file)], { env: { ...base, ...env }, cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (out += c));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      live.delete(proc);
      resolve(code);
    }),
  );
  return { proc, output: () => out, exited };
}

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Waits for an exit within `ms` (killing it after), returning the code. */
async function exitCode(r: Running, ms = 30_000): Promise<number | null> {
  const timer = setTimeout(() => r.proc.kill('SIGKILL'), ms);
  try {
    return await r.exited;
  } finally {
    clearTimeout(timer);
  }
}

/** Producer and worker processes on one store: posted signups become completed jobs. */
async function producerAndWorker(url: string): Promise<void> {
  const cv = await Conveyor.open({ url }); // migrates the store first (a PostgreSQL schema)
  try {
    const producer = example('express-producer.ts', { CONVEYOR_URL: url, PORT: '0' });
    const worker = example('worker.ts', { CONVEYOR_URL: url });
    let base = '';
    await waitUntil(() => {
      base = /listening on (http:\/\/\S+)/.exec(producer.output())?.[1] ?? '';
      return base !== '';
    }, `the producer to listen (output: ${producer.output()})`);
    await waitUntil(() => worker.output().includes('worker running'), `the worker to start (output: ${worker.output()})`);

    const emails = ['ada@example.com', 'bob@example.com', 'cy@example.com', 'di@example.com', 'ed@example.com'];
    const ids: string[] = [];
    for (const email of emails) {
      const res = await fetch(`${base}/signups`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ email }) });
      assert.equal(res.status, 202);
      ids.push(((await res.json()) as { jobId: string }).jobId);
    }
    const bad = await fetch(`${base}/signups`, { method: 'POST', body: '{"email": 42}' });
    assert.equal(bad.status, 400);
    const notJson = await fetch(`${base}/signups`, { method: 'POST', body: '{email' });
    assert.equal(notJson.status, 400);

    const queue = cv.queue<{ to: string }, { sentAt: number }>('email');
    await waitUntil(async () => (await queue.getCounts()).completed === emails.length, `${emails.length} completed jobs (worker: ${worker.output()})`);
    for (const [i, id] of ids.entries()) {
      const job = await queue.getJob(id);
      assert.equal(job?.state, 'completed');
      assert.equal(job?.name, 'welcome');
      assert.deepEqual(job?.data, { to: emails[i] });
      assert.equal(job?.maxAttempts, 5);
      assert.equal(typeof job?.result?.sentAt, 'number');
      assert.match((await queue.getJobLogs(id)).entries[0]?.message ?? '', new RegExp(`sending welcome to ${emails[i]}`));
    }
    assert.equal((await queue.getCounts()).failed, 0);
    const shown = await fetch(`${base}/jobs/${ids[0]}`);
    assert.equal(shown.status, 200);
    assert.equal(((await shown.json()) as { state: string }).state, 'completed');
    assert.equal((await fetch(`${base}/jobs/nope`)).status, 404);
    for (const email of emails) assert.match(worker.output(), new RegExp(`sent welcome to ${email}`));

    // Both stop gracefully on SIGTERM.
    producer.proc.kill('SIGTERM');
    worker.proc.kill('SIGTERM');
    assert.equal(await exitCode(producer), 0, producer.output());
    assert.equal(await exitCode(worker), 0, worker.output());
    assert.match(producer.output(), /producer stopped/);
  } finally {
    await cv.close();
  }
}

describe('examples/express-producer.ts + examples/worker.ts', () => {
  it('on a SQLite file: POST /signups adds jobs that the worker process runs', async () => {
    await producerAndWorker(`sqlite://${path.join(dir, 'signups.db')}`);
  });

  it('on PostgreSQL: the same', async () => {
    const schema = uniqueSchema();
    try {
      await producerAndWorker(`${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}`);
    } finally {
      await dropSchema(schema);
    }
  });
});

describe('examples/quickstart.ts', () => {
  it('runs to the end on the default store of its working directory', async () => {
    const cwd = path.join(dir, 'quickstart');
    fs.mkdirSync(cwd);
    const run = example('quickstart.ts', {}, cwd);
    assert.equal(await exitCode(run), 0, run.output());
    const out = run.output();
    assert.match(out, /result of welcome: \{ sent: true \}/);
    assert.match(out, /completed reminder/);
    assert.ok(fs.existsSync(path.join(cwd, '.conveyor', 'conveyor.db')));
  });
});

describe('examples/cleanup-cron.ts', () => {
  it('two copies keep one chain that repeats and cleans old completed jobs', async () => {
    const url = `sqlite://${path.join(dir, 'cron.db')}`;
    const cv = await Conveyor.open({ url });
    try {
      // 20 completed email jobs to clean, and a waiting one that must stay.
      const email = cv.queue('email');
      await email.addBulk(Array.from({ length: 20 }, (_, i) => ({ name: 'send', data: { i } })));
      const w = cv.worker('email', async () => 'ok', { concurrency: 5 });
      await waitUntil(async () => (await email.getCounts()).completed === 20, '20 completed email jobs');
      await w.close();
      await email.add('send', { i: 20 }, { delay: 3_600_000 });

      const env = { CONVEYOR_URL: url, CLEANUP_EVERY_MS: '300', CLEANUP_OLDER_THAN_MS: '0', CLEANUP_QUEUES: 'email', EXAMPLE_RUN_MS: '3000' };
      const copies = [example('cleanup-cron.ts', env), example('cleanup-cron.ts', env)];
      for (const c of copies) assert.equal(await exitCode(c), 0, c.output());
      const output = copies.map((c) => c.output()).join('\n');
      assert.match(output, /removed 20 completed jobs older than 0 ms from email/);

      const counts = await email.getCounts();
      assert.equal(counts.completed, 0, 'old completed jobs were cleaned');
      assert.equal(counts.delayed, 1, 'other states are untouched');

      const maintenance = cv.queue<{ slot: number }>('maintenance');
      const { jobs } = await maintenance.getJobs(undefined, { limit: 100 });
      const done = jobs.filter((j) => j.state === 'completed');
      const pending = jobs.filter((j) => j.state === 'waiting' || j.state === 'delayed' || j.state === 'active');
      assert.ok(done.length >= 2, `the cleanup repeated (${done.length} runs; output: ${output})`);
      assert.equal(pending.length, 1, `one chain, with one next run scheduled: ${JSON.stringify(pending.map((j) => j.toJSON()))}`);
      assert.equal(pending[0]!.id, `cleanup-${pending[0]!.data.slot}`);
      for (const j of done) assert.equal(j.id, `cleanup-${j.data.slot}`);
      const slots = done.map((j) => j.data.slot).sort((a, b) => a - b);
      assert.ok(pending[0]!.data.slot > slots.at(-1)!, 'the scheduled run comes after every finished one');
    } finally {
      await cv.close();
    }
  });
});

describe('examples/transactional-outbox.ts', () => {
  it('on PostgreSQL: the committed order has its job, which ran; the rolled-back order has neither', async () => {
    const schema = uniqueSchema();
    const table = `${schema}_orders`;
    const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}`;
    try {
      const run = example('transactional-outbox.ts', { DATABASE_URL, CONVEYOR_URL: url, ORDERS_TABLE: table });
      assert.equal(await exitCode(run, 60_000), 0, run.output());
      assert.match(run.output(), /order \d+ \(book\) committed/);
      assert.match(run.output(), /rolled back: payment declined/);

      const orders = await adminQuery<{ id: number; item: string }>(`SELECT id, item FROM ${table} ORDER BY id`);
      assert.deepEqual(orders.map((o) => o.item), ['book']);
      const orderId = orders[0]!.id;

      const cv = await Conveyor.open({ url });
      try {
        const queue = cv.queue('order-confirmations');
        const { jobs } = await queue.getJobs(undefined, { limit: 10 });
        assert.deepEqual(
          jobs.map((j) => [j.id, j.state, j.data, j.result]),
          [[`confirm-${orderId}`, 'completed', { orderId }, { confirmed: orderId }]],
        );
      } finally {
        await cv.close();
      }
    } finally {
      await adminQuery(`DROP TABLE IF EXISTS ${table}`);
      await dropSchema(schema);
    }
  });
});
