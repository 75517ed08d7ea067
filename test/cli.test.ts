/**
 * The `conveyor` command as a real subprocess (`node src/cli/main.ts …`), against a real
 * SQLite file and a real PostgreSQL schema, including `conveyor serve` answering over HTTP.
 * Every spawned process is killed in `after`, whatever happened to the test.
 */
import { it, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor, UnrecoverableError } from '../src/index.ts';
import { DEFAULT_STORE_URL } from '../src/store/open.ts';
import { DEFAULT_URL, maskUrl } from '../src/cli/config.ts';
import { DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';
import { cleanEnv, expectStatus, json, runCli, startCli, type Result, type Running } from './helpers/cli.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-cli-'));
const url = `sqlite://${path.join(dir, 'cli.db')}`;

after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

/** Runs the CLI to completion (killed after 60 s). */
function cli(args: readonly string[], options: { env?: Record<string, string>; input?: string; cwd?: string } = {}): Promise<Result> {
  return runCli(args, { env: cleanEnv(options.env ?? { CONVEYOR_URL: url }), cwd: options.cwd ?? dir, input: options.input ?? '' });
}

/** Starts `conveyor serve` on a free port and waits for it to print its API URL. */
async function serve(args: readonly string[], env: Record<string, string>): Promise<Running & { base: string }> {
  const served = startCli(['serve', '--port', '0', '--log-level', 'warn', ...args], { env: cleanEnv(env), cwd: dir });
  await served.waitFor(/Press Ctrl-C to stop\./);
  const m = await served.waitFor(/^\s+API\s+(http:\/\/\S+)\/api\/v1$/m);
  return { ...served, base: m[1]! };
}

async function get(base: string, route: string, key?: string): Promise<{ status: number; body: any }> {
  const res = await fetch(`${base}${route}`, { headers: key === undefined ? {} : { authorization: `Bearer ${key}` } });
  return { status: res.status, body: await res.json() };
}

/**
 * keys create → ls → a server accepts the key (and refuses requests without it) → revoke →
 * the server refuses the key → SIGTERM stops the server with exit 0. Run against each store.
 */
