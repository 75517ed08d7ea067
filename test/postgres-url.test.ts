/** Opening PostgreSQL by URL, as users do: Conveyor.open({ url }) and the CLI. */
import { it, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { DATABASE_URL, dropSchema, uniqueSchema } from './helpers/postgres.ts';

const schema = uniqueSchema();
const url = `${DATABASE_URL}${DATABASE_URL.includes('?') ? '&' : '?'}schema=${schema}`;
after(() => dropSchema(schema));

it('Conveyor.open({ url: postgres://… }) migrates, runs jobs, and the CLI sees them', async () => {
  const cv = await Conveyor.open({ url });
  assert.equal(cv.store.kind, 'postgres');
  const q = cv.queue<{ n: number }, number>('pg-url');
  const job = await q.add('square', { n: 7 });
  cv.worker<{ n: number }, number>(q.name, async (j) => j.data.n * j.data.n);
  assert.equal(await q.waitForResult(job.id, { timeoutMs: 10_000 }), 49);
  await cv.close();
  const cli = spawnSync(process.execPath, [path.join(import.meta.dirname, '..', 'src', 'cli', 'main.ts'), 'queues', '--json', '--url', url], { encoding: 'utf8' });
  assert.equal(cli.status, 0, cli.stderr);
  const queues = JSON.parse(cli.stdout) as Array<{ name: string; counts: { completed: number } }>;
  assert.deepEqual(queues.map((x) => [x.name, x.counts.completed]), [['pg-url', 1]]);
});

it('with migrate: false, an unmigrated schema is refused with STORE_SCHEMA and nothing is created', async () => {
  const missing = uniqueSchema();
  const sep = DATABASE_URL.includes('?') ? '&' : '?';
  await assert.rejects(
    Conveyor.open({ url: `${DATABASE_URL}${sep}schema=${missing}`, migrate: false }),
    (e: unknown) => e instanceof Error && 'code' in e && (e as { code: string }).code === 'STORE_SCHEMA',
  );
  const { adminQuery } = await import('./helpers/postgres.ts');
  const rows = await adminQuery('SELECT 1 FROM information_schema.schemata WHERE schema_name = $1', [missing]);
  assert.equal(rows.length, 0, 'migrate: false must not create the schema');
});
