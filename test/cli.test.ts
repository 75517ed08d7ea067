/** The `conveyor` command as a real subprocess. */
import { it, describe, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';

const CLI = path.join(import.meta.dirname, '..', 'src', 'cli', 'main.ts');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-cli-'));
const url = `sqlite://${path.join(dir, 'cli.db')}`;
after(() => fs.rmSync(dir, { recursive: true, force: true }));

const run = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, CONVEYOR_URL: url } });

describe('conveyor CLI', () => {
  it('--help and --version exit 0', () => {
    const help = run('--help');
    assert.equal(help.status, 0);
    assert.match(help.stdout, /Usage:/);
    assert.match(run('--version').stdout, /^\d+\.\d+\.\d+\n$/);
  });
  it('usage errors exit 2 and say what to do', () => {
    const r = run('frobnicate');
    assert.equal(r.status, 2);
    assert.match(r.stderr, /unknown command 'frobnicate'.*\n.*--help/);
    assert.equal(run('queues', '--bogus').status, 2);
  });
  it('store errors exit 1 with the error code and never print the password', () => {
    const r = run('queues', '--url', 'postgres://user:secret@127.0.0.1:1/db?connectTimeoutMs=2000');
    assert.equal(r.status, 1);
    assert.match(r.stderr, /STORE_UNAVAILABLE/);
    assert.doesNotMatch(r.stderr, /secret/);
    const u = run('queues', '--url', 'redis://localhost:6379');
    assert.equal(u.status, 1);
    assert.match(u.stderr, /UNSUPPORTED_STORE/);
  });
  it('migrate, then queues --json lists counts written by the library', async () => {
    assert.equal(run('migrate').status, 0);
    const cv = await Conveyor.open({ url });
    await cv.queue('mail').addBulk([{ name: 'a', data: 1 }, { name: 'b', data: 2 }]);
    await cv.close();
    const r = run('queues', '--json');
    assert.equal(r.status, 0, r.stderr);
    const queues = JSON.parse(r.stdout);
    assert.deepEqual(queues, [{ name: 'mail', paused: false, counts: { waiting: 2, delayed: 0, active: 0, completed: 0, failed: 0, cancelled: 0 } }]);
  });
});