async function keysAndServeRoundTrip(env: Record<string, string>): Promise<void> {
  const created = json(await cli(['keys', 'create', '--name', 'ops', '--scopes', 'admin,read', '--expires-in', '30d', '--json'], { env }));
  assert.match(created.key, /^cvk_[0-9a-f]{16}_[\w-]{43}$/);
  assert.deepEqual(created.scopes, ['admin', 'read']);
  assert.ok(created.expiresAt > Date.now() + 29 * 86_400_000);

  // Without --json: the key alone on stdout, the note to store it on stderr.
  const plain = await cli(['keys', 'create', '--name', 'reader', '--scopes', 'read'], { env });
  expectStatus(plain, 0);
  assert.match(plain.stdout, /^cvk_[0-9a-f]{16}_[\w-]{43}\n$/);
  assert.match(plain.stderr, /Store it now/);
  assert.match(plain.stderr, /only time it is shown/);

  const listed = json(await cli(['keys', 'ls', '--json'], { env }));
  assert.deepEqual(listed.map((k: any) => k.name).sort(), ['ops', 'reader']);
  for (const k of listed) {
    assert.equal(k.active, true);
    assert.equal(k.hash, undefined, 'listings never show the hash');
    assert.equal(k.key, undefined, 'listings never show the key');
  }
  const table = await cli(['keys', 'ls'], { env });
  expectStatus(table, 0);
  assert.match(table.stdout, new RegExp(`${created.id}\\s+ops\\s+admin,read`));
  assert.doesNotMatch(table.stdout, /cvk_/);

  const server = await serve([], env);
  try {
    assert.match(server.stdout(), /OpenAPI\s+http:\/\/127\.0\.0\.1:\d+\/api\/v1\/openapi\.json/);
    assert.match(server.stdout(), /metrics\s+http:\/\/127\.0\.0\.1:\d+\/metrics/);
    assert.match(server.stdout(), /health\s+http:\/\/127\.0\.0\.1:\d+\/health\/ready/);
    assert.match(server.stdout(), /auth\s+API keys required/);
    const without = await get(server.base, '/api/v1/queues');
    assert.equal(without.status, 401);
    assert.equal(without.body.error.code, 'UNAUTHORIZED');
    const withKey = await get(server.base, '/api/v1/queues', created.key);
    assert.equal(withKey.status, 200);
    assert.ok(Array.isArray(withKey.body.queues));
    assert.equal((await get(server.base, '/health/ready')).status, 200);

    // Revoke by passing the whole key (its id is taken from it); the server notices within its key cache time.
    const revoked = await cli(['keys', 'revoke', created.key], { env });
    expectStatus(revoked, 0);
    assert.equal(revoked.stdout, `revoked API key ${created.id}\n`);
    assert.doesNotMatch(revoked.stdout + revoked.stderr, new RegExp(created.key.slice(22)), 'the secret is never printed back');
    const until = Date.now() + 15_000;
    let status = 200;
    while (Date.now() < until && (status = (await get(server.base, '/api/v1/queues', created.key)).status) === 200) await new Promise((r) => setTimeout(r, 250));
    assert.equal(status, 401, 'a revoked key is refused within the cache time');
    const again = await cli(['keys', 'revoke', created.id], { env });
    expectStatus(again, 1);
    assert.match(again.stderr, /already revoked/);
    const afterRevoke = json(await cli(['keys', 'ls', '--json'], { env }));
    assert.equal(afterRevoke.find((k: any) => k.id === created.id).active, false);

    server.proc.kill('SIGTERM');
    assert.equal(await server.exited, 0, `serve exits 0 on SIGTERM\nstderr: ${server.stderr()}`);
    assert.match(server.stderr(), /SIGTERM: shutting down/);
    assert.match(server.stderr(), /stopped cleanly/);
  } finally {
    server.proc.kill('SIGKILL');
  }
}

