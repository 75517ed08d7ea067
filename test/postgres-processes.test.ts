/**
 * Safe concurrency across real processes on one PostgreSQL schema: several worker
 * processes (test/fixtures/pg-child.ts, driving the Store contract directly) share one
 * queue; one of them is killed with SIGKILL in the middle of a batch. Every job must end
 * completed exactly once, no job may ever be held under two live leases at the same time,
 * and the dead worker's jobs must be recovered once their 1 s leases expire.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { adminQuery, DATABASE_URL, dropSchema, makePgStore, uniqueSchema } from './helpers/postgres.ts';
import { fixture, spawnChild } from './helpers/processes.ts';

const CHILD = fixture('pg-child.ts');

async function waitUntil(cond: () => Promise<boolean>, what: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Hold {
  readonly worker: string;
  readonly token: string;
  /** Wall-clock ms when the claim returned: the worker holds the lease from here… */
  readonly from: number;
  /** …until it completed the job, or else until the lease's expiry. */
  until: number;
}

describe('postgres: real processes', () => {
  it('several processes migrating one new schema at once apply the migration exactly once', async () => {
    const schema = uniqueSchema();
    try {
      const children = Array.from({ length: 5 }, (_, i) => spawnChild(CHILD, ['migrate', DATABASE_URL, schema], { name: `migrator-${i}` }));
      for (const child of children) {
        await child.waitFor((l) => l.includes('migrated'), 'migrated');
        assert.equal(await child.exited, 0, `${child.name} exit code; stderr: ${child.stderr.join('')}`);
        assert.equal(child.stderr.join(''), '');
      }
      const rows = await adminQuery<{ version: number; n: string }>(
        `SELECT version, count(*) AS n FROM "${schema}".schema_migrations GROUP BY version ORDER BY version`,
      );
      assert.ok(rows.length >= 1);
      for (const row of rows) assert.equal(Number(row.n), 1, `migration ${row.version} applied once`);
    } finally {
      await dropSchema(schema);
    }
  });

  it('four worker processes, one SIGKILLed mid-batch: every job completed exactly once, never two live leases at once', async () => {
    const { store, schema, cleanup } = await makePgStore();
    try {
      const queue = 'shared';
      const N = 600;
      const created = await store.enqueueMany({
        jobs: Array.from({ length: N }, (_, i) => ({ queue, name: 'p', data: String(i), opts: { attempts: 1 }, priority: 0, runAt: Date.now() })),
        now: Date.now(),
      });
      const all = created.map((r) => r.id);
      assert.equal(new Set(all).size, N);

      // The victim works slowly (40 ms per batch), so it surely holds claimed jobs when it dies.
      const victim = spawnChild(CHILD, ['worker', DATABASE_URL, schema, queue, '5', '1000', '40'], { name: 'victim' });
      const others = [0, 1, 2].map((i) => spawnChild(CHILD, ['worker', DATABASE_URL, schema, queue, '5', '1000', '5'], { name: `worker-${i}` }));
      const workers = [victim, ...others];
      await victim.waitFor(
        (l) => l.filter((x) => x.startsWith('done ')).length >= 20 && (l.at(-1) ?? '').startsWith('claim '),
        'the victim to hold a fresh batch after 20 completions',
      );
      victim.proc.kill('SIGKILL');
      await victim.exited;
      const victimLines = [...victim.lines];
      const heldAtKill = new Set(victimLines.filter((l) => l.startsWith('claim ')).map((l) => l.split(' ')[1]));
      for (const l of victimLines) if (l.startsWith('done ')) heldAtKill.delete(l.split(' ')[1]);
      assert.ok(heldAtKill.size > 0, 'the victim died holding jobs');

      await waitUntil(async () => (await store.countJobs({ queue })).completed === N, `all ${N} jobs completed`, 40_000);
      assert.deepEqual(await store.countJobs({ queue }), { waiting: 0, delayed: 0, active: 0, completed: N, failed: 0, cancelled: 0 });

      for (const w of others) {
        w.proc.kill('SIGTERM');
        assert.equal(await w.exited, 0, `${w.name} exits cleanly`);
        assert.equal(w.stderr.join(''), '', `${w.name} wrote no errors`);
      }

      // Every job completed exactly once, by the holder of its current lease.
      const doneBy = new Map<string, string[]>();
      const holds = new Map<string, Hold[]>();
      for (const w of workers) {
        const lines = w === victim ? victimLines : w.lines;
        const mine = new Map<string, Hold>();
        for (const line of lines) {
          const [kind, id, token, at, expiresAt] = line.split(' ');
          if (kind === 'claim') {
            const hold: Hold = { worker: w.name, token: token!, from: Number(at), until: Number(expiresAt) };
            mine.set(token!, hold);
            const list = holds.get(id!) ?? [];
            list.push(hold);
            holds.set(id!, list);
          } else if (kind === 'done') {
            const hold = mine.get(token!);
            assert.ok(hold !== undefined, `${w.name} completed ${id} under a token it never claimed`);
            hold.until = Math.min(hold.until, Number(at));
            const list = doneBy.get(id!) ?? [];
            list.push(w.name);
            doneBy.set(id!, list);
          }
        }
      }
      const notOnce = all.filter((id) => doneBy.get(id)?.length !== 1);
      assert.deepEqual(notOnce.map((id) => [id, doneBy.get(id) ?? []]), [], 'every job completed exactly once');

      // No overlap: a job is claimed again only after the previous lease expired.
      const overlaps: string[] = [];
      let reclaimed = 0;
      for (const [id, list] of holds) {
        if (list.length > 1) reclaimed++;
        assert.equal(new Set(list.map((h) => h.token)).size, list.length, `job ${id}: a token was issued twice`);
        const sorted = [...list].sort((x, y) => x.from - y.from);
        for (let i = 1; i < sorted.length; i++) {
          const prev = sorted[i - 1]!;
          const next = sorted[i]!;
          if (next.from <= prev.until) overlaps.push(`${id}: ${prev.worker} held it until ${prev.until}, ${next.worker} claimed it at ${next.from}`);
        }
      }
      assert.deepEqual(overlaps, [], 'no job is ever held under two live leases');
      assert.ok(reclaimed >= heldAtKill.size, `the dead worker's ${heldAtKill.size} jobs were recovered and claimed again (${reclaimed} re-claimed)`);
      for (const id of heldAtKill) assert.ok((holds.get(id!)?.length ?? 0) >= 2, `job ${id} held by the victim was claimed again`);
      assert.ok(
        others.some((w) => w.lines.some((l) => l.startsWith('recovered '))),
        'a surviving worker recovered the expired leases',
      );
      assert.ok(
        others.every((w) => w.lines.some((l) => l.startsWith('done '))),
        'every surviving worker took part',
      );
    } finally {
      await cleanup();
    }
  });
});
