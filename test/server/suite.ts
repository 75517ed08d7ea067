/**
 * The HTTP server, driven over real HTTP on a loopback port against a real store. Every
 * store runs this suite unchanged (test/server-sqlite.test.ts, test/server-postgres.test.ts).
 */
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Conveyor } from '../../src/index.ts';
import { createApiKey } from '../../src/engine/api-keys.ts';
import { startServer, type RunningServer } from '../../src/server/server.ts';
import type { Store } from '../../src/store/contract.ts';
import { waitUntil } from '../conformance/engine.ts';

export type StoreFactory = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

interface Reply {
  status: number;
  body: any;
  headers: Headers;
}

function client(base: string, key?: string) {
  return async function call(method: string, path: string, body?: unknown, extra: { raw?: string; headers?: Record<string, string> } = {}): Promise<Reply> {
    const headers: Record<string, string> = { ...(extra.headers ?? {}) };
    if (key !== undefined) headers.authorization = `Bearer ${key}`;
    let payload: string | undefined;
    if (extra.raw !== undefined) {
      payload = extra.raw;
      headers['content-type'] ??= 'application/json';
    } else if (body !== undefined) {
      payload = JSON.stringify(body);
      headers['content-type'] = 'application/json';
    }
    const res = await fetch(base + path, { method, headers, ...(payload === undefined ? {} : { body: payload }) });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text === '' ? null : JSON.parse(text);
    } catch {
      // not JSON (metrics)
    }
    return { status: res.status, body: parsed, headers: res.headers };
  };
}

function assertError(r: Reply, status: number, code: string): void {
  assert.equal(r.status, status, `expected ${status} ${code}, got ${r.status} ${JSON.stringify(r.body)}`);
  assert.equal(typeof r.body?.error?.message, 'string', 'error body has a message');
  assert.equal(r.body.error.code, code);
  assert.ok(!JSON.stringify(r.body).includes('    at '), 'no stack trace leaks to clients');
}

/** Reads an SSE stream until `count` events arrived (or times out). */
function readEvents(url: string, headers: Record<string, string>, count: number, timeoutMs = 10_000): Promise<Array<{ id: string; event: string; data: any }>> {
  return new Promise((resolve, reject) => {
    const events: Array<{ id: string; event: string; data: any }> = [];
    const req = http.get(url, { headers }, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`SSE status ${res.statusCode}`));
        res.resume();
        return;
      }
      let buf = '';
      res.setEncoding('utf8').on('data', (chunk: string) => {
        buf += chunk;
        let sep;
        while ((sep = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, sep);
          buf = buf.slice(sep + 2);
          const fields: Record<string, string> = {};
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const i = line.indexOf(':');
            if (i > 0) fields[line.slice(0, i)] = line.slice(i + 1).trimStart();
          }
          if (fields.event && fields.data) events.push({ id: fields.id ?? '', event: fields.event, data: JSON.parse(fields.data) });
          if (events.length >= count) {
            clearTimeout(timer);
            req.destroy();
            resolve(events);
            return;
          }
        }
      });
    });
    req.on('error', (err) => {
      if (events.length < count) reject(err);
    });
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error(`SSE: got ${events.length} of ${count} events: ${JSON.stringify(events)}`));
    }, timeoutMs);
  });
}

