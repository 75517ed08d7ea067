/**
 * `conveyor stats` and `conveyor bench` as real subprocesses (`node src/cli/main.ts …`):
 * stats against a SQLite file with seeded jobs (one table, JSON per sample with rates that
 * match the counts, the live view on a pseudo-terminal ended by Ctrl-C) and against a real
 * server with --server; bench on SQLite writing parseable JSON and leaving the store as it
 * found it. Timings are never asserted. Every spawned process is killed in `after`.
 */
import { it, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { createApiKey } from '../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import { SCENARIO_IDS } from '../src/bench/index.ts';
import { SCENARIO_NAMES } from '../src/cli/commands/bench.ts';
import { CLI, cleanEnv, expectStatus, json, run as runProcess, type Result } from './helpers/cli.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-cli-stats-'));
const url = `sqlite://${path.join(dir, 'stats.db')}`;

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function run(command: string, args: readonly string[], env: Record<string, string>, timeoutMs = 120_000): Promise<Result> {
  return runProcess(command, args, { env: cleanEnv(env), cwd: dir, timeoutMs });
}

const cli = (args: readonly string[], env: Record<string, string> = { CONVEYOR_URL: url }): Promise<Result> => run(process.execPath, [CLI, ...args], env);

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** email: 3 waiting, 2 delayed, 4 completed, 2 failed; payments: 1 waiting, paused. */
const SEEDED = {
  email: { waiting: 3, delayed: 2, active: 0, completed: 4, failed: 2 },
  payments: { waiting: 1, delayed: 0, active: 0, completed: 0, failed: 0 },
};

async function seed(cv: Conveyor): Promise<void> {
  const email = cv.queue<{ fail: boolean }>('email');
  await email.addBulk([0, 1, 2, 3, 4, 5].map((i) => ({ name: 'send', data: { fail: i >= 4 } })));
  const worker = cv.worker<{ fail: boolean }>('email', async (job) => {
    if (job.data.fail) throw new Error('bounced');
  });
  await waitUntil(async () => {
    const c = await email.getCounts();
    return c.completed === 4 && c.failed === 2;
  }, 'the seeded jobs to finish');
  await worker.close();
  await email.addBulk([0, 1, 2].map(() => ({ name: 'send', data: { fail: false } })));
  await email.addBulk([0, 1].map(() => ({ name: 'send', data: { fail: false }, opts: { delay: 3_600_000 } })));
  const payments = cv.queue('payments');
  await payments.add('charge', { cents: 100 });
  await payments.pause();
}

