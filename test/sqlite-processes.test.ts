/**
 * Guarantees that need real processes: SIGKILL of a worker and of a producer, several
 * processes sharing one SQLite file, graceful SIGTERM. Real files, real child processes.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { fixture, spawnChild } from './helpers/processes.ts';
import { waitUntil } from './conformance/engine.ts';

const CHILD = fixture('child.ts');

describe('sqlite: real processes', () => {
  let dir: string;
  let url: string;
  let cv: Conveyor;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-proc-'));
    url = `sqlite://${path.join(dir, 'q.db')}`;
    cv = await Conveyor.open({ url });
  });
  after(async () => {
    await cv.close();
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('SIGKILL of a worker mid-batch: every job still ends completed, none lost, none stuck active', async () => {
    const q = cv.queue<{ i: number }>('kill-worker');
    const N = 300;
    const jobs = await q.addBulk(Array.from({ length: N }, (_, i) => ({ name: 'k', data: { i } })));
    assert.equal(jobs.length, N);
    // Lease 1 s so recovery is quick; 20 ms handlers so the kill lands with jobs in flight.
    const victim = spawnChild(CHILD, ['worker', url, q.name, '10', '1000', '20']);
    await victim.waitFor((l) => l.filter((x) => x.startsWith('done')).length >= 50, '50 jobs done by the victim');
    victim.proc.kill('SIGKILL');
    await victim.exited;
    const countsAtKill = await q.getCounts();
    assert.ok(countsAtKill.active > 0, `the kill should leave jobs active (held by the dead worker), got ${JSON.stringify(countsAtKill)}`);

    const killedAt = Date.now();
    const rescuer = spawnChild(CHILD, ['worker', url, q.name, '10', '1000', '0']);
    await waitUntil(async () => (await q.getCounts()).completed === N, `all ${N} jobs completed`, 30_000);
    const recoveryMs = Date.now() - killedAt;
    const counts = await q.getCounts();
    assert.deepEqual(counts, { waiting: 0, delayed: 0, active: 0, completed: N, failed: 0, cancelled: 0 });
    await rescuer.waitFor((l) => l.some((x) => x.startsWith('stalled')), 'the rescuer to report stalled jobs');
    // Every job ran at least once; the ones running at the kill ran twice (at-least-once).
    const ran = new Set([...victim.lines, ...rescuer.lines].filter((l) => l.startsWith('done')).map((l) => l.slice(5)));
    assert.equal(ran.size, N);
    rescuer.proc.kill('SIGTERM');
    assert.equal(await rescuer.exited, 0);
    assert.ok(recoveryMs < 30_000, `recovered in ${recoveryMs} ms`);
  });

  it('SIGKILL of a producer: every add that was acknowledged is in the store', async () => {
    const q = cv.queue('kill-producer');
    const producer = spawnChild(CHILD, ['producer', url, q.name, '200000']);
    await producer.waitFor((l) => l.filter((x) => x.startsWith('added')).length >= 2000, '2000 acknowledged adds');
    producer.proc.kill('SIGKILL');
    await producer.exited;
    const acked = producer.lines.filter((l) => l.startsWith('added')).map((l) => l.slice(6));
    assert.ok(!producer.lines.includes('finished'), 'the producer was killed before it finished');
    const missing: string[] = [];
    for (const id of acked) if ((await q.getJob(id)) === null) missing.push(id);
    assert.deepEqual(missing, [], `${missing.length} acknowledged jobs lost`);
    await q.drain();
  });

  it('several processes share one file: one producer, three workers, every job completed exactly once, no busy errors', async () => {
    const q = cv.queue('shared');
    const workers = [0, 1, 2].map(() => spawnChild(CHILD, ['worker', url, q.name, '8', '30000', '1']));
    for (const w of workers) await w.waitFor((l) => l.includes('ready'), 'worker ready');
    const N = 3000;
    const producer = spawnChild(CHILD, ['producer', url, q.name, String(N)]);
    // The parent adds too, concurrently with the child producer.
    await Promise.all(Array.from({ length: 500 }, (_, i) => q.add('parent', { i })));
    await producer.waitFor((l) => l.includes('finished'), 'producer finished', 60_000);
    await waitUntil(async () => (await q.getCounts()).completed === N + 500, 'all jobs completed', 60_000);
    const done = workers.flatMap((w) => w.lines.filter((l) => l.startsWith('done')).map((l) => l.slice(5)));
    assert.equal(done.length, N + 500, 'no job ran twice');
    assert.equal(new Set(done).size, N + 500);
    assert.ok(workers.every((w) => w.lines.some((l) => l.startsWith('done'))), 'every worker took part');
    for (const w of workers) {
      w.proc.kill('SIGTERM');
      assert.equal(await w.exited, 0);
      assert.equal(w.stderr.join(''), '', 'no errors (SQLITE_BUSY never reaches the user)');
    }
    assert.equal(producer.stderr.join(''), '');
  });

  it('SIGTERM drains gracefully: running jobs finish, nothing is left active', async () => {
    const q = cv.queue('sigterm');
    await q.addBulk(Array.from({ length: 40 }, (_, i) => ({ name: 't', data: { i } })));
    const w = spawnChild(CHILD, ['worker', url, q.name, '4', '30000', '200']);
    await w.waitFor((l) => l.some((x) => x.startsWith('done')), 'first job done');
    w.proc.kill('SIGTERM');
    assert.equal(await w.exited, 0);
    const counts = await q.getCounts();
    assert.equal(counts.active, 0, 'running jobs finished and buffered ones were handed back');
    assert.equal(counts.completed + counts.waiting, 40);
    assert.equal(counts.completed, w.lines.filter((l) => l.startsWith('done')).length);
  });
});
