/**
 * The API endpoints the dashboard needed (src/server/routes/dashboard-api.ts): whoami,
 * stats from the event log, search by data; and the static dashboard route's answers
 * (served build, deep links, caching, the 503 page when not built). Real server on a
 * loopback port, real SQLite file.
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import { createApiKey } from '../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../src/server/server.ts';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';

async function waitUntil(cond: () => boolean | Promise<boolean>, what: string, timeoutMs = 20_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function api(base: string, key?: string) {
  return async (method: string, p: string, body?: unknown): Promise<{ status: number; body: any; headers: Headers }> => {
    const headers: Record<string, string> = {};
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await fetch(base + p, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // HTML or text
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

describe('dashboard API: whoami, stats, search', () => {
  let dir: string;
  let cv: Conveyor;
  let server: RunningServer;
  let call: ReturnType<typeof api>;

  before(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dash-api-'));
    cv = await Conveyor.open({ store: openSqliteStore({ path: path.join(dir, 'c.db'), durability: 'normal', busyTimeoutMs: 5000 }) });
    server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0, maintenance: { intervalMs: 500 } });
    call = api(server.url);
  });
  after(async () => {
    await server?.close();
    await cv?.close({ timeoutMs: 2000 });
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('counts completed, failed and retried jobs per minute with wait percentiles, and reads back the log after a restart', async () => {
    const q = cv.queue<{ n: number }>('stats-q');
    await q.addBulk(Array.from({ length: 20 }, (_, n) => ({ name: 'job', data: { n }, opts: { attempts: n % 5 === 0 ? 2 : 1, backoff: { type: 'fixed', delay: 1 } } })));
    const worker = cv.worker<{ n: number }>('stats-q', async (job) => {
      if (job.data.n % 5 === 0) throw new Error(`boom ${job.data.n}`);
      return job.data.n;
    }, { concurrency: 4 });
    try {
      // 16 complete; 4 fail twice (retried once, then failed for good).
      await waitUntil(async () => {
        const s = await call('GET', '/api/v1/stats?queues=stats-q');
        const row = s.body.queues?.[0];
        return row !== undefined && sum(row.completed) === 16 && sum(row.failed) === 4;
      }, 'stats to count every finished job');
    } finally {
      await worker.close();
    }
    const s = await call('GET', '/api/v1/stats?queues=stats-q&minutes=5');
    assert.equal(s.status, 200);
    assert.equal(s.body.minutes.length, 5);
    assert.equal(s.body.minuteMs, 60_000);
    const row = s.body.queues[0];
    assert.equal(row.queue, 'stats-q');
    assert.equal(row.completed.length, 5);
    assert.equal(sum(row.retried), 4);
    assert.equal(sum(row.added), 20);
    assert.equal(row.waitMs.count, 24, 'one wait per started attempt');
    assert.ok(row.waitMs.p50 !== null && row.waitMs.p50 >= 0 && row.waitMs.p99 >= row.waitMs.p50);
    assert.equal(row.durationMs.count, 24);
    assert.equal(sum(s.body.all.completed), 16, 'all-queues series');

    // A second server on the same store reads the last hour back from the event log.
    const second = await startServer(cv, { port: 0, logger: false, maintenance: false });
    try {
      const call2 = api(second.url);
      await waitUntil(async () => (await call2('GET', '/api/v1/stats')).body.complete === true, 'read-back to finish');
      const again = await call2('GET', '/api/v1/stats?queues=stats-q');
      assert.equal(sum(again.body.queues[0].completed), 16);
      assert.equal(sum(again.body.queues[0].failed), 4);
      // New events are counted once, live, on top of the read-back.
      await q.add('late', { n: 1 });
      const w2 = cv.worker<{ n: number }>('stats-q', async () => 'ok');
      try {
        await waitUntil(async () => sum((await call2('GET', '/api/v1/stats?queues=stats-q')).body.queues[0].completed) === 17, 'live count on the second server');
      } finally {
        await w2.close();
      }
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(sum((await call2('GET', '/api/v1/stats?queues=stats-q')).body.queues[0].completed), 17, 'no double count');
    } finally {
      await second.close();
    }
  });

  it('rejects bad stats parameters with 400', async () => {
    assert.equal((await call('GET', '/api/v1/stats?minutes=0')).status, 400);
    assert.equal((await call('GET', '/api/v1/stats?minutes=61')).status, 400);
    assert.equal((await call('GET', '/api/v1/stats?bogus=1')).status, 400);
  });

  it('searches job data in bounded scans with a cursor that resumes without repeats', async () => {
    const q = cv.queue('search-q');
    await q.addBulk(Array.from({ length: 30 }, (_, n) => ({ name: n % 2 ? 'odd' : 'even', data: { email: n % 3 === 0 ? `User${n}@Example.com` : `other${n}@test.org` } })));
    const all: string[] = [];
    let cursor: string | null = null;
    let calls = 0;
    do {
      const r = await call('GET', `/api/v1/queues/search-q/search?q=example.com&scan=7${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`);
      assert.equal(r.status, 200, JSON.stringify(r.body));
      assert.ok(r.body.scanned <= 7);
      all.push(...r.body.jobs.map((j: any) => j.data.email));
      cursor = r.body.nextCursor;
      calls++;
    } while (cursor !== null && calls < 20);
    assert.equal(all.length, 10, 'every third job matches, case-insensitively');
    assert.equal(new Set(all).size, 10, 'no repeats across pages');
    assert.equal(all[0], 'User27@Example.com', 'newest first');

    // A match limit stops mid-page and the cursor continues right after the last match.
    const first = await call('GET', '/api/v1/queues/search-q/search?q=example.com&limit=3');
    assert.equal(first.body.jobs.length, 3);
    const next = await call('GET', `/api/v1/queues/search-q/search?q=example.com&limit=3&cursor=${encodeURIComponent(first.body.nextCursor)}`);
    assert.deepEqual(next.body.jobs.map((j: any) => j.data.email), ['User18@Example.com', 'User15@Example.com', 'User12@Example.com']);

    const byState = await call('GET', '/api/v1/queues/search-q/search?q=example.com&state=failed');
    assert.deepEqual(byState.body.jobs, []);
    assert.equal((await call('GET', '/api/v1/queues/nope/search?q=x')).status, 404);
    assert.equal((await call('GET', '/api/v1/queues/search-q/search')).status, 400, 'q is required');
    assert.equal((await call('GET', '/api/v1/queues/search-q/search?q=x&state=bogus')).status, 400);
  });

  it('documents the new endpoints in the OpenAPI document', async () => {
    const doc = await call('GET', '/api/v1/openapi.json');
    for (const p of ['/api/v1/whoami', '/api/v1/stats', '/api/v1/queues/{queue}/search']) assert.ok(doc.body.paths[p], p);
  });

  it('serves a 503 page saying to build when the dashboard is not built, and picks up a build without a restart', async () => {
    const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-dash-dir-'));
    const before = process.env.CONVEYOR_DASHBOARD_DIR;
    process.env.CONVEYOR_DASHBOARD_DIR = empty;
    const s = await startServer(cv, { port: 0, logger: false, maintenance: false });
    try {
      const res = await fetch(`${s.url}/dashboard/queues/x`);
      assert.equal(res.status, 503);
      assert.match(res.headers.get('content-type') ?? '', /text\/html/);
      assert.match(await res.text(), /npm run build/);
      assert.equal((await fetch(`${s.url}/health/live`)).status, 200, 'the API works without it');

      fs.mkdirSync(path.join(empty, 'assets'));
      fs.writeFileSync(path.join(empty, 'assets', 'app-abc123.js'), 'console.log(1)\n'.repeat(100));
      fs.writeFileSync(path.join(empty, 'index.html'), '<!doctype html><script src="/dashboard/assets/app-abc123.js"></script>');
      await waitUntil(async () => (await fetch(`${s.url}/dashboard/`)).status === 200, 'the new build to be served');
      const deep = await fetch(`${s.url}/dashboard/queues/email/jobs/7`);
      assert.equal(deep.status, 200);
      assert.match(await deep.text(), /app-abc123/);
      const js = await fetch(`${s.url}/dashboard/assets/app-abc123.js`, { headers: { 'accept-encoding': 'gzip' } });
      assert.equal(js.status, 200);
      assert.equal(js.headers.get('content-encoding'), 'gzip');
      assert.match(js.headers.get('cache-control') ?? '', /immutable/);
      const etag = js.headers.get('etag');
      assert.ok(etag);
      assert.equal((await fetch(`${s.url}/dashboard/assets/app-abc123.js`, { headers: { 'if-none-match': etag } })).status, 304);
    } finally {
      await s.close();
      if (before === undefined) delete process.env.CONVEYOR_DASHBOARD_DIR;
      else process.env.CONVEYOR_DASHBOARD_DIR = before;
      fs.rmSync(empty, { recursive: true, force: true });
    }
  });

  it('answers whoami with the key and its scopes; without keys anything is allowed', async () => {
    const open = await call('GET', '/api/v1/whoami');
    assert.equal(open.status, 200);
    assert.deepEqual(open.body, { authRequired: false, keyId: null, name: null, scopes: ['admin', 'produce', 'consume', 'read'] });

    const admin = await createApiKey(cv.store, { name: 'ops', scopes: ['admin'] });
    const reader = await createApiKey(cv.store, { name: 'viewer', scopes: ['read'] });
    server.context.keys.invalidate();
    const none = await call('GET', '/api/v1/whoami');
    assert.equal(none.status, 401);
    assert.equal(none.body.error.code, 'UNAUTHORIZED');
    assert.equal((await api(server.url, 'cvk_0000000000000000_nope')('GET', '/api/v1/whoami')).status, 401);
    const r = await api(server.url, reader.key)('GET', '/api/v1/whoami');
    assert.deepEqual(r.body, { authRequired: true, keyId: reader.record.id, name: 'viewer', scopes: ['read'] });
    const a = await api(server.url, admin.key)('GET', '/api/v1/whoami');
    assert.deepEqual(a.body.scopes, ['admin', 'produce', 'consume', 'read']);
    assert.equal((await call('GET', '/api/v1/stats')).status, 401, 'stats need a key once keys exist');
    assert.equal((await api(server.url, reader.key)('GET', '/api/v1/stats')).status, 200);
    assert.equal((await api(server.url, reader.key)('GET', '/api/v1/queues/search-q/search?q=x')).status, 200);
  });
});

function sum(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0);
}