/** add (--data JSON, @file, stdin, --file) → jobs ls → a job fails → jobs retry / cancel / promote / rm. */
async function jobsRoundTrip(env: Record<string, string>, storeUrl: string): Promise<void> {
  const one = json(await cli(['add', 'mail', 'welcome', '--data', '{"to":"ada@example.com"}', '--attempts', '3', '--backoff', 'exponential:1s', '--priority', '5', '--json'], { env }));
  assert.equal(one.state, 'waiting');
  assert.deepEqual(one.data, { to: 'ada@example.com' });
  assert.deepEqual(one.opts, { attempts: 3, backoff: { type: 'exponential', delay: 1000 } });
  assert.equal(one.priority, 5);

  fs.writeFileSync(path.join(dir, 'data.json'), '{"to":"bob@example.com"}');
  const dedup = [
    json(await cli(['add', 'mail', 'once', '--job-id', 'user-42-welcome', '--data', '1', '--json'], { env })),
    json(await cli(['add', 'mail', 'once', '--job-id', 'user-42-welcome', '--data', '2', '--json'], { env })),
  ];
  assert.deepEqual(dedup.map((j) => [j.id, j.added, j.data]), [['user-42-welcome', true, 1], ['user-42-welcome', false, 1]]);
  const again = await cli(['add', 'mail', 'once', '--job-id', 'user-42-welcome'], { env });
  assert.match(again.stdout, /^job user-42-welcome is still waiting in mail, so nothing was added/);
  expectStatus(await cli(['jobs', 'rm', 'mail', 'user-42-welcome'], { env }), 0);

  const fromFile = await cli(['add', 'mail', 'digest', '--data', `@${path.join(dir, 'data.json')}`, '--delay', '1h'], { env });
  expectStatus(fromFile, 0);
  assert.match(fromFile.stdout, /^added job \S+ to mail \(digest, delayed\)\n$/);
  const fromStdin = json(await cli(['add', 'mail', 'poison', '--data', '-', '--json'], { env, input: '{"boom":true}' }));
  assert.deepEqual(fromStdin.data, { boom: true });

  const ndjson = path.join(dir, `bulk-${Date.now()}.ndjson`);
  fs.writeFileSync(ndjson, Array.from({ length: 1200 }, (_, i) => JSON.stringify({ name: i % 2 ? 'odd' : 'even', data: { i }, ...(i === 0 ? { opts: { priority: 9 } } : {}) })).join('\n') + '\n\n');
  const bulk = await cli(['add', 'bulk', '--file', ndjson, '--attempts', '2', '--batch-size', '500', '--json'], { env });
  const summary = json(bulk);
  assert.equal(summary.added, 1200);
  assert.match(bulk.stderr, /add bulk: 1200\/1200 jobs \(100%\)/, 'plain progress lines when stderr is not a terminal');

  const queues = json(await cli(['queues', 'ls', '--json'], { env }));
  const byName = Object.fromEntries(queues.map((q: any) => [q.name, q]));
  assert.deepEqual(byName.mail.counts, { waiting: 2, delayed: 1, active: 0, completed: 0, failed: 0, cancelled: 0 });
  assert.equal(byName.bulk.counts.waiting, 1200);

  const page = json(await cli(['jobs', 'ls', 'bulk', '--limit', '10', '--state', 'waiting', '--json'], { env }));
  assert.equal(page.jobs.length, 10);
  assert.equal(typeof page.nextCursor, 'string');
  const next = json(await cli(['jobs', 'ls', 'bulk', '--limit', '10', '--state', 'waiting', '--cursor', page.nextCursor, '--json'], { env }));
  assert.equal(next.jobs.length, 10);
  assert.notEqual(next.jobs[0].id, page.jobs[0].id);
  assert.deepEqual(page.jobs[0].opts, { attempts: 2 });

  // A worker (the library) fails the poison job for good.
  const cv = await Conveyor.open({ url: storeUrl });
  try {
    const failed = new Promise<void>((resolve) => {
      const worker = cv.worker('mail', async (job) => {
        if ((job.data as { boom?: boolean }).boom) throw new UnrecoverableError('poison pill');
        return { sent: true };
      });
      let done = 0;
      const finish = () => {
        if (++done === 2) resolve();
      };
      worker.on('failed', finish);
      worker.on('completed', finish);
    });
    await failed;
  } finally {
    await cv.close();
  }

  const failedList = await cli(['jobs', 'ls', 'mail', '--state', 'failed'], { env });
  expectStatus(failedList, 0);
  assert.match(failedList.stdout, new RegExp(`^${fromStdin.id}\\s+poison\\s+failed\\s+1/1 .*poison pill`, 'm'));
  const shown = json(await cli(['jobs', 'show', 'mail', fromStdin.id, '--json'], { env }));
  assert.equal(shown.job.state, 'failed');
  assert.equal(shown.job.errors[0].message, 'poison pill');

  const retried = await cli(['jobs', 'retry', 'mail', fromStdin.id], { env });
  expectStatus(retried, 0);
  assert.equal(retried.stdout, `retried mail/${fromStdin.id}\n`);
  assert.equal(json(await cli(['jobs', 'show', 'mail', fromStdin.id, '--json'], { env })).job.state, 'waiting');

  // Several ids: each reported; one bad id makes the exit code 1 and says why.
  const digest = json(await cli(['jobs', 'ls', 'mail', '--state', 'delayed', '--json'], { env })).jobs[0];
  const mixed = await cli(['jobs', 'promote', 'mail', digest.id, '999999', '--json'], { env });
  expectStatus(mixed, 1);
  const outcome = JSON.parse(mixed.stdout);
  assert.deepEqual(outcome.results.map((r: any) => [r.id, r.ok, r.error?.code]), [[digest.id, true, undefined], ['999999', false, 'JOB_NOT_FOUND']]);
  assert.match(mixed.stderr, /JOB_NOT_FOUND/);
  expectStatus(await cli(['jobs', 'cancel', 'mail', fromStdin.id], { env }), 0);
  expectStatus(await cli(['jobs', 'rm', 'mail', fromStdin.id], { env }), 0);
  const gone = await cli(['jobs', 'show', 'mail', fromStdin.id], { env });
  expectStatus(gone, 1);
  assert.match(gone.stderr, /JOB_NOT_FOUND/);
  assert.match(gone.stderr, /next: .*conveyor jobs ls mail/);

  // Queue administration.
  expectStatus(await cli(['queues', 'pause', 'bulk'], { env }), 0);
  assert.equal(json(await cli(['queues', '--json'], { env })).find((q: any) => q.name === 'bulk').paused, true);
  expectStatus(await cli(['queues', 'resume', 'bulk'], { env }), 0);
  const cleaned = json(await cli(['queues', 'clean', 'bulk', '--state', 'waiting', '--limit', '1100', '--json'], { env }));
  assert.equal(cleaned.removed, 1100);
  assert.equal(json(await cli(['queues', 'drain', 'bulk', '--json'], { env })).removed, 100);
  assert.equal(json(await cli(['queues', 'retry-failed', 'mail', '--json'], { env })).retried, 0);
  const typo = await cli(['queues', 'drain', 'mial'], { env });
  expectStatus(typo, 1);
  assert.match(typo.stderr, /no queue named 'mial' \(did you mean 'mail'\?\)/);
}