export function serverSuite(label: string, makeStore: StoreFactory): void {
  describe(`server: ${label}`, () => {
    let cv: Conveyor;
    let cleanup: () => Promise<void>;
    let server: RunningServer;
    let api: ReturnType<typeof client>;
    let n = 0;
    const qname = () => `sq${++n}-${process.pid}`;

    before(async () => {
      const made = await makeStore();
      cleanup = made.cleanup;
      cv = await Conveyor.open({ store: made.store, maxPayloadBytes: 64 * 1024 });
      server = await startServer(cv, { port: 0, logger: false, keyCacheMs: 0, bodyLimit: 1024 * 1024, maintenance: { intervalMs: 200 } });
      api = client(server.url);
    });
    after(async () => {
      await server?.close();
      await cv?.close({ timeoutMs: 2000 });
      await cleanup?.();
    });

    it('answers health checks and serves its OpenAPI document', async () => {
      assert.equal((await api('GET', '/health/live')).status, 200);
      await waitUntil(async () => (await api('GET', '/health/ready')).status === 200, 'ready');
      const ready = await api('GET', '/health/ready');
      assert.equal(ready.body.checks.store.ok, true);
      const detail = await api('GET', '/health');
      assert.equal(detail.status, 200);
      assert.equal(typeof detail.body.store.latencyMs, 'number');
      const doc = await api('GET', '/api/v1/openapi.json');
      assert.equal(doc.status, 200);
      assert.match(doc.body.openapi, /^3\./);
      for (const p of ['/api/v1/queues/{queue}/jobs', '/api/v1/claim', '/api/v1/leases/complete', '/api/v1/events', '/api/v1/keys']) {
        assert.ok(doc.body.paths[p], `OpenAPI documents ${p}`);
      }
    });

    it('adds jobs one by one and in bulk, with the library\'s options and dedup', async () => {
      const q = qname();
      const one = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'email', data: { to: 'a@b.c' }, opts: { priority: 5, attempts: 3 } });
      assert.equal(one.status, 201);
      assert.match(one.body.id, /^\d+$/);
      assert.equal(one.body.state, 'waiting');
      const delayed = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'later', data: null, opts: { runAt: new Date(Date.now() + 60_000).toISOString() } });
      assert.equal(delayed.body.state, 'delayed');
      const a = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', data: 1, opts: { jobId: 'order-7' } });
      const b = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', data: 2, opts: { jobId: 'order-7' } });
      assert.equal(a.body.id, 'order-7');
      assert.equal(a.status, 201);
      assert.equal(a.body.duplicate, false);
      assert.equal(b.body.id, 'order-7');
      assert.equal(b.status, 200, 'a duplicate adds nothing: 200, not 201');
      assert.equal(b.body.duplicate, true);
      assert.equal((await cv.queue(q).getJob('order-7'))?.data, 1, 'the first job is kept');
      const bulk = await api('POST', `/api/v1/queues/${q}/jobs/bulk`, { jobs: [{ name: 'a', data: 1 }, { name: 'b', data: 2, opts: { delay: 60_000 } }] });
      assert.equal(bulk.status, 201);
      assert.deepEqual(bulk.body.jobs.map((j: any) => j.state), ['waiting', 'delayed']);
      const job = await cv.queue(q).getJob(one.body.id);
      assert.deepEqual(job?.data, { to: 'a@b.c' });
      assert.equal(job?.priority, 5);
      assert.equal(job?.opts.attempts, 3);
      const counts = await cv.queue(q).getCounts();
      assert.equal(counts.waiting + counts.delayed, 5);
    });

    it('rejects bad input with a typed 4xx and writes nothing', async () => {
      const q = qname();
      const cases: Array<[Reply, number, string]> = [
        [await api('POST', `/api/v1/queues/${q}/jobs`, undefined, { raw: '{"name": "x", ' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, undefined, { raw: '' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, undefined, { raw: 'name=x', headers: { 'content-type': 'application/x-www-form-urlencoded' } }), 415, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 42 }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', data: 1, extra: true }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { priorty: 1 } }), 400, 'UNKNOWN_OPTION'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { delay: -5 } }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { runAt: 'next tuesday' } }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { attempts: '3' } }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/bad%20queue/jobs`, { name: 'x' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', data: 'y'.repeat(70 * 1024) }), 413, 'PAYLOAD_TOO_LARGE'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, undefined, { raw: JSON.stringify({ name: 'x', data: 'z'.repeat(2 * 1024 * 1024) }) }), 413, 'PAYLOAD_TOO_LARGE'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, undefined, { raw: '{"name":"x","__proto__":{"polluted":true}}' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs/bulk`, { jobs: [{ name: 'ok' }, { name: 'bad', opts: { priority: 1.5 } }] }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs/bulk`, { jobs: [] }), 400, 'INVALID_ARGUMENT'],
        [await api('GET', `/api/v1/nope`), 404, 'NOT_FOUND'],
        [await api('GET', `/api/v1/queues/${q}`), 404, 'NOT_FOUND'],
        [await api('GET', `/api/v1/queues/${q}/jobs?state=done`), 404, 'NOT_FOUND'],
        [await api('GET', `/api/v1/queues/${q}/jobs/123`), 404, 'JOB_NOT_FOUND'],
        [await api('GET', `/api/v1/queues/${q}/jobs?limit=abc`), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/claim`, { queues: [] }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/claim`, { queues: [q], limit: 100000 }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/leases/complete`, { items: [{ id: '1' }] }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs/1/complete`, { token: 'nope' }), 404, 'JOB_NOT_FOUND'],
        [await api('POST', `/api/v1/queues/bad%20q/jobs/1/complete`, { token: 'nope' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'nul\u0000name' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { jobId: 'a\u0000b' } }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { runAt: 1e300 } }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/claim`, { queues: [q], workerId: 'w\u0000' }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/workers/report`, { id: 'w\u0000', host: 'h', pid: 1, queues: [q], concurrency: 1, active: 0 }), 400, 'INVALID_ARGUMENT'],
        [await api('GET', `/api/v1/queues/${q}/jobs?cursor=zzz`), 404, 'NOT_FOUND'],
        [await api('GET', `/api/v1/queues/${q}/jobs/a%00b`), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/workers/report`, { id: 'w', host: 'h', pid: 1e300, queues: [q], concurrency: 1, active: 0 }), 400, 'INVALID_ARGUMENT'],
        [await api('POST', `/api/v1/workers/report`, { id: 'w', host: 'h', pid: 1, queues: ['bad queue'], concurrency: 1, active: 0 }), 400, 'INVALID_ARGUMENT'],
        [await api('GET', `/api/v1/events?lastEventId=abc`), 400, 'INVALID_ARGUMENT'],
      ];
      for (const [reply, status, code] of cases) assertError(reply, status, code);
      assert.deepEqual((await cv.store.listQueues()).filter((x) => x.name === q), [], 'nothing was written');
      assert.equal((await api('GET', '/health/live')).status, 200, 'still serving');
    });

    it('serves a remote worker: claim, complete, fail, heartbeat, progress, logs, stale tokens', async () => {
      const q = qname();
      await api('POST', `/api/v1/queues/${q}/jobs/bulk`, {
        jobs: [
          { name: 'ok', data: { n: 1 } },
          { name: 'flaky', data: { n: 2 }, opts: { attempts: 2 } },
          { name: 'fatal', data: { n: 3 }, opts: { attempts: 5 } },
        ],
      });
      const claimed = await api('POST', '/api/v1/claim', { queues: [q], limit: 10, leaseMs: 5000, workerId: 'remote-1' });
      assert.equal(claimed.status, 200);
      assert.equal(claimed.body.jobs.length, 3);
      const [ok, flaky, fatal] = claimed.body.jobs;
      assert.deepEqual(ok.data, { n: 1 });
      assert.equal(ok.attempt, 1);
      assert.equal(typeof ok.lease.token, 'string');

      const hb = await api('POST', `/api/v1/queues/${q}/jobs/${ok.id}/heartbeat`, { token: ok.lease.token, leaseMs: 10_000 });
      assert.equal(hb.status, 200);
      assert.ok(hb.body.expiresAt > Date.now() + 5000);
      assert.equal((await api('POST', `/api/v1/queues/${q}/jobs/${ok.id}/progress`, { token: ok.lease.token, progress: { pct: 50 } })).status, 200);
      assert.equal((await api('POST', `/api/v1/queues/${q}/jobs/${ok.id}/logs`, { token: ok.lease.token, messages: ['half way'] })).status, 200);
      assertError(await api('POST', `/api/v1/queues/${q}/jobs/${ok.id}/progress`, { token: 'stale', progress: 1 }), 409, 'LEASE_LOST');

      const done = await api('POST', '/api/v1/leases/complete', { items: [{ id: ok.id, token: ok.lease.token, result: { sent: true } }, { id: ok.id, token: 'wrong' }] });
      assert.deepEqual(done.body.results.map((r: any) => r.status), ['applied', 'stale']);
      assertError(await api('POST', `/api/v1/queues/${q}/jobs/${ok.id}/complete`, { token: ok.lease.token }), 409, 'LEASE_LOST');

      const failed = await api('POST', '/api/v1/leases/fail', {
        items: [
          { id: flaky.id, token: flaky.lease.token, queue: q, error: { message: 'timeout talking to smtp' } },
          { id: fatal.id, token: fatal.lease.token, queue: q, error: { message: 'bad address', stack: 'Error: bad address\n    at x' }, retry: false },
        ],
      });
      assert.deepEqual(failed.body.results.map((r: any) => [r.status, r.state]), [['applied', 'waiting'], ['applied', 'failed']]);

      const detail = await api('GET', `/api/v1/queues/${q}/jobs/${ok.id}`);
      assert.equal(detail.body.job.state, 'completed');
      assert.deepEqual(detail.body.job.result, { sent: true });
      assert.deepEqual(detail.body.job.progress, { pct: 50 });
      assert.deepEqual(detail.body.logs.entries.map((e: any) => e.message), ['half way']);
      const fatalDetail = await api('GET', `/api/v1/queues/${q}/jobs/${fatal.id}`);
      assert.equal(fatalDetail.body.job.state, 'failed');
      assert.equal(fatalDetail.body.job.errors[0].message, 'bad address');
      assert.match(fatalDetail.body.job.errors[0].stack, /at x/);

      // The path names the queue: a job of another queue is not found there.
      const other = qname();
      assertError(await api('POST', `/api/v1/queues/${other}/jobs/${flaky.id}/heartbeat`, { token: flaky.lease.token }), 404, 'JOB_NOT_FOUND');

      // The retried job comes back as attempt 2; release gives it back unstarted.
      const again = await api('POST', '/api/v1/claim', { queues: [q], limit: 10 });
      assert.equal(again.body.jobs.length, 1);
      assert.equal(again.body.jobs[0].attempt, 2);
      const released = await api('POST', '/api/v1/leases/release', { items: [{ id: again.body.jobs[0].id, token: again.body.jobs[0].lease.token }] });
      assert.equal(released.body.results[0].status, 'applied');
      assert.equal((await cv.queue(q).getJob(flaky.id))?.state, 'waiting');
    });

    it('fails a job claimed through another server by its queue, and refuses to guess without it', async () => {
      const q = qname();
      await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'x', opts: { attempts: 3 } });
      const job = (await api('POST', '/api/v1/claim', { queues: [q] })).body.jobs[0];
      const other = await startServer(cv, { port: 0, logger: false, maintenance: false });
      try {
        const call = client(other.url);
        assertError(await call('POST', '/api/v1/leases/fail', { items: [{ id: job.id, token: job.lease.token, error: { message: 'x' } }] }), 400, 'INVALID_ARGUMENT');
        assert.equal((await cv.queue(q).getJob(job.id))?.state, 'active', 'nothing changed');
        const r = await call('POST', '/api/v1/leases/fail', { items: [{ id: job.id, token: job.lease.token, queue: q, error: { message: 'x' } }] });
        assert.deepEqual([r.body.results[0].status, r.body.results[0].state], ['applied', 'waiting'], 'attempts left: retried');
      } finally {
        await other.close();
      }
    });

    it('keeps two queues\' jobs with the same jobId apart', async () => {
      const [qa, qb] = [qname(), qname()];
      await api('POST', `/api/v1/queues/${qa}/jobs`, { name: 'x', opts: { jobId: 'same-id', attempts: 1 } });
      await api('POST', `/api/v1/queues/${qb}/jobs`, { name: 'x', opts: { jobId: 'same-id', attempts: 3 } });
      const a = (await api('POST', '/api/v1/claim', { queues: [qa] })).body.jobs[0];
      const b = (await api('POST', '/api/v1/claim', { queues: [qb] })).body.jobs[0];
      assert.equal((await api('POST', `/api/v1/queues/${qa}/jobs/same-id/heartbeat`, { token: a.lease.token })).status, 200);
      assert.equal((await api('POST', `/api/v1/queues/${qb}/jobs/same-id/heartbeat`, { token: b.lease.token })).status, 200);
      // Naming the wrong queue in a batch never acts on that queue's job with these options.
      const wrong = await api('POST', '/api/v1/leases/fail', { items: [{ id: 'same-id', token: a.lease.token, queue: qb, error: { message: 'x' } }] });
      assert.equal(wrong.body.results[0].status, 'stale');
      assert.equal((await cv.queue(qa).getJob('same-id'))?.state, 'active');
      const failA = await api('POST', '/api/v1/leases/fail', { items: [{ id: 'same-id', token: a.lease.token, queue: qa, error: { message: 'x' } }] });
      assert.equal(failA.body.results[0].state, 'failed', 'attempts: 1 in queue a: failed for good');
      const failB = await api('POST', '/api/v1/leases/fail', { items: [{ id: 'same-id', token: b.lease.token, queue: qb, error: { message: 'x' } }] });
      assert.equal(failB.body.results[0].state, 'waiting', 'attempts: 3 in queue b: retried');
    });

    it('long-polls a claim until a job arrives', async () => {
      const q = qname();
      const t0 = Date.now();
      const pending = api('POST', '/api/v1/claim', { queues: [q], limit: 5, waitMs: 10_000 });
      await new Promise((r) => setTimeout(r, 200));
      await cv.queue(q).add('wake', { n: 1 });
      const claimed = await pending;
      assert.equal(claimed.body.jobs.length, 1);
      assert.ok(Date.now() - t0 < 9000, 'answered when the job arrived, not at the timeout');
      const empty = await api('POST', '/api/v1/claim', { queues: [q], waitMs: 300 });
      assert.deepEqual(empty.body.jobs, []);
    });

    it('recovers the job of a remote worker whose lease expired, and refuses its late ack', async () => {
      const q = qname();
      await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'slow', data: null, opts: { attempts: 3 } });
      const first = (await api('POST', '/api/v1/claim', { queues: [q], leaseMs: 1000 })).body.jobs[0];
      // The server's maintenance loop (every 200 ms here) returns the expired lease to waiting.
      await waitUntil(async () => (await cv.queue(q).getJob(first.id))?.state === 'waiting', 'stalled job recovered', 10_000);
      const second = (await api('POST', '/api/v1/claim', { queues: [q], leaseMs: 5000 })).body.jobs[0];
      assert.equal(second.id, first.id);
      assertError(await api('POST', `/api/v1/queues/${q}/jobs/${first.id}/complete`, { token: first.lease.token, result: 'late' }), 409, 'LEASE_LOST');
      assert.equal((await api('POST', `/api/v1/queues/${q}/jobs/${second.id}/complete`, { token: second.lease.token, result: 'ok' })).status, 200);
      assert.equal((await cv.queue(q).getJob(first.id))?.result, 'ok');
    });

    it('administers queues and jobs with the library\'s operations', async () => {
      const q = qname();
      const jobs = Array.from({ length: 7 }, (_, i) => ({ name: i % 2 ? 'odd' : 'even', data: { i } }));
      await api('POST', `/api/v1/queues/${q}/jobs/bulk`, { jobs });
      const list = await api('GET', '/api/v1/queues');
      assert.equal(list.body.queues.find((x: any) => x.name === q).counts.waiting, 7);

      const page1 = await api('GET', `/api/v1/queues/${q}/jobs?state=waiting&limit=3`);
      assert.equal(page1.body.jobs.length, 3);
      const page2 = await api('GET', `/api/v1/queues/${q}/jobs?state=waiting&limit=3&cursor=${encodeURIComponent(page1.body.nextCursor)}`);
      const page3 = await api('GET', `/api/v1/queues/${q}/jobs?state=waiting&limit=3&cursor=${encodeURIComponent(page2.body.nextCursor)}`);
      const ids = [...page1.body.jobs, ...page2.body.jobs, ...page3.body.jobs].map((j: any) => j.id);
      assert.equal(new Set(ids).size, 7);
      assert.equal(page3.body.nextCursor, null);
      const odd = await api('GET', `/api/v1/queues/${q}/jobs?name=odd`);
      assert.equal(odd.body.jobs.length, 3);
      const byId = await api('GET', `/api/v1/queues/${q}/jobs?id=${ids[0]}`);
      assert.equal(byId.body.jobs[0].id, ids[0]);

      assert.equal((await api('POST', `/api/v1/queues/${q}/pause`)).body.paused, true);
      assert.equal((await api('GET', `/api/v1/queues/${q}`)).body.paused, true);
      assert.deepEqual((await api('POST', '/api/v1/claim', { queues: [q] })).body.jobs, [], 'a paused queue gives no jobs');
      assert.equal((await api('POST', `/api/v1/queues/${q}/resume`)).body.paused, false);

      const cancel = await api('POST', `/api/v1/queues/${q}/jobs/${ids[0]}/cancel`);
      assert.equal(cancel.body.state, 'cancelled');
      assertError(await api('POST', `/api/v1/queues/${q}/jobs/${ids[1]}/retry`), 409, 'INVALID_STATE');
      assert.equal((await api('POST', `/api/v1/queues/${q}/jobs/${ids[0]}/retry`)).body.state, 'waiting');
      assertError(await api('POST', `/api/v1/queues/${q}/jobs/${ids[1]}/promote`), 409, 'INVALID_STATE');
      assert.equal((await api('DELETE', `/api/v1/queues/${q}/jobs/${ids[1]}`)).status, 204);
      assertError(await api('DELETE', `/api/v1/queues/${q}/jobs/${ids[1]}`), 404, 'JOB_NOT_FOUND');

      const claimed = (await api('POST', '/api/v1/claim', { queues: [q], limit: 2 })).body.jobs;
      await api('POST', '/api/v1/leases/fail', { items: claimed.map((j: any) => ({ id: j.id, token: j.lease.token, error: { message: 'boom' }, retry: false })) });
      assert.equal((await api('POST', `/api/v1/queues/${q}/retry-failed`, {})).body.count, 2);
      const delayed = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'd', opts: { delay: 600_000 } });
      assert.equal((await api('POST', `/api/v1/queues/${q}/jobs/${delayed.body.id}/promote`)).body.state, 'waiting');
      assertError(await api('GET', `/api/v1/queues/${q}/jobs?cursor=not-a-cursor`), 400, 'INVALID_ARGUMENT');
      assertError(await api('GET', `/api/v1/queues/${q}/jobs/999999/logs`), 404, 'JOB_NOT_FOUND');
      assert.equal((await api('POST', `/api/v1/queues/${q}/retry-failed`)).status, 200, 'no body is fine when every field is optional');
      assert.equal((await api('POST', `/api/v1/queues/${q}/clean`, { state: 'waiting', keep: 5 })).body.count, 2);
      assertError(await api('POST', `/api/v1/queues/${q}/clean`, { state: 'active' }), 400, 'INVALID_ARGUMENT');
      assert.equal((await api('POST', `/api/v1/queues/${q}/drain`, {})).body.count, 5);
    });

    it('streams events live and replays what a reconnecting client missed', async () => {
      const q = qname();
      const live = readEvents(`${server.url}/api/v1/events?queues=${q}`, {}, 4);
      await new Promise((r) => setTimeout(r, 300));
      const added = await api('POST', `/api/v1/queues/${q}/jobs`, { name: 'e', data: 1 });
      const job = (await api('POST', '/api/v1/claim', { queues: [q] })).body.jobs[0];
      await api('POST', `/api/v1/queues/${q}/jobs/${job.id}/progress`, { token: job.lease.token, progress: { pct: 10 } });
      await api('POST', `/api/v1/queues/${q}/jobs/${job.id}/complete`, { token: job.lease.token });
      const events = await live;
      assert.deepEqual(events.map((e) => e.event), ['added', 'active', 'progress', 'completed']);
      assert.ok(events.every((e) => e.data.queue === q && e.data.jobs[0].id === added.body.id));
      assert.deepEqual(events[2]!.data.jobs[0].progress, { pct: 10 }, 'progress is a JSON value, not JSON text');
      for (let i = 1; i < events.length; i++) assert.ok(Number(events[i - 1]!.id) < Number(events[i]!.id), 'ids increase');

      // Missed while disconnected: resume after the first event, get the rest, then live ones.
      const resumed = readEvents(`${server.url}/api/v1/events?queues=${q}`, { 'last-event-id': events[0]!.id }, 4);
      await new Promise((r) => setTimeout(r, 300));
      await api('POST', `/api/v1/queues/${q}/pause`);
      const replay = await resumed;
      assert.deepEqual(replay.map((e) => e.event), ['active', 'progress', 'completed', 'paused']);
      assert.deepEqual(replay.map((e) => e.id).slice(0, 3), events.slice(1).map((e) => e.id));

      // An id from another store (or long pruned) is answered with a reset, not silence.
      const reset = await readEvents(`${server.url}/api/v1/events?queues=${q}`, { 'last-event-id': '9999999999' }, 1);
      assert.equal(reset[0]!.event, 'reset');
    });

    it('exports Prometheus metrics from the event log', async () => {
      const q = qname();
      await api('POST', `/api/v1/queues/${q}/jobs/bulk`, { jobs: [{ name: 'm' }, { name: 'm' }, { name: 'm', opts: { attempts: 1 } }] });
      const jobs = (await api('POST', '/api/v1/claim', { queues: [q], limit: 3 })).body.jobs;
      await api('POST', '/api/v1/leases/complete', { items: jobs.slice(0, 2).map((j: any) => ({ id: j.id, token: j.lease.token })) });
      await api('POST', '/api/v1/leases/fail', { items: [{ id: jobs[2].id, token: jobs[2].lease.token, error: { message: 'x' } }] });
      const metric = async (line: RegExp) => {
        const text = (await api('GET', '/metrics')).body as string;
        return line.test(text);
      };
      await waitUntil(() => metric(new RegExp(`conveyor_jobs_completed_total\\{queue="${q}"\\} 2`)), 'completed counter');
      assert.ok(await metric(new RegExp(`conveyor_jobs_failed_total\\{queue="${q}"\\} 1`)));
      assert.ok(await metric(new RegExp(`conveyor_jobs\\{queue="${q}",state="completed"\\} 2`)));
      assert.ok(await metric(new RegExp(`conveyor_job_wait_seconds_count\\{queue="${q}"\\} 3`)));
      assert.ok(await metric(/conveyor_job_duration_seconds_bucket/));
      assert.ok(await metric(/conveyor_process_cpu_user_seconds_total/));
      assert.ok(!(await metric(new RegExp(`id="${jobs[0].id}"`))), 'no job ids in labels');
    });

    it('lists direct and remote workers', async () => {
      const q = qname();
      const report = await api('POST', '/api/v1/workers/report', { id: `remote-${q}`, host: 'box-1', pid: 42, queues: [q], concurrency: 4, active: 1 });
      assert.equal(report.status, 200);
      const listed = await api('GET', '/api/v1/workers');
      const mine = listed.body.workers.find((w: any) => w.id === `remote-${q}`);
      assert.equal(mine.kind, 'remote');
      assert.equal(mine.host, 'box-1');
      assert.equal(mine.stale, false);
      assert.equal((await api('DELETE', `/api/v1/workers/remote-${q}`)).status, 204);
      assert.ok(!(await api('GET', '/api/v1/workers')).body.workers.some((w: any) => w.id === `remote-${q}`));
    });

    it('requires keys with the right scope once a key exists', async () => {
      const q = qname();
      const admin = await createApiKey(cv.store, { name: 'admin', scopes: ['admin'] });
      const reader = await createApiKey(cv.store, { name: 'dash', scopes: ['read'] });
      const producer = await createApiKey(cv.store, { name: 'api', scopes: ['produce'] });
      server.context.keys.invalidate();
      try {
        assertError(await api('GET', '/api/v1/queues'), 401, 'UNAUTHORIZED');
        assertError(await client(server.url, 'cvk_0000000000000000_' + 'A'.repeat(43))('GET', '/api/v1/queues'), 401, 'UNAUTHORIZED');
        assertError(await client(server.url, admin.key.slice(0, -1) + (admin.key.endsWith('A') ? 'B' : 'A'))('GET', '/api/v1/queues'), 401, 'UNAUTHORIZED');
        assertError(await client(server.url, 'garbage')('GET', '/api/v1/queues'), 401, 'UNAUTHORIZED');
        assert.equal((await api('GET', '/health/live')).status, 200, 'liveness needs no key');
        assert.equal((await api('GET', '/health/ready')).status, 200, 'readiness needs no key');

        const asReader = client(server.url, reader.key);
        assert.equal((await asReader('GET', '/api/v1/queues')).status, 200);
        assert.equal((await asReader('GET', '/metrics')).status, 200);
        assertError(await asReader('POST', `/api/v1/queues/${q}/jobs`, { name: 'x' }), 403, 'FORBIDDEN');
        assertError(await asReader('POST', `/api/v1/queues/${q}/pause`), 403, 'FORBIDDEN');

        const asProducer = client(server.url, producer.key);
        assert.equal((await asProducer('POST', `/api/v1/queues/${q}/jobs`, { name: 'x' })).status, 201);
        assertError(await asProducer('POST', '/api/v1/claim', { queues: [q] }), 403, 'FORBIDDEN');

        const asAdmin = client(server.url, admin.key);
        const made = await asAdmin('POST', '/api/v1/keys', { name: 'worker-fleet', scopes: ['consume'] });
        assert.equal(made.status, 201);
        assert.match(made.body.key, /^cvk_/);
        const keys = await asAdmin('GET', '/api/v1/keys');
        assert.ok(keys.body.keys.some((k: any) => k.id === made.body.id));
        assert.ok(!JSON.stringify(keys.body).includes('hash'), 'listings never show hashes');
        assert.equal((await client(server.url, made.body.key)('POST', '/api/v1/claim', { queues: [q] })).status, 200);
        assert.equal((await asAdmin('DELETE', `/api/v1/keys/${made.body.id}`)).status, 204);
        assertError(await client(server.url, made.body.key)('POST', '/api/v1/claim', { queues: [q] }), 401, 'UNAUTHORIZED');
      } finally {
        for (const k of [admin, reader, producer]) await cv.store.revokeApiKey({ id: k.record.id, now: Date.now() });
        server.context.keys.invalidate();
      }
      // With every key revoked, a loopback server is open again (local development).
      assert.equal((await api('GET', '/api/v1/queues')).status, 200);
    });

    it('closes gracefully: long polls answer, event streams end, in-flight requests are not cut', async () => {
      const q = qname();
      const closing = await startServer(cv, { port: 0, logger: false, maintenance: false });
      const call = client(closing.url);
      const stream = new Promise<string>((resolve, reject) => {
        http.get(`${closing.url}/api/v1/events`, (res) => {
          let text = '';
          res.setEncoding('utf8').on('data', (c: string) => (text += c));
          res.on('end', () => resolve(text));
        }).on('error', reject);
      });
      const poll = call('POST', '/api/v1/claim', { queues: [q], waitMs: 60_000 });
      await new Promise((r) => setTimeout(r, 300));
      await closing.close();
      const answered = await poll;
      assert.equal(answered.status, 200, 'the long poll got an answer, not a cut connection');
      assert.deepEqual(answered.body.jobs, []);
      assert.match(await stream, /: connected/, 'the event stream ended cleanly');
    });

    it('refuses a non-loopback address while no key exists, and rate-limits per key', async () => {
      await assert.rejects(startServer(cv, { host: '0.0.0.0', port: 0, logger: false, maintenance: false }), (err: any) => {
        assert.equal(err.code, 'INVALID_ARGUMENT');
        assert.match(err.message, /conveyor keys create/);
        return true;
      });
      const limited = await startServer(cv, { port: 0, logger: false, maintenance: false, rateLimitPerMinute: 3 });
      try {
        const call = client(limited.url);
        for (let i = 0; i < 3; i++) assert.equal((await call('GET', '/api/v1/queues')).status, 200);
        const r = await call('GET', '/api/v1/queues');
        assertError(r, 429, 'RATE_LIMITED');
        assert.ok(Number(r.headers.get('retry-after')) >= 1);
        assert.equal((await call('GET', '/health/live')).status, 200, 'health is never rate limited');
      } finally {
        await limited.close();
      }
    });
  });
}
