/**
 * examples/remote-worker.py, the Python worker that docs/http-api.md describes, run as a
 * real subprocess against a real server on a loopback port (temp SQLite store, API keys on):
 * it long-polls, renews a lease shorter than a job, completes, retries and fails jobs as
 * their data asks, reports itself to the worker registry, and exits 0 on SIGTERM (also while
 * the server is unreachable and it is backing off).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { createApiKey } from '../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import { waitUntil } from './conformance/engine.ts';

const SCRIPT = path.join(import.meta.dirname, '..', 'examples', 'remote-worker.py');
const QUEUE = 'py-remote';

describe('examples/remote-worker.py against a real server', () => {
  let dir: string;
  let cv: Conveyor;
  let server: RunningServer;
  let worker: ChildProcess | undefined;
  const extra: ChildProcess[] = [];
  let output = '';
  let exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-pyworker-'));
    cv = await Conveyor.open({ url: `sqlite://${path.join(dir, 'conveyor.db')}` });
    // Maintenance every 200 ms: a lease the worker failed to renew would be recovered at once.
    server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0, maintenance: { intervalMs: 200 } });
    const key = await createApiKey(cv.store, { name: 'python-workers', scopes: ['consume'] });
    server.context.keys.invalidate();
    worker = spawn('python3', [SCRIPT], {
      env: {
        ...process.env,
        CONVEYOR_URL: server.url,
        CONVEYOR_KEY: key.key,
        CONVEYOR_QUEUES: `other,${QUEUE}`,
        CONVEYOR_BATCH: '4',
        CONVEYOR_LEASE_MS: '2400',
        CONVEYOR_WAIT_MS: '30000',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    worker.stdout!.on('data', (b: Buffer) => (output += b.toString()));
    worker.stderr!.on('data', (b: Buffer) => (output += b.toString()));
    exited = new Promise((resolve) => worker!.once('exit', (code, signal) => resolve({ code, signal })));
  });

  after(async () => {
    for (const child of [worker, ...extra]) if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await server?.close();
    await cv?.close({ timeoutMs: 2000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('drains 20 jobs over HTTP (completing, retrying and failing them as asked) and exits 0 on SIGTERM', async () => {
    // The worker is up and long-polling on an empty queue before any job exists.
    await waitUntil(async () => (await cv.store.listWorkers({ since: 0 })).some((w) => w.kind === 'remote' && w.queues.includes(QUEUE)), `the worker reports itself (output: ${output})`, 20_000);

    type Kind = { data: { n: number; sleepMs?: number; fail?: string }; attempts: number; want: 'completed' | 'failed'; attemptsMade: number };
    const kinds: Kind[] = [
      ...Array.from({ length: 13 }, (_, i): Kind => ({ data: { n: i }, attempts: 1, want: 'completed', attemptsMade: 1 })),
      { data: { n: 13, sleepMs: 5000 }, attempts: 1, want: 'completed', attemptsMade: 1 }, // twice its 2.4 s lease
      ...[14, 15].map((n): Kind => ({ data: { n, fail: 'first-attempt' }, attempts: 2, want: 'completed', attemptsMade: 2 })),
      ...[16, 17].map((n): Kind => ({ data: { n, fail: 'always' }, attempts: 2, want: 'failed', attemptsMade: 2 })),
      ...[18, 19].map((n): Kind => ({ data: { n, fail: 'permanent' }, attempts: 5, want: 'failed', attemptsMade: 1 })),
    ];
    const queue = cv.queue(QUEUE);
    const added = await queue.addBulk(kinds.map((k) => ({ name: 'demo', data: k.data, opts: { attempts: k.attempts } })));
    assert.equal(added.length, 20);

    await waitUntil(
      async () => {
        const c = await queue.getCounts();
        return c.completed + c.failed === 20;
      },
      `all 20 jobs finished (output: ${output})`,
      60_000,
    );
    const counts = await queue.getCounts();
    assert.deepEqual({ completed: counts.completed, failed: counts.failed, active: counts.active, waiting: counts.waiting }, { completed: 16, failed: 4, active: 0, waiting: 0 });

    for (const [i, job] of added.entries()) {
      const got = await queue.getJob(job.id);
      const want = kinds[i]!;
      assert.equal(got?.state, want.want, `job ${job.id} ${JSON.stringify(want.data)}`);
      assert.equal(got?.attemptsMade, want.attemptsMade, `attempts of job ${job.id} ${JSON.stringify(want.data)}`);
      assert.equal(got?.stalls, 0, `job ${job.id} never lost its lease (heartbeats)`);
      if (want.want === 'completed') {
        assert.deepEqual((got?.result as { echo: unknown }).echo, want.data);
      } else {
        assert.equal(got?.errors.length, want.attemptsMade);
        assert.equal(got?.errors[0]?.name, want.data.fail === 'permanent' ? 'PermanentError' : 'RuntimeError');
        assert.match(got?.errors[0]?.stack ?? '', /Traceback/);
      }
    }

    // Idle in a 30 s long poll: SIGTERM ends it at once, and the worker leaves the registry.
    const t0 = Date.now();
    worker!.kill('SIGTERM');
    const { code, signal } = await exited;
    assert.equal(signal, null, output);
    assert.equal(code, 0, output);
    assert.ok(Date.now() - t0 < 10_000, `exited ${Date.now() - t0} ms after SIGTERM`);
    assert.match(output, /stopped/);
    assert.ok(!(await cv.store.listWorkers({ since: 0 })).some((w) => w.queues.includes(QUEUE)), 'the worker removed itself from the registry');
  });

  it('keeps retrying while the server is unreachable, and still exits 0 at once on SIGTERM', async () => {
    // A port that was free a moment ago: every claim fails with "connection refused".
    const port = await new Promise<number>((resolve) => {
      const probe = net.createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as net.AddressInfo;
        probe.close(() => resolve(port));
      });
    });
    let log = '';
    const child = spawn('python3', [SCRIPT], { env: { ...process.env, CONVEYOR_URL: `http://127.0.0.1:${port}`, CONVEYOR_QUEUES: QUEUE }, stdio: ['ignore', 'pipe', 'pipe'] });
    extra.push(child);
    child.stderr.on('data', (b: Buffer) => (log += b.toString()));
    const done = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    await waitUntil(() => (log.match(/claim failed/g) ?? []).length >= 3, `three failed claims (output: ${log})`, 20_000);
    const t0 = Date.now();
    child.kill('SIGTERM');
    assert.equal(await done, 0, log);
    assert.ok(Date.now() - t0 < 5000, `exited ${Date.now() - t0} ms after SIGTERM`);
  });
});