describe('conveyor CLI', () => {
  it('--help and --version exit 0; no arguments prints the help', async () => {
    const help = await cli(['--help']);
    expectStatus(help, 0);
    assert.match(help.stdout, /Usage: conveyor/);
    assert.match(help.stdout, /Exit codes: 0 ok, 1 error, 2 usage/);
    assert.match((await cli(['--version'])).stdout, /^\d+\.\d+\.\d+\n$/);
    const bare = await cli([]);
    expectStatus(bare, 0);
    assert.match(bare.stdout, /Commands:/);
  });

  it('every command has --help with examples, exit 0', async () => {
    const commands = [
      ['serve'], ['migrate'], ['queues'], ['queues', 'ls'], ['queues', 'pause'], ['queues', 'resume'], ['queues', 'clean'], ['queues', 'retry-failed'], ['queues', 'drain'],
      ['jobs'], ['jobs', 'ls'], ['jobs', 'show'], ['jobs', 'retry'], ['jobs', 'rm'], ['jobs', 'cancel'], ['jobs', 'promote'],
      ['add'], ['keys'], ['keys', 'create'], ['keys', 'ls'], ['keys', 'revoke'], ['config'], ['worker'], ['demo'], ['stats'], ['bench'],
    ];
    // A few at a time: the machine is shared.
    const all = commands;
    for (let i = 0; i < all.length; i += 4) {
      await Promise.all(
        all.slice(i, i + 4).map(async (c) => {
          const r = await cli([...c, '--help']);
          expectStatus(r, 0);
          assert.match(r.stdout, new RegExp(`^Usage: conveyor ${c.join(' ')}`), c.join(' '));
          if (commands.includes(c)) assert.match(r.stdout, /\nExamples:\n {2}conveyor /, `${c.join(' ')} --help shows examples`);
        }),
      );
    }
    const viaHelp = await cli(['help', 'keys']);
    expectStatus(viaHelp, 0);
    assert.match(viaHelp.stdout, /Usage: conveyor keys/);
  });

  it('usage errors exit 2 and say what to do', async () => {
    const r = await cli(['frobnicate']);
    expectStatus(r, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'.*\n.*--help/);
    const cases: Array<[string[], RegExp, Record<string, string>?]> = [
      [['queues', '--bogus'], /unknown option '--bogus'\nRun 'conveyor queues ls --help'/],
      [['jobs', 'ls', 'mail', '--stat', 'failed'], /unknown option '--stat'[\s\S]*--state/],
      [['jobs', 'show', 'mail'], /missing required argument 'id'/],
      [['jobs', 'ls', 'mail', '--state', 'broken'], /unknown state 'broken'/],
      [['add', 'mail', '--data', '{"to":'], /--data is not valid JSON[\s\S]*next: quote JSON/],
      [['add', 'mail', '--data', "{to:'x'}"], /--data is not valid JSON/],
      [['add', 'mail', '--delay', '5 parsecs'], /'5 parsecs' is not a duration/],
      [['add', 'mail', '--priority', 'high'], /option '--priority <n>' argument 'high' is invalid/],
      [['add', 'mail', '--opts', '{"priorty":1}'], /UNKNOWN_OPTION.*did you mean 'priority'/],
      [['add', 'bad queue!', '--data', '1'], /INVALID_ARGUMENT: invalid queue name/],
      [['keys', 'create', '--scopes', 'admin'], /required option '--name <name>' not specified/],
      [['keys', 'create', '--name', 'x', '--scopes', 'root'], /unknown scope 'root'/],
      [['keys'], /Usage: conveyor keys/],
      [['queues', 'clean', 'mail', '--state', 'active'], /Allowed choices are completed, failed, cancelled, waiting, delayed/],
      [['config'], /CONVEYOR_PORT must be a port number/, { CONVEYOR_URL: url, CONVEYOR_PORT: 'eighty' }],
      [['serve', '--port', '99999'], /--port must be a port number/],
      [['queues', 'ls', '--url', 'sqlite://x.db?journal=off'], /unknown parameter 'journal'/],
    ];
    for (let i = 0; i < cases.length; i += 4) {
      await Promise.all(
        cases.slice(i, i + 4).map(async ([args, message, env]) => {
          const res = await cli(args, env ? { env } : {});
          assert.equal(res.status, 2, `${args.join(' ')}: exit ${String(res.status)}\n${res.stderr}`);
          assert.match(res.stderr, message, args.join(' '));
          assert.match(res.stderr, /^conveyor: |Usage: /, 'messages start with the command name');
        }),
      );
    }
    // Nothing was written by any of them.
    assert.equal(fs.existsSync(path.join(dir, 'x.db')), false);
  });

  it('store errors exit 1 with the error code, the masked URL and what to do next', async () => {
    const r = await cli(['queues', '--url', 'postgres://user:secret@127.0.0.1:1/db?connectTimeoutMs=2000']);
    expectStatus(r, 1);
    assert.match(r.stderr, /STORE_UNAVAILABLE/);
    assert.match(r.stderr, /store: postgres:\/\/user:\*\*\*@127\.0\.0\.1:1\/db\?connectTimeoutMs=2000 \(from --url\)/);
    assert.match(r.stderr, /next: check that PostgreSQL is running/);
    assert.doesNotMatch(r.stderr, /secret/);
    const u = await cli(['queues'], { env: { DATABASE_URL: 'redis://:pw@localhost:6379' } });
    expectStatus(u, 1);
    assert.match(u.stderr, /UNSUPPORTED_STORE/);
    assert.match(u.stderr, /\(from DATABASE_URL\)/);
    assert.doesNotMatch(u.stderr, /:pw@/);
  });

  it('config: flags, then CONVEYOR_URL, then DATABASE_URL, then defaults; secrets masked', async () => {
    assert.equal(DEFAULT_URL, DEFAULT_STORE_URL, "the CLI's default store is the library's");
    const defaults = json(await cli(['config', '--json'], { env: {} }));
    assert.deepEqual(defaults.url, { value: 'sqlite://.conveyor/conveyor.db', source: 'default', note: `SQLite file ${path.join(fs.realpathSync(dir), '.conveyor', 'conveyor.db')}` });
    assert.deepEqual(defaults.port, { value: 8080, source: 'default' });
    assert.deepEqual(defaults.host, { value: '127.0.0.1', source: 'default' });
    const env = { DATABASE_URL: 'postgres://app:hunter2@db/app', CONVEYOR_PORT: '9000', CONVEYOR_API_KEY: 'cvk_0123456789abcdef_secretsecret', CONVEYOR_SERVER: 'http://q:8080' };
    const fromEnv = await cli(['config', '--json'], { env });
    assert.doesNotMatch(fromEnv.stdout, /hunter2|secretsecret/);
    const c = json(fromEnv);
    assert.deepEqual(c.url, { value: 'postgres://app:***@db/app', source: 'DATABASE_URL', note: 'PostgreSQL, schema conveyor (default)' });
    assert.deepEqual(c.port, { value: 9000, source: 'CONVEYOR_PORT' });
    assert.deepEqual(c.apiKey, { value: 'cvk_0123456789abcdef_***', source: 'CONVEYOR_API_KEY' });
    assert.deepEqual(c.server, { value: 'http://q:8080', source: 'CONVEYOR_SERVER' });
    const both = json(await cli(['config', '--json'], { env: { ...env, CONVEYOR_URL: 'sqlite:///tmp/a.db' } }));
    assert.deepEqual([both.url.value, both.url.source], ['sqlite:///tmp/a.db', 'CONVEYOR_URL']);
    const flags = json(await cli(['config', '--json', '--url', 'sqlite:///tmp/b.db', '--port', '0', '--key', 'cvk_0123456789abcdef_zzz'], { env: { ...env, CONVEYOR_URL: 'sqlite:///tmp/a.db' } }));
    assert.deepEqual([flags.url.value, flags.url.source, flags.port.value, flags.port.source, flags.apiKey.value], ['sqlite:///tmp/b.db', '--url', 0, '--port', 'cvk_0123456789abcdef_***']);
    const table = await cli(['config'], { env });
    expectStatus(table, 0);
    assert.match(table.stdout, /postgres:\/\/app:\*\*\*@db\/app\s+DATABASE_URL/);
  });

  it('maskUrl hides every password form', () => {
    assert.equal(maskUrl('postgres://u:p%40ss@h/db'), 'postgres://u:***@h/db');
    assert.equal(maskUrl('redis://:pw@h:6379'), 'redis://:***@h:6379');
    assert.equal(maskUrl('postgres://u@h/db?sslmode=require&password=x&schema=s'), 'postgres://u@h/db?sslmode=require&password=***&schema=s');
    assert.equal(maskUrl(`postgres://u:a@pool/db?listenUrl=${encodeURIComponent('postgres://u:b@direct/db')}`), `postgres://u:***@pool/db?listenUrl=postgres%3A%2F%2Fu%3A***%40direct%2Fdb`);
    assert.equal(maskUrl('sqlite:///var/lib/app/jobs.db'), 'sqlite:///var/lib/app/jobs.db');
  });

  it('migrate, then queues --json lists counts written by the library', async () => {
    const m = await cli(['migrate', '--json']);
    assert.deepEqual(json(m), { ok: true, url, store: `SQLite file ${path.join(dir, 'cli.db')}` });
    const cv = await Conveyor.open({ url });
    await cv.queue('counted').addBulk([{ name: 'a', data: 1 }, { name: 'b', data: 2 }]);
    await cv.close();
    const queues = json(await cli(['queues', '--json']));
    assert.deepEqual(queues.find((q: any) => q.name === 'counted'), { name: 'counted', paused: false, counts: { waiting: 2, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 } });
    const table = await cli(['queues']);
    expectStatus(table, 0);
    assert.match(table.stdout, /^queue\s+waiting\s+delayed\s+active\s+completed\s+failed\s+cancelled\n/);
    assert.match(table.stdout, /^counted\s+2\s+0\s+0\s+0\s+0\s+0$/m);
  });

  it('SQLite: add, jobs ls, a failure, jobs retry/promote/cancel/rm, queue administration', async () => {
    const env = { CONVEYOR_URL: `sqlite://${path.join(dir, 'jobs.db')}` };
    await jobsRoundTrip(env, env.CONVEYOR_URL);
  });

  it('a bad line in --file is a usage error naming the line, and nothing is added', async () => {
    const env = { CONVEYOR_URL: `sqlite://${path.join(dir, 'badfile.db')}` };
    const file = path.join(dir, 'bad.ndjson');
    fs.writeFileSync(file, '{"data":1}\n{"data":2}\n\n{"data":3,"opts":{"attempts":0}}\n');
    const r = await cli(['add', 'q', '--file', file], { env });
    expectStatus(r, 2);
    assert.match(r.stderr, /bad\.ndjson:4: INVALID_ARGUMENT: attempts.*nothing was added/);
    fs.writeFileSync(file, '{"data":1}\nnot json\n');
    const r2 = await cli(['add', 'q', '--file', file], { env });
    expectStatus(r2, 2);
    assert.match(r2.stderr, /bad\.ndjson:2: not valid JSON/);
    assert.deepEqual(json(await cli(['queues', '--json'], { env })), []);
  });

  it('SQLite: keys create/ls/revoke, and the key works against conveyor serve; SIGTERM exits 0', async () => {
    await keysAndServeRoundTrip({ CONVEYOR_URL: `sqlite://${path.join(dir, 'keys.db')}` });
  });

  it('serve refuses a non-loopback address while no key exists (exit 1, names conveyor keys create)', async () => {
    const r = await cli(['serve', '--host', '0.0.0.0', '--port', '0', '--log-level', 'silent'], { env: { CONVEYOR_URL: `sqlite://${path.join(dir, 'nokeys.db')}` } });
    expectStatus(r, 1);
    assert.match(r.stderr, /refusing to listen on 0\.0\.0\.0/);
    assert.match(r.stderr, /conveyor keys create/);
    assert.equal(r.stdout, '');
  });

  it('serve --json prints one JSON line with the URLs; SIGINT also stops it with exit 0', async () => {
    const env = { CONVEYOR_URL: `sqlite://${path.join(dir, 'servejson.db')}` };
    const served = startCli(['serve', '--json', '--log-level', 'silent'], { env: cleanEnv({ ...env, CONVEYOR_PORT: '0' }), cwd: dir });
    await served.waitFor(/\n/);
    const info = JSON.parse(served.stdout().split('\n')[0]!);
    assert.match(info.api, /^http:\/\/127\.0\.0\.1:\d+\/api\/v1$/);
    assert.equal(info.auth, false);
    assert.equal((await get(info.url, '/api/v1/queues')).status, 200, 'loopback without keys: no auth');
    served.proc.kill('SIGINT');
    assert.equal(await served.exited, 0, served.stderr());
    assert.match(served.stderr(), /SIGINT: shutting down/);
  });
});

describe('conveyor CLI on PostgreSQL', () => {
  const schema = uniqueSchema();
  const pgUrl = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}`;
  const env = { DATABASE_URL: pgUrl };
  after(() => dropSchema(schema));

  it('an unmigrated schema is refused with a hint to run conveyor migrate; migrate creates it', async () => {
    const r = await cli(['keys', 'ls'], { env });
    expectStatus(r, 1);
    assert.match(r.stderr, /STORE_SCHEMA/);
    assert.match(r.stderr, /\(from DATABASE_URL\)/);
    assert.match(r.stderr, new RegExp(`next: create or upgrade the schema first: conveyor migrate --url '.*schema=${schema}'`));
    const m = json(await cli(['migrate', '--json'], { env }));
    assert.equal(m.store, `PostgreSQL, schema ${schema}`);
    assert.deepEqual(json(await cli(['keys', 'ls', '--json'], { env })), []);
  });

  it('keys create/ls/revoke, and the key works against conveyor serve; SIGTERM exits 0', async () => {
    await keysAndServeRoundTrip(env);
  });

  it('add, jobs ls, a failure, jobs retry/promote/cancel/rm, queue administration', async () => {
    await jobsRoundTrip(env, pgUrl);
  });
});
