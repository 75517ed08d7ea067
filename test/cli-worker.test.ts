/**
 * `conveyor worker` and `conveyor demo` as real subprocesses (`node src/cli/main.ts …`) on
 * real SQLite files: a worker over HTTP through `conveyor serve` with an API key, a worker
 * on the store directly, graceful shutdown during a running job, bad handler folders, and
 * the demo reaching completed jobs in its metrics. Handler folders are written to a temp
 * directory (a TypeScript file with type annotations, run without a build step, and a
 * JavaScript one). Every spawned process is killed in `after`.
 */
import { it, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { cleanEnv as cleanConveyorEnv, expectStatus, json, runCli, startCli, type Result, type Running } from './helpers/cli.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-cli-worker-'));

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  return cleanConveyorEnv(extra, ['NODE_OPTIONS']);
}

/** Runs the CLI to completion (killed after 60 s). */
function cli(args: readonly string[], env: Record<string, string>, cwd = dir): Promise<Result> {
  return runCli(args, { env: cleanEnv(env), cwd });
}

/** A long-running CLI process (serve, worker, demo) with its output so far. */
function start(args: readonly string[], env: Record<string, string>, cwd = dir): Running {
  return startCli(args, { env: cleanEnv(env), cwd });
}

/** Polls `check` until it returns a value (not undefined), at most `ms`. */
async function eventually<T>(what: string, check: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > until) assert.fail(`${what}: not within ${ms} ms${last === undefined ? '' : ` (last error: ${String(last)})`}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** A handlers folder: payments.ts (TypeScript with type annotations) and email.js (one function per job name). */
function writeHandlers(name: string): string {
  const folder = path.join(dir, name);
  fs.mkdirSync(folder, { recursive: true });
  fs.writeFileSync(
    path.join(folder, 'payments.ts'),
    `import fs from 'node:fs';
interface Charge { amount: number; failIfExists?: string }
type Ctx = { log(message: string): Promise<void> };
export default async function charge(job: { data: Charge; name: string }, { log }: Ctx): Promise<{ charged: number }> {
  if (job.data.failIfExists !== undefined && fs.existsSync(job.data.failIfExists)) throw new Error('card declined (the flag file exists)');
  await log(\`charging \${job.data.amount}\`);
  return { charged: job.data.amount };
}
`,
  );
  fs.writeFileSync(
    path.join(folder, 'email.js'),
    `export default {
  welcome: async (job) => ({ sent: job.data.to }),
  slow: async (job, { signal }) => { await new Promise((r) => setTimeout(r, job.data.ms ?? 1000)); return { slept: true, aborted: signal.aborted }; },
};
`,
  );
  fs.writeFileSync(path.join(folder, 'README.md'), 'not a handler: skipped\n');
  fs.writeFileSync(path.join(folder, '_helpers.ts'), 'export const x = 1;\n');
  return folder;
}

async function jobsOf(queue: string, env: Record<string, string>): Promise<any[]> {
  return json(await cli(['jobs', 'ls', queue, '--json'], env)).jobs;
}

describe('conveyor worker', () => {
  it('over HTTP: serve + worker --server --key, add, jobs ls shows them completed; a failed job is retried with jobs retry', async () => {
    const env = { CONVEYOR_URL: `sqlite://${path.join(dir, 'http.db')}` };
    const handlers = writeHandlers('jobs-http');
    const consumer = json(await cli(['keys', 'create', '--name', 'worker', '--scopes', 'consume', '--json'], env));
    const reader = json(await cli(['keys', 'create', '--name', 'reader', '--scopes', 'read', '--json'], env));
    const server = start(['serve', '--port', '0', '--log-level', 'warn'], env);
    const base = (await server.waitFor(/^\s+API\s+(http:\/\/\S+)\/api\/v1$/m))[1]!;

    // A key without the consume scope, and a wrong key, fail at once with what to do.
    const weak = await cli(['worker', '--handlers', handlers, '--server', base, '--key', reader.key], {});
    expectStatus(weak, 1);
    assert.match(weak.stderr, /a worker needs 'consume'/);
    assert.match(weak.stderr, /next: create one .*conveyor keys create --name worker --scopes consume/);
    const wrong = await cli(['worker', '--handlers', handlers, '--server', base, '--key', 'cvk_0123456789abcdef_nope'], {});
    expectStatus(wrong, 1);
    assert.match(wrong.stderr, /refused the API key cvk_0123456789abcdef_\*\*\*/);

    const flag = path.join(dir, 'decline-card');
    fs.writeFileSync(flag, '');
    const added = [
      json(await cli(['add', 'payments', 'charge', '--data', '{"amount":42}', '--json'], env)),
      json(await cli(['add', 'email', 'welcome', '--data', '{"to":"ada@example.com"}', '--json'], env)),
      json(await cli(['add', 'payments', 'charge', '--data', JSON.stringify({ amount: 7, failIfExists: flag }), '--json'], env)),
    ];
    const worker = start(['worker', '--handlers', handlers, '--server', base, '--key', consumer.key, '--concurrency', '4'], {});
    try {
      await worker.waitFor(/Press Ctrl-C to stop/);
      assert.match(worker.stdout(), /2 queues from .*jobs-http \(a file per queue\)/);
      assert.match(worker.stdout(), /email\s+\S*email\.js: welcome, slow/);
      assert.match(worker.stdout(), /payments\s+\S*payments\.ts: every job name/);
      assert.match(worker.stdout(), /server\s+http:\/\/127\.0\.0\.1:\d+ over HTTP \(from --server\), API key cvk_[0-9a-f]{16}_\*\*\*/);
      assert.doesNotMatch(worker.stdout() + worker.stderr(), new RegExp(consumer.key.slice(22)), 'the key is never printed');

      const settled = await eventually('the three jobs finish', async () => {
        const [payments, email] = [await jobsOf('payments', env), await jobsOf('email', env)];
        const all = [...payments, ...email];
        return all.length === 3 && all.every((j) => j.state === 'completed' || j.state === 'failed') ? { payments, email } : undefined;
      });
      const byId = (q: any[], id: string) => q.find((j) => j.id === id);
      assert.equal(byId(settled.payments, added[0].id).state, 'completed');
      assert.deepEqual(byId(settled.payments, added[0].id).result, { charged: 42 });
      assert.deepEqual(byId(settled.email, added[1].id).result, { sent: 'ada@example.com' });
      const declined = byId(settled.payments, added[2].id);
      assert.equal(declined.state, 'failed');
      assert.match(declined.errors[0].message, /card declined/);
      await worker.waitFor(/failed payments\/\S+ charge \(attempt 1\/1, no retries left\): card declined/);

      // Fix the cause, retry the job from the CLI: the running worker completes it.
      fs.rmSync(flag);
      const retried = await cli(['jobs', 'retry', 'payments', added[2].id], env);
      expectStatus(retried, 0);
      assert.match(retried.stdout, new RegExp(`retried payments/${added[2].id}`));
      const done = await eventually('the retried job completes', async () => {
        const j = (await jobsOf('payments', env)).find((x) => x.id === added[2].id);
        return j?.state === 'completed' ? j : undefined;
      });
      assert.deepEqual(done.result, { charged: 7 });
      assert.equal(done.errors.length, 1, 'the first attempt\'s error is kept');

      worker.proc.kill('SIGTERM');
      assert.equal(await worker.exited, 0, `worker exits 0 on SIGTERM\nstderr: ${worker.stderr()}`);
      assert.match(worker.stderr(), /SIGTERM: stopping/);
      assert.match(worker.stderr(), /stopped cleanly in .*; 3 completed, 1 failed since it started/);
    } finally {
      worker.proc.kill('SIGKILL');
      server.proc.kill('SIGTERM');
      await server.exited;
    }
  });

  it('on the store (--url), --json events; SIGTERM during a running job waits for it, says so, exits 0', async () => {
    const url = `sqlite://${path.join(dir, 'direct.db')}`;
    const handlers = writeHandlers('jobs-direct');
    const env = { CONVEYOR_URL: url };
    const quick = json(await cli(['add', 'email', 'welcome', '--data', '{"to":"bob@example.com"}', '--json'], env));
    const worker = start(['worker', '--handlers', handlers, '--url', url, '--queues', 'email', '--json'], {});
    try {
      await worker.waitFor(/"event":"completed"[^\n]*\n/);
      const events = worker
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.equal(events[0].event, 'started');
      assert.deepEqual(events[0].queues.map((q: any) => q.queue), ['email'], '--queues picks a subset');
      assert.equal(events[0].store, url);
      assert.ok(events.some((e) => e.event === 'active' && e.id === quick.id && e.attempt === 1));
      assert.ok(events.some((e) => e.event === 'completed' && e.id === quick.id && e.queue === 'email' && typeof e.durationMs === 'number'));

      const slow = json(await cli(['add', 'email', 'slow', '--data', '{"ms":1000}', '--json'], env));
      await worker.waitFor(new RegExp(`"event":"active"[^\\n]*"id":"${slow.id}"`));
      worker.proc.kill('SIGTERM');
      assert.equal(await worker.exited, 0, `exit 0 after the running job finished\nstderr: ${worker.stderr()}`);
      assert.match(worker.stderr(), new RegExp(`SIGTERM: stopping\\. .*Waiting for 1 running job to finish \\(email/${slow.id} slow, running \\d+`));
      assert.match(worker.stderr(), /stopped cleanly in .* \(the running job finished\)/);
      const lines = worker
        .stdout()
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      const stopping = lines.find((e) => e.event === 'stopping');
      assert.deepEqual(stopping.running.map((r: any) => r.id), [slow.id]);
      const completedAfter = lines.findIndex((e) => e.event === 'completed' && e.id === slow.id);
      assert.ok(completedAfter > lines.indexOf(stopping), 'the job completed after the signal');
      assert.equal(lines.at(-1).event, 'stopped');
      assert.equal(lines.at(-1).ok, true);
      const job = json(await cli(['jobs', 'show', 'email', slow.id, '--json'], env)).job;
      assert.equal(job.state, 'completed');
      assert.deepEqual(job.result, { slept: true, aborted: false });
    } finally {
      worker.proc.kill('SIGKILL');
    }
  });

  it('a bad handlers folder or module is a usage error (exit 2) with an example of what is expected', async () => {
    const env = { CONVEYOR_URL: `sqlite://${path.join(dir, 'bad.db')}` };
    const empty = path.join(dir, 'empty');
    fs.mkdirSync(empty, { recursive: true });
    fs.writeFileSync(path.join(empty, 'notes.txt'), 'hello');
    const notFn = path.join(dir, 'not-a-function');
    fs.mkdirSync(notFn, { recursive: true });
    fs.writeFileSync(path.join(notFn, 'payments.ts'), 'const handler: number = 42;\nexport default handler;\n');
    const cases: Array<[string[], RegExp]> = [
      [['--handlers', path.join(dir, 'missing')], /--handlers \S+missing: no such folder or file/],
      [['--handlers', empty], /no handler files in \S*empty \(found only notes\.txt\): expected one file per queue/],
      [['--handlers', notFn], /payments\.ts \(default export\) is a number \(42\): expected a handler function, or an object mapping job names to functions/],
    ];
    await Promise.all(
      cases.map(async ([args, message]) => {
        const r = await cli(['worker', ...args], env);
        expectStatus(r, 2);
        assert.match(r.stderr, message);
        assert.match(r.stderr, /export default async function \(job, \{ log, signal \}\) \{\n\s+return \{ charged: job\.data\.amount \};\n\s+\}/, 'shows an example handler');
        assert.match(r.stderr, /next: /);
      }),
    );
    // ES module syntax in a package that says "type": "commonjs" (npm init -y): exit 1, saying how to fix it.
    const cjs = path.join(dir, 'cjs-project');
    fs.mkdirSync(path.join(cjs, 'jobs'), { recursive: true });
    fs.writeFileSync(path.join(cjs, 'package.json'), '{"name":"app","type":"commonjs"}\n');
    fs.writeFileSync(path.join(cjs, 'jobs', 'email.ts'), 'export default async function (job: { data: unknown }): Promise<unknown> { return job.data; }\n');
    const cjsRun = await cli(['worker', '--handlers', 'jobs'], env, cjs);
    expectStatus(cjsRun, 1);
    assert.match(cjsRun.stderr, /could not load jobs\/email\.ts: .*Node loads it as CommonJS because package\.json says "type": "commonjs"/);
    assert.match(cjsRun.stderr, /next: name the file email\.mts, or set "type": "module" in package\.json/);

    const noFlag = await cli(['worker'], env);
    expectStatus(noFlag, 2);
    assert.match(noFlag.stderr, /required option '--handlers <path>' not specified/);
    const unknownQueue = await cli(['worker', '--handlers', writeHandlers('jobs-bad'), '--queues', 'pay'], env);
    expectStatus(unknownQueue, 2);
    assert.match(unknownQueue.stderr, /--queues names 'pay', which has no handler[\s\S]*next: queues with handlers: email, payments/);
  });
});

describe('conveyor demo', () => {
  it('starts the server, workers and producer on a fresh store; metrics show completed jobs; SIGTERM stops it with exit 0', async () => {
    const cwd = fs.mkdtempSync(path.join(dir, 'demo-'));
    const demo = start(['demo', '--port', '0', '--rate', '20', '--duration', '2m'], {}, cwd);
    try {
      const metricsUrl = (await demo.waitFor(/^\s+metrics\s+(http:\/\/127\.0\.0\.1:\d+\/metrics)$/m))[1]!;
      assert.match(demo.stdout(), /^\s+dashboard\s+http:\/\/127\.0\.0\.1:\d+\/dashboard\//m);
      assert.match(demo.stdout(), /store\s+\.conveyor\/demo\.db \(SQLite, emptied at every start/);
      assert.ok(fs.existsSync(path.join(cwd, '.conveyor', 'demo.db')));
      const completed = await eventually('a completed counter above 0 in /metrics', async () => {
        const text = await (await fetch(metricsUrl)).text();
        const counts = [...text.matchAll(/^conveyor_jobs_completed_total\{queue="(\w+)"\} (\d+)/gm)].map((m) => [m[1], Number(m[2])] as const);
        return counts.some(([, n]) => n > 0) ? Object.fromEntries(counts) : undefined;
      });
      assert.ok((completed.orders ?? 0) > 0, `orders completed: ${JSON.stringify(completed)}`);
      await demo.waitFor(/jobs are flowing: the first one completed/);
      const health = await fetch(metricsUrl.replace('/metrics', '/health/live'));
      assert.equal(health.status, 200);

      demo.proc.kill('SIGTERM');
      assert.equal(await demo.exited, 0, `demo exits 0 on SIGTERM\nstdout: ${demo.stdout()}\nstderr: ${demo.stderr()}`);
      assert.match(demo.stderr(), /SIGTERM: stopping/);
      assert.match(demo.stderr(), /stopped cleanly in .*: completed [\d,]+ orders/);
      assert.ok(!fs.existsSync(path.join(cwd, '.conveyor', 'demo.db.pid')), 'the pid mark is removed');
    } finally {
      demo.proc.kill('SIGKILL');
    }
  });
});