describe('conveyor stats', () => {
  let cv: Conveyor;
  before(async () => {
    cv = await Conveyor.open({ url });
    await seed(cv);
  });
  after(async () => {
    await cv?.close();
  });

  it('--once --json against a SQLite file: the seeded counts, no rates yet', async () => {
    const s = json(await cli(['stats', '--once', '--json']));
    assert.equal(typeof s.at, 'number');
    assert.equal(s.source, url);
    assert.equal(s.elapsedMs, null);
    const byName = Object.fromEntries(s.queues.map((q: any) => [q.name, q]));
    assert.deepEqual(Object.keys(byName).sort(), ['email', 'payments']);
    assert.deepEqual(byName.email.counts, SEEDED.email);
    assert.deepEqual(byName.payments.counts, SEEDED.payments);
    assert.equal(byName.payments.paused, true);
    assert.equal(byName.email.paused, false);
    assert.equal(byName.email.completedPerSec, null);
    assert.equal(byName.email.failedPerSec, null);
    assert.deepEqual(s.totals.counts, { waiting: 4, delayed: 2, active: 0, completed: 4, failed: 2 });
  });

  it('--once prints one table; --queues filters and flags an unknown queue', async () => {
    const r = await cli(['stats', '--once', '--url', url]);
    expectStatus(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.match(lines[0]!, /^queue\s+waiting\s+delayed\s+active\s+completed\s+failed\s+completed\/s\s+failed\/s$/);
    assert.match(r.stdout, /^email\s+3\s+2\s+0\s+4\s+2\s+-\s+-$/m);
    assert.match(r.stdout, /^payments \(paused\)\s+1\s+0\s+0\s+0\s+0\s+-\s+-$/m);
    assert.match(r.stdout, /^total\s+4\s+2\s+0\s+4\s+2\s+-\s+-$/m);

    const only = json(await cli(['stats', '--once', '--json', '--queues', 'payments']));
    assert.deepEqual(only.queues.map((q: any) => q.name), ['payments']);
    const typo = await cli(['stats', '--once', '--queues', 'email,emial']);
    expectStatus(typo, 0);
    assert.match(typo.stdout, /^emial \(no jobs\)\s+0\s+0\s+0\s+0\s+0/m);
    assert.match(typo.stderr, /no queue named 'emial' yet \(did you mean 'email'\?\)/);
  });

  it('--json per sample: rates are the completed and failed counts differenced over the elapsed time', async () => {
    // Jobs complete and fail while stats samples: every rate must match its two samples' counts.
    const q = cv.queue<{ fail: boolean }>('rates');
    const worker = cv.worker<{ fail: boolean }>('rates', async (job) => {
      if (job.data.fail) throw new Error('no');
    });
    let n = 0;
    const feeder = setInterval(() => void q.add('x', { fail: n++ % 4 === 0 }), 15);
    try {
      const r = await cli(['stats', '--json', '--samples', '4', '--interval', '300ms', '--queues', 'rates']);
      expectStatus(r, 0);
      const samples = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l));
      assert.equal(samples.length, 4);
      assert.equal(samples[0].queues[0].completedPerSec, null);
      for (let i = 1; i < samples.length; i++) {
        const [a, b] = [samples[i - 1], samples[i]];
        assert.equal(b.elapsedMs, b.at - a.at);
        const secs = b.elapsedMs / 1000;
        const want = (k: 'completed' | 'failed') => Math.max(0, b.queues[0].counts[k] - a.queues[0].counts[k]) / secs;
        assert.ok(Math.abs(b.queues[0].completedPerSec - want('completed')) <= 0.01, JSON.stringify([a, b]));
        assert.ok(Math.abs(b.queues[0].failedPerSec - want('failed')) <= 0.01, JSON.stringify([a, b]));
        assert.equal(b.totals.completedPerSec, b.queues[0].completedPerSec);
      }
      const last = samples.at(-1).queues[0].counts;
      assert.ok(last.completed > samples[0].queues[0].counts.completed, 'jobs completed while sampling');
    } finally {
      clearInterval(feeder);
      await worker.close();
    }
  });

  it('plain lines per sample when stdout is not a terminal', async () => {
    const r = await cli(['stats', '--samples', '2', '--interval', '100ms', '--queues', 'email']);
    expectStatus(r, 0);
    const lines = r.stdout.trimEnd().split('\n');
    assert.equal(lines.length, 2);
    assert.match(lines[0]!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ email waiting=3 delayed=2 active=0 completed=4 failed=2 completed\/s=- failed\/s=-$/);
    assert.match(lines[1]!, /email waiting=3 .* completed\/s=0\.0 failed\/s=0\.0$/);
    assert.doesNotMatch(r.stdout, /\u001b\[/, 'no escape sequences in a pipe');
  });

  it('on a terminal: redrawn in place with a header, and Ctrl-C exits 0 with the cursor back', async () => {
    // A pseudo-terminal from Python's standard library (node has none); SIGINT after three frames.
    const script = `
import os, pty, select, signal, struct, fcntl, termios, sys, time
pid, fd = pty.fork()
if pid == 0:
    fcntl.ioctl(0, termios.TIOCSWINSZ, struct.pack('HHHH', 30, 120, 0, 0))
    os.execv(sys.argv[1], sys.argv[1:])
out = b''
deadline = time.time() + 60
sent = False
while time.time() < deadline:
    if not sent and out.count(b'Ctrl-C to quit') >= 3:
        os.kill(pid, signal.SIGINT)
        sent = True
    r, _, _ = select.select([fd], [], [], 0.05)
    if r:
        try:
            data = os.read(fd, 65536)
        except OSError:
            break
        if not data:
            break
        out += data
_, status = os.waitpid(pid, 0)
sys.stdout.write(out.decode('utf8', 'replace'))
sys.stdout.write('\\nEXIT %s\\n' % (os.WEXITSTATUS(status) if os.WIFEXITED(status) else 'signal %d' % os.WTERMSIG(status)))
`;
    const r = await run('python3', ['-c', script, process.execPath, CLI, 'stats', '--interval', '200ms', '--url', url], {});
    expectStatus(r, 0);
    const out = r.stdout;
    assert.match(out, /\nEXIT 0\n$/, out);
    assert.match(out, /conveyor stats {2}sqlite:\/\/.*stats\.db \(SQLite file /);
    assert.match(out, /\d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ {2}every 200ms {2}Ctrl-C to quit/);
    assert.match(out, /email\s+3\s+2\s+0\s+4\s+2\s+0\.0\s+0\.0/);
    assert.match(out, /\u001b\[\?25l/, 'cursor hidden while drawing');
    assert.match(out, /\r\u001b\[\d+A/, 'later frames move back up over the previous one');
    assert.match(out, /\u001b\[K/, 'lines cleared to their end');
    assert.match(out, /\u001b\[\?25h[\s\S]*EXIT 0/, 'cursor shown again on exit');
    assert.doesNotMatch(out, /\u001b\[2J/, 'no full-screen clears (no flicker) without a resize');
  });

  it('usage errors exit 2', async () => {
    for (const [args, re] of [
      [['stats', '--url', url, '--server', 'http://127.0.0.1:1'], /either --url .* or --server/],
      [['stats', '--interval', '10ms'], /at least 100ms/],
      [['stats', '--interval', 'soon'], /--interval/],
      [['stats', '--queues', 'bad name!', '--once'], /invalid queue name|INVALID_ARGUMENT/],
      [['stats', '--key', 'cvk_x_y', '--once'], /--key goes with --server/],
    ] as Array<[string[], RegExp]>) {
      const r = await cli(args);
      expectStatus(r, 2);
      assert.match(r.stderr, re, args.join(' '));
    }
  });

  describe('with --server', () => {
    let server: RunningServer;
    let key: string;
    before(async () => {
      server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0 });
      key = (await createApiKey(cv.store, { name: 'stats', scopes: ['read'] })).key;
      server.context.keys.invalidate();
    });
    after(async () => {
      await server?.close();
    });

    it('reads GET /api/v1/queues: the same counts as the store', async () => {
      const s = json(await cli(['stats', '--server', server.url, '--key', key, '--once', '--json', '--queues', 'email,payments'], {}));
      assert.equal(s.source, server.url);
      assert.deepEqual(s.queues.map((q: any) => [q.name, q.counts, q.paused]), [
        ['email', SEEDED.email, false],
        ['payments', SEEDED.payments, true],
      ]);
      // From the environment too, and as a table.
      const r = await cli(['stats', '--once', '--queues', 'email'], { CONVEYOR_SERVER: server.url, CONVEYOR_API_KEY: key });
      expectStatus(r, 0);
      assert.match(r.stdout, /^email\s+3\s+2\s+0\s+4\s+2\s+-\s+-$/m);
    });

    it('a missing key or an unreachable server: exit 1 with what to do', async () => {
      const noKey = await cli(['stats', '--server', server.url, '--once'], {});
      expectStatus(noKey, 1);
      assert.match(noKey.stderr, /UNAUTHORIZED/);
      assert.match(noKey.stderr, /next: .*--key or set CONVEYOR_API_KEY/);
      const down = await cli(['stats', '--server', 'http://127.0.0.1:1', '--once'], {});
      expectStatus(down, 1);
      assert.match(down.stderr, /STORE_UNAVAILABLE: .*cannot reach the conveyor server at http:\/\/127\.0\.0\.1:1/);
      assert.match(down.stderr, /next: check that `conveyor serve` is running at http:\/\/127\.0\.0\.1:1/);
    });
  });
});

describe('conveyor bench', () => {
  it('lists the same scenarios as src/bench/', () => {
    assert.deepEqual([...SCENARIO_NAMES], [...SCENARIO_IDS]);
  });

  it('--scale 0.01 --json out.json on a SQLite file: every scenario, parseable JSON, the store left as it was', async () => {
    const file = path.join(dir, 'bench.db');
    const benchUrl = `sqlite://${file}`;
    const before = await Conveyor.open({ url: benchUrl });
    await before.queue('mine').add('keep', { me: true });
    await before.close();

    const r = await cli(['bench', '--scale', '0.01', '--json', 'out.json', '--url', benchUrl], {});
    expectStatus(r, 0);
    const report = JSON.parse(fs.readFileSync(path.join(dir, 'out.json'), 'utf8'));
    assert.deepEqual(report.failures, []);
    assert.equal(report.meta.scale, 0.01);
    assert.equal(report.meta.store, benchUrl);
    assert.deepEqual(report.rows.map((row: any) => row.id), ['serial', 'concurrent', 'bulk', 'drain', 'latency']);
    for (const row of report.rows) {
      assert.equal(row.ok, true, JSON.stringify(row));
      assert.ok(row.jobs > 0);
      assert.equal(typeof row.headline, 'string');
      assert.equal(typeof row.metrics, 'object');
    }
    const byId = Object.fromEntries(report.rows.map((row: any) => [row.id, row]));
    assert.equal(byId.serial.jobs, 50);
    assert.equal(byId.drain.jobs, 500);
    assert.equal(byId.drain.metrics.completed, 500);
    assert.equal(byId.drain.metrics.duplicate_calls, 0);
    assert.equal(byId.latency.metrics.received, 20);
    assert.ok(byId.serial.metrics.jobs_per_s > 0);
    // The table on stdout, progress on stderr (plain lines: not a terminal).
    assert.match(r.stdout, /^scenario\s+jobs\s+result\s+details$/m);
    assert.match(r.stdout, /^serial awaited adds\s+50\s+[\d,]+ jobs\/s/m);
    assert.match(r.stderr, /serial adds: 50\/50 jobs \(100%\)/);
    assert.match(r.stderr, /wrote out\.json/);

    // Only the user's own queue is left: the bench deleted its jobs.
    const after = await Conveyor.open({ url: benchUrl });
    try {
      assert.deepEqual((await after.store.listQueues()).map((q) => q.name), ['mine']);
    } finally {
      await after.close();
    }
  });

  it('without a URL: temporary files; --json - prints the report on stdout; bad flags exit 2', async () => {
    const report = json(await cli(['bench', '--scale', '0.01', '--scenarios', 'serial,bulk', '--json', '-', '--no-progress'], {}));
    assert.deepEqual(report.rows.map((row: any) => row.id), ['serial', 'bulk']);
    assert.match(report.meta.store, /temporary SQLite file/);
    assert.equal(fs.existsSync(path.join(dir, '.conveyor')), false, 'the default store was not used');

    for (const [args, re] of [
      [['bench', '--scenarios', 'serial,nope'], /unknown scenario 'nope'/],
      [['bench', '--scale', '0'], /--scale/],
      [['bench', '--scale', 'lots'], /--scale/],
    ] as Array<[string[], RegExp]>) {
      const r = await cli(args, {});
      expectStatus(r, 2);
      assert.match(r.stderr, re);
    }
  });
});
