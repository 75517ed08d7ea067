/**
 * The Store contract conformance suite for the event log (`readEvents`, `lastEventSeq`,
 * `pruneEvents`, and the events every write appends; see `StoredEvent` in
 * src/store/contract.ts).
 *
 * Same conventions as store-contract.ts: only the `Store` interface (no SQL, no branching
 * on `store.kind`), every result awaited, time driven through explicit `now` values from a
 * fixed base T0. A fresh store per test.
 *
 * What is required, and what deliberately is not:
 * - One stored event per (operation call, queue, type), in the same transaction as the
 *   change: nothing for an operation that changed nothing or threw.
 * - `seq` strictly increasing in append order, never reused; NOT necessarily consecutive
 *   (stores with concurrent writers may leave gaps).
 * - Items carry exactly the fields documented on `EventType` (compared with deepEqual on
 *   plain JSON, so a stray `undefined`-free extra field or a `count: null` fails). Item
 *   order inside an event and event order between the queues of one operation are not
 *   specified: items are compared sorted by id, events of one operation by queue.
 * - `at` is the operation's `now`. Operations whose parameters carry no `now`
 *   (updateProgress, removeJob, clean, drain, setPaused) are only checked to give a number.
 */
import { describe } from 'node:test';
import assert from 'node:assert/strict';

import type { EventItem, NewJob, Store, StoredEvent } from '../../src/store/contract.ts';
import type { AttemptError } from '../../src/job.ts';
import { add, addOne, claim, claimOne, type ClaimOpts, type MakeStore, newJob, nth, plain, Q, storeTest, T0 } from './helpers.ts';

// ----------------------------------------------------------------------------- helpers

/** Claims exactly `count` jobs; returns id → token. */
async function claimN(store: Store, count: number, o: ClaimOpts = {}): Promise<Map<string, string>> {
  const res = await claim(store, { limit: count, ...o });
  assert.equal(res.jobs.length, count, `expected to claim exactly ${count} job(s)`);
  return new Map(res.jobs.map((j) => [j.id, j.lease.token]));
}

function err(message: string, at: number, attempt: number): AttemptError {
  return { message, name: 'Error', stack: `Error: ${message}\n    at handler (job.ts:1:1)`, at, attempt };
}

/** Every event after `after`, oldest first (read in pages, so the paging is exercised too). */
async function eventsAfter(store: Store, after: number): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  let cursor = after;
  for (;;) {
    const page = await store.readEvents({ after: cursor, limit: 50 });
    if (page.length === 0) return out;
    out.push(...page);
    cursor = nth(page, page.length - 1).seq;
  }
}

/**
 * Runs `op` and returns the events it appended (events after the last seq before it), with
 * the general rules checked: seq strictly increasing, above the previous last seq, and
 * `lastEventSeq()` afterwards equal to the last one.
 */
async function appendedBy(store: Store, op: () => unknown): Promise<StoredEvent[]> {
  const before = await store.lastEventSeq();
  await op();
  const events = await eventsAfter(store, before);
  let prev = before;
  for (const e of events) {
    assert.ok(Number.isSafeInteger(e.seq), `seq ${String(e.seq)} is an integer`);
    assert.ok(e.seq > prev, `seq ${e.seq} should be greater than ${prev}`);
    prev = e.seq;
  }
  assert.equal(await store.lastEventSeq(), prev, 'lastEventSeq() is the seq of the newest event');
  return events;
}

/** Asserts that `op` appends no event. */
async function noEvent(store: Store, op: () => unknown, what: string): Promise<void> {
  const events = await appendedBy(store, op);
  assert.deepEqual(plain(events), [], `${what} should append no event`);
}

interface Expected {
  readonly queue: string;
  readonly type: StoredEvent['type'];
  readonly jobs: readonly EventItem[];
  readonly count?: number;
  /** Omitted: only checked to be a number. */
  readonly at?: number;
}

const byId = (a: EventItem, b: EventItem): number => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);

/** The event without seq (and without `at` unless expected), items sorted by id, as plain JSON. */
function shape(e: StoredEvent, withAt: boolean): Record<string, unknown> {
  assert.equal(typeof e.at, 'number', '`at` is a number');
  assert.ok(Array.isArray(e.jobs), '`jobs` is an array');
  const { seq: _seq, at, ...rest } = plain(e);
  return { ...rest, jobs: [...rest.jobs].sort(byId), ...(withAt ? { at } : {}) };
}

/** Asserts the events, one per queue in any order, match `expected` exactly. */
function assertEvents(actual: readonly StoredEvent[], expected: readonly Expected[]): void {
  assert.equal(
    actual.length,
    expected.length,
    `expected ${expected.length} event(s), got ${actual.length}: ${JSON.stringify(actual)}`,
  );
  const key = (e: { queue: string; type: string }): string => `${e.queue} ${e.type}`;
  const sortedActual = [...actual].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  const sortedExpected = [...expected].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
  for (let i = 0; i < sortedExpected.length; i++) {
    const exp = nth(sortedExpected, i);
    const act = nth(sortedActual, i);
    const { at, ...rest } = exp;
    const want: Record<string, unknown> = { ...plain(rest), jobs: plain([...exp.jobs].sort(byId)) };
    if (at !== undefined) want['at'] = at;
    assert.deepEqual(shape(act, at !== undefined), want);
  }
}

// ------------------------------------------------------------------------------- suite

export function storeEventsSuite(label: string, makeStore: MakeStore): void {
  /** One test with its own fresh store, always cleaned up. */
  const test = storeTest(makeStore);

  describe(`store events: ${label}`, () => {
    // ------------------------------------------------------------------ reading
    describe('reading the log', () => {
      test('a fresh store has no events and lastEventSeq 0', async (store) => {
        assert.equal(await store.lastEventSeq(), 0);
        assert.deepEqual(plain(await store.readEvents({ after: 0, limit: 10 })), []);
      });

      test('seq strictly increases across operations; readEvents pages with after and limit', async (store) => {
        const id = await addOne(store, {}, T0);
        await addOne(store, { queue: 'other' }, T0 + 1);
        const { token } = await claimOne(store, { now: T0 + 2 });
        await store.completeMany({ items: [{ id, token, result: null, remove: false }], now: T0 + 3 });
        await addOne(store, {}, T0 + 4);

        const all = await store.readEvents({ after: 0, limit: 100 });
        assert.deepEqual(
          all.map((e) => `${e.type}@${e.at}`),
          [`added@${T0}`, `added@${T0 + 1}`, `active@${T0 + 2}`, `completed@${T0 + 3}`, `added@${T0 + 4}`],
        );
        for (let i = 1; i < all.length; i++) assert.ok(nth(all, i).seq > nth(all, i - 1).seq, 'seq strictly increases');
        assert.equal(await store.lastEventSeq(), nth(all, all.length - 1).seq);

        // Pages of 2 give the same events, oldest first.
        const paged: StoredEvent[] = [];
        let after = 0;
        for (let guard = 0; guard < 10; guard++) {
          const page = await store.readEvents({ after, limit: 2 });
          assert.ok(page.length <= 2, 'limit is respected');
          if (page.length === 0) break;
          paged.push(...page);
          after = nth(page, page.length - 1).seq;
        }
        assert.deepEqual(plain(paged), plain(all));

        // `after` is exclusive; after the newest there is nothing.
        const second = nth(all, 1);
        assert.deepEqual(
          (await store.readEvents({ after: second.seq, limit: 100 })).map((e) => e.seq),
          all.slice(2).map((e) => e.seq),
        );
        assert.deepEqual(plain(await store.readEvents({ after: await store.lastEventSeq(), limit: 100 })), []);
        assert.deepEqual(plain(await store.readEvents({ after: 0, limit: 0 })), []);
      });

      test('events read back as plain data: jobs parsed to objects, count only where set', async (store) => {
        await addOne(store);
        const [e] = await store.readEvents({ after: 0, limit: 10 });
        assert.ok(e !== undefined);
        assert.equal(typeof e.seq, 'number');
        assert.equal(e.at, T0);
        assert.equal(e.queue, Q);
        assert.equal(e.type, 'added');
        assert.ok(Array.isArray(e.jobs));
        assert.equal(typeof nth(e.jobs, 0), 'object');
        assert.ok(!('count' in e) || e.count === undefined, 'no count on an added event');
      });
    });

    // ------------------------------------------------------------------ added
    describe('added', () => {
      test('one event per queue for one enqueueMany, items carry name and state', async (store) => {
        let ids: string[] = [];
        const events = await appendedBy(store, async () => {
          ids = await add(
            store,
            [
              { name: 'a' },
              { name: 'b', runAt: T0 + 5000 },
              { name: 'c', id: 'keyed-1' },
              { name: 'd', queue: 'q2' },
              { name: 'e \u00e9 "quoted"', queue: 'q2', runAt: T0 + 1 },
            ],
            T0,
          );
        });
        const [a, b, c, d, e] = ids as [string, string, string, string, string];
        assert.equal(c, 'keyed-1');
        assertEvents(events, [
          {
            queue: Q,
            type: 'added',
            at: T0,
            jobs: [
              { id: a, name: 'a', state: 'waiting' },
              { id: b, name: 'b', state: 'delayed' },
              { id: c, name: 'c', state: 'waiting' },
            ],
          },
          {
            queue: 'q2',
            type: 'added',
            at: T0,
            jobs: [
              { id: d, name: 'd', state: 'waiting' },
              { id: e, name: 'e \u00e9 "quoted"', state: 'delayed' },
            ],
          },
        ]);
      });

      test('a large batch is still one event', async (store) => {
        const jobs = Array.from({ length: 250 }, () => ({}));
        let ids: string[] = [];
        const events = await appendedBy(store, async () => {
          ids = await add(store, jobs);
        });
        assertEvents(events, [{ queue: Q, type: 'added', at: T0, jobs: ids.map((id) => ({ id, name: 'job', state: 'waiting' as const })) }]);
      });

      test('duplicates write nothing; a batch with duplicates lists only the created jobs', async (store) => {
        await addOne(store, { id: 'dup' });
        await noEvent(
          store,
          async () => {
            const r = await store.enqueueMany({ jobs: [newJob({ id: 'dup' })], now: T0 + 1 });
            assert.deepEqual(plain(r), [{ status: 'duplicate', id: 'dup' }]);
          },
          'a duplicate enqueue',
        );
        const events = await appendedBy(store, async () => {
          const r = await store.enqueueMany({ jobs: [newJob({ id: 'dup' }), newJob({ id: 'fresh', name: 'n' })], now: T0 + 2 });
          assert.deepEqual(plain(r), [
            { status: 'duplicate', id: 'dup' },
            { status: 'created', id: 'fresh' },
          ]);
        });
        assertEvents(events, [{ queue: Q, type: 'added', at: T0 + 2, jobs: [{ id: 'fresh', name: 'n', state: 'waiting' }] }]);
      });

      test('an operation that throws appends no event (and changes nothing)', async (store) => {
        await addOne(store);
        const before = await store.lastEventSeq();
        const bad = { ...newJob({ id: 'never' }), data: null } as unknown as NewJob;
        await assert.rejects(async () => {
          await store.enqueueMany({ jobs: [newJob({ id: 'first-of-batch' }), bad], now: T0 + 1 });
        });
        assert.equal(await store.lastEventSeq(), before);
        assert.deepEqual(plain(await store.readEvents({ after: before, limit: 10 })), []);
        assert.equal(await store.getJob({ queue: Q, id: 'first-of-batch' }), null, 'the batch was rolled back');
        // The store still works, and the next event follows the last one.
        await addOne(store, {}, T0 + 2);
        const [next] = await store.readEvents({ after: before, limit: 10 });
        assert.ok(next !== undefined && next.seq > before);
      });
    });

    // ------------------------------------------------------------------ active
    describe('active', () => {
      test('one event per claim and queue; items carry attempt and waitMs', async (store) => {
        // a: due T0, created T0 → waits 500. b: delayed to T0+100 → waits 400 (promoted by
        // the claim). c: created at T0+200 with a past runAt → waits 300 (from creation).
        const [a, b] = await add(store, [{}, { runAt: T0 + 100 }], T0);
        const c = await addOne(store, { runAt: T0 - 1000 }, T0 + 200);
        const events = await appendedBy(store, () => claim(store, { limit: 10, now: T0 + 500 }));
        assertEvents(events, [
          {
            queue: Q,
            type: 'active',
            at: T0 + 500,
            jobs: [
              { id: a!, attempt: 1, waitMs: 500 },
              { id: b!, attempt: 1, waitMs: 400 },
              { id: c, attempt: 1, waitMs: 300 },
            ],
          },
        ]);
      });

      test('waitMs is clamped at 0 (a claim timestamped before the job was created)', async (store) => {
        const id = await addOne(store, {}, T0 + 1000);
        const events = await appendedBy(store, () => claim(store, { now: T0 + 500 }));
        assertEvents(events, [{ queue: Q, type: 'active', at: T0 + 500, jobs: [{ id, attempt: 1, waitMs: 0 }] }]);
      });

      test('a claim over several queues appends one event per queue; attempt counts finished attempts', async (store) => {
        const [a1, a2] = await add(store, [{ queue: 'qa' }, { queue: 'qa' }]);
        const [b1] = await add(store, [{ queue: 'qb' }]);
        // a1 fails once and is retried at once: its next claim is attempt 2.
        const first = await claim(store, { queues: ['qa'], limit: 1, now: T0 + 10 });
        const j = nth(first.jobs, 0);
        assert.equal(j.id, a1);
        await store.failMany({ items: [{ id: j.id, token: j.lease.token, error: err('x', T0 + 20, 1), retryAt: T0 + 20, remove: false }], now: T0 + 20 });
        const events = await appendedBy(store, () => claim(store, { queues: ['qa', 'qb', 'unknown'], limit: 10, now: T0 + 50 }));
        assertEvents(events, [
          {
            queue: 'qa',
            type: 'active',
            at: T0 + 50,
            jobs: [
              { id: a1!, attempt: 2, waitMs: 30 },
              { id: a2!, attempt: 1, waitMs: 50 },
            ],
          },
          { queue: 'qb', type: 'active', at: T0 + 50, jobs: [{ id: b1!, attempt: 1, waitMs: 50 }] },
        ]);
      });

      test('a claim that finds nothing appends nothing', async (store) => {
        await noEvent(store, () => claim(store), 'an empty claim of an unknown queue');
        await addOne(store, { runAt: T0 + 10_000 });
        await noEvent(store, () => claim(store, { now: T0 + 1 }), 'a claim with only future delayed jobs');
        await addOne(store, { queue: 'paused-q' });
        await store.setPaused({ queue: 'paused-q', paused: true });
        await noEvent(store, () => claim(store, { queues: ['paused-q'], now: T0 + 1 }), 'a claim of a paused queue');
      });
    });

    // ------------------------------------------------------------------ acks
    describe('completed, failed and released', () => {
      test('one completed event per completeMany and queue; items carry attempt and durationMs; stale items are left out', async (store) => {
        const [a, b, c] = await add(store, [{}, {}, { id: 'keyed' }]);
        const [d] = await add(store, [{ queue: 'q2' }]);
        const t = await claimN(store, 3, { now: T0 + 100 });
        const t2 = await claimN(store, 1, { queues: ['q2'], now: T0 + 200 });
        const events = await appendedBy(store, async () => {
          const out = await store.completeMany({
            items: [
              { id: a!, token: t.get(a!)!, result: '1', remove: false },
              { id: b!, token: 'stale-token', result: null, remove: false },
              { id: c!, token: t.get(c!)!, result: null, remove: true },
              { id: d!, token: t2.get(d!)!, result: null, remove: false },
            ],
            now: T0 + 1000,
          });
          assert.deepEqual(plain(out), [{ status: 'applied' }, { status: 'stale' }, { status: 'applied' }, { status: 'applied' }]);
        });
        assertEvents(events, [
          {
            queue: Q,
            type: 'completed',
            at: T0 + 1000,
            jobs: [
              { id: a!, attempt: 1, durationMs: 900 },
              { id: 'keyed', attempt: 1, durationMs: 900 },
            ],
          },
          { queue: 'q2', type: 'completed', at: T0 + 1000, jobs: [{ id: d!, attempt: 1, durationMs: 800 }] },
        ]);
        await noEvent(
          store,
          () => store.completeMany({ items: [{ id: b!, token: 'stale-token', result: null, remove: false }], now: T0 + 1001 }),
          'an all-stale completeMany',
        );
      });

      test('a failMany batch: one failed event per queue, items carry attempt, durationMs, error message and state', async (store) => {
        const [a, b, c, d] = await add(store, [{}, {}, {}, {}]);
        const [e] = await add(store, [{ queue: 'q2' }]);
        const t = await claimN(store, 4, { now: T0 + 100 });
        const t2 = await claimN(store, 1, { queues: ['q2'], now: T0 + 100 });
        const now = T0 + 400;
        const events = await appendedBy(store, async () => {
          const out = await store.failMany({
            items: [
              { id: a!, token: t.get(a!)!, error: err('gave up', now, 1), retryAt: null, remove: false },
              { id: b!, token: t.get(b!)!, error: err('later', now, 1), retryAt: now + 5000, remove: false },
              { id: c!, token: t.get(c!)!, error: err('again now', now, 1), retryAt: now, remove: false },
              { id: d!, token: t.get(d!)!, error: err('gone', now, 1), retryAt: null, remove: true },
              { id: a!, token: 'stale-token', error: err('stale', now, 1), retryAt: null, remove: false },
              { id: e!, token: t2.get(e!)!, error: err('other queue', now, 1), retryAt: null, remove: false },
            ],
            now,
          });
          assert.deepEqual(plain(out).map((o) => o.status), ['applied', 'applied', 'applied', 'applied', 'stale', 'applied']);
        });
        assertEvents(events, [
          {
            queue: Q,
            type: 'failed',
            at: now,
            jobs: [
              { id: a!, attempt: 1, durationMs: 300, error: 'gave up', state: 'failed' },
              { id: b!, attempt: 1, durationMs: 300, error: 'later', state: 'delayed' },
              { id: c!, attempt: 1, durationMs: 300, error: 'again now', state: 'waiting' },
              { id: d!, attempt: 1, durationMs: 300, error: 'gone', state: 'failed' },
            ],
          },
          { queue: 'q2', type: 'failed', at: now, jobs: [{ id: e!, attempt: 1, durationMs: 300, error: 'other queue', state: 'failed' }] },
        ]);
      });

      test('attempt in completed and failed events counts the attempts of this job', async (store) => {
        const id = await addOne(store, { opts: { attempts: 5 } });
        for (let attempt = 1; attempt <= 2; attempt++) {
          const { token } = await claimOne(store, { now: T0 + attempt * 100 });
          const events = await appendedBy(store, () =>
            store.failMany({ items: [{ id, token, error: err(`try ${attempt}`, T0, attempt), retryAt: T0, remove: false }], now: T0 + attempt * 100 + 7 }),
          );
          assertEvents(events, [
            { queue: Q, type: 'failed', at: T0 + attempt * 100 + 7, jobs: [{ id, attempt, durationMs: 7, error: `try ${attempt}`, state: 'waiting' }] },
          ]);
        }
        const { token } = await claimOne(store, { now: T0 + 1000 });
        const events = await appendedBy(store, () => store.completeMany({ items: [{ id, token, result: null, remove: false }], now: T0 + 1010 }));
        assertEvents(events, [{ queue: Q, type: 'completed', at: T0 + 1010, jobs: [{ id, attempt: 3, durationMs: 10 }] }]);
      });

      test('releaseMany: one released event per queue with bare ids; stale refs left out', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const [c] = await add(store, [{ queue: 'q2' }]);
        const t = await claimN(store, 2, { now: T0 + 1 });
        const t2 = await claimN(store, 1, { queues: ['q2'], now: T0 + 1 });
        const events = await appendedBy(store, () =>
          store.releaseMany({
            items: [
              { id: a!, token: t.get(a!)! },
              { id: b!, token: 'stale-token' },
              { id: c!, token: t2.get(c!)! },
            ],
            now: T0 + 2,
          }),
        );
        assertEvents(events, [
          { queue: Q, type: 'released', at: T0 + 2, jobs: [{ id: a! }] },
          { queue: 'q2', type: 'released', at: T0 + 2, jobs: [{ id: c! }] },
        ]);
      });

      test('extendLeases and addLogs append no event', async (store) => {
        await addOne(store);
        const { id, token } = await claimOne(store);
        await noEvent(store, () => store.extendLeases({ items: [{ id, token }], leaseMs: 1000, now: T0 + 1 }), 'extendLeases');
        await noEvent(store, () => store.addLogs({ queue: Q, id, token, entries: [{ at: T0 + 2, message: 'hello' }] }), 'addLogs');
      });
    });

    // ------------------------------------------------------------------ stalled
    describe('stalled', () => {
      test('one stalled event per queue; items carry the new state (waiting, or failed past maxStalls)', async (store) => {
        const [a, b] = await add(store, [{}, {}]);
        const [c] = await add(store, [{ queue: 'q2' }]);
        await claim(store, { queues: [Q, 'q2'], limit: 10, leaseMs: 100, now: T0 });
        // First stall of each: back to waiting. Claimed again and stalled again: past maxStalls 1.
        const events1 = await appendedBy(store, () => store.recoverStalled({ maxStalls: 1, limit: 10, now: T0 + 200 }));
        assertEvents(events1, [
          { queue: Q, type: 'stalled', at: T0 + 200, jobs: [{ id: a!, state: 'waiting' }, { id: b!, state: 'waiting' }] },
          { queue: 'q2', type: 'stalled', at: T0 + 200, jobs: [{ id: c!, state: 'waiting' }] },
        ]);
        await claim(store, { limit: 10, leaseMs: 100, now: T0 + 300 });
        const events2 = await appendedBy(store, () => store.recoverStalled({ maxStalls: 1, limit: 10, now: T0 + 500 }));
        assertEvents(events2, [{ queue: Q, type: 'stalled', at: T0 + 500, jobs: [{ id: a!, state: 'failed' }, { id: b!, state: 'failed' }] }]);
        await noEvent(store, () => store.recoverStalled({ maxStalls: 1, limit: 10, now: T0 + 10_000 }), 'a recovery that finds nothing');
      });
    });

    // ------------------------------------------------------------------ progress
    describe('progress', () => {
      test('updateProgress appends one progress event with the JSON text; stale and unknown append nothing', async (store) => {
        const id = await addOne(store);
        const { token } = await claimOne(store);
        const events = await appendedBy(store, () => store.updateProgress({ queue: Q, id, token, progress: '{"pct":50}' }));
        assertEvents(events, [{ queue: Q, type: 'progress', jobs: [{ id, progress: '{"pct":50}' }] }]);
        await noEvent(store, () => store.updateProgress({ queue: Q, id, token: 'stale-token', progress: '1' }), 'a stale progress update');
        await noEvent(store, () => store.updateProgress({ queue: Q, id: 'missing', progress: '1' }), 'progress of an unknown job');
      });
    });

    // ------------------------------------------------------------------ admin
    describe('administration', () => {
      test('retryJob, cancelJob, promoteJob and removeJob append one event each; refusals append nothing', async (store) => {
        // `failed` is claimed and fails for good before the others exist.
        const failed = await addOne(store);
        const f = await claimOne(store, { now: T0 + 1 });
        await store.failMany({ items: [{ id: failed, token: f.token, error: err('x', T0 + 2, 1), retryAt: null, remove: false }], now: T0 + 2 });
        const [waiting, delayed] = await add(store, [{}, { runAt: T0 + 60_000 }], T0 + 3);

        assertEvents(await appendedBy(store, () => store.retryJob({ queue: Q, id: failed, now: T0 + 10 })), [
          { queue: Q, type: 'retried', at: T0 + 10, jobs: [{ id: failed }] },
        ]);
        assertEvents(await appendedBy(store, () => store.promoteJob({ queue: Q, id: delayed!, now: T0 + 11 })), [
          { queue: Q, type: 'promoted', at: T0 + 11, jobs: [{ id: delayed! }] },
        ]);
        assertEvents(await appendedBy(store, () => store.cancelJob({ queue: Q, id: waiting!, now: T0 + 12 })), [
          { queue: Q, type: 'cancelled', at: T0 + 12, jobs: [{ id: waiting! }] },
        ]);
        assertEvents(await appendedBy(store, () => store.removeJob({ queue: Q, id: waiting! })), [
          { queue: Q, type: 'removed', jobs: [{ id: waiting! }] },
        ]);

        await noEvent(store, () => store.retryJob({ queue: Q, id: 'missing', now: T0 + 20 }), 'retryJob of an unknown job');
        await noEvent(store, () => store.retryJob({ queue: Q, id: delayed!, now: T0 + 20 }), 'retryJob of a live job');
        await noEvent(store, () => store.promoteJob({ queue: Q, id: delayed!, now: T0 + 20 }), 'promoteJob of a waiting job');
        await noEvent(store, () => store.cancelJob({ queue: 'nope', id: delayed!, now: T0 + 20 }), 'cancelJob in an unknown queue');
        await noEvent(store, () => store.removeJob({ queue: Q, id: 'missing' }), 'removeJob of an unknown job');
      });

      test('cancelling an active job appends cancelled; the revoked ack then appends nothing', async (store) => {
        const id = await addOne(store);
        const { token } = await claimOne(store);
        assertEvents(await appendedBy(store, () => store.cancelJob({ queue: Q, id, now: T0 + 5 })), [
          { queue: Q, type: 'cancelled', at: T0 + 5, jobs: [{ id }] },
        ]);
        await noEvent(store, () => store.completeMany({ items: [{ id, token, result: null, remove: false }], now: T0 + 6 }), 'a revoked ack');
      });

      test('retryMany appends one retried event listing every job it moved', async (store) => {
        const ids = await add(store, [{}, {}, {}]);
        const res = await claim(store, { limit: 10, now: T0 + 1 });
        await store.failMany({
          items: res.jobs.map((j) => ({ id: j.id, token: j.lease.token, error: err('x', T0 + 2, 1), retryAt: null, remove: false })),
          now: T0 + 2,
        });
        const events = await appendedBy(store, async () => {
          assert.equal(await store.retryMany({ queue: Q, state: 'failed', limit: 10, now: T0 + 3 }), 3);
        });
        assertEvents(events, [{ queue: Q, type: 'retried', at: T0 + 3, jobs: ids.map((id) => ({ id })) }]);
        await noEvent(store, () => store.retryMany({ queue: Q, state: 'failed', limit: 10, now: T0 + 4 }), 'a retryMany that moved nothing');
      });

      test('clean and drain append one removed event with count and the ids', async (store) => {
        const waiting = await add(store, [{}, {}]);
        const delayed = await add(store, [{ runAt: T0 + 60_000 }]);
        const events = await appendedBy(store, async () => {
          assert.equal(await store.drain({ queue: Q, includeDelayed: true, limit: 100 }), 3);
        });
        assertEvents(events, [{ queue: Q, type: 'removed', count: 3, jobs: [...waiting, ...delayed].map((id) => ({ id })) }]);
        await noEvent(store, () => store.drain({ queue: Q, includeDelayed: true, limit: 100 }), 'a drain that removed nothing');

        const done = await add(store, [{}, {}], T0 + 10);
        const res = await claim(store, { limit: 10, now: T0 + 11 });
        await store.completeMany({ items: res.jobs.map((j) => ({ id: j.id, token: j.lease.token, result: null, remove: false })), now: T0 + 12 });
        const cleaned = await appendedBy(store, async () => {
          assert.equal(await store.clean({ queue: Q, state: 'completed', limit: 100 }), 2);
        });
        assertEvents(cleaned, [{ queue: Q, type: 'removed', count: 2, jobs: done.map((id) => ({ id })) }]);
        await noEvent(store, () => store.clean({ queue: Q, state: 'completed', limit: 100 }), 'a clean that removed nothing');
      });

      test('a clean of more than 1,000 jobs lists the first 1,000 ids and the full count', async (store) => {
        const N = 1005;
        const created: string[] = [];
        for (let i = 0; i < N; i += 500) created.push(...(await add(store, Array.from({ length: Math.min(500, N - i) }, () => ({})))));
        const events = await appendedBy(store, async () => {
          assert.equal(await store.clean({ queue: Q, state: 'waiting', limit: 5000 }), N);
        });
        assert.equal(events.length, 1);
        const e = nth(events, 0);
        assert.equal(e.type, 'removed');
        assert.equal(e.queue, Q);
        assert.equal(e.count, N);
        assert.equal(e.jobs.length, 1000);
        const all = new Set(created);
        const seen = new Set<string>();
        for (const item of e.jobs) {
          assert.deepEqual(Object.keys(item), ['id']);
          assert.ok(all.has(item.id), `removed id ${item.id} was one of the jobs`);
          assert.ok(!seen.has(item.id), `id ${item.id} listed once`);
          seen.add(item.id);
        }
      });

      test('setPaused appends paused/resumed only when the flag changes', async (store) => {
        await noEvent(store, () => store.setPaused({ queue: Q, paused: false }), 'resuming a queue that was never paused');
        const paused = await appendedBy(store, () => store.setPaused({ queue: Q, paused: true }));
        assertEvents(paused, [{ queue: Q, type: 'paused', jobs: [] }]);
        await noEvent(store, () => store.setPaused({ queue: Q, paused: true }), 'pausing a paused queue');
        const resumed = await appendedBy(store, () => store.setPaused({ queue: Q, paused: false }));
        assertEvents(resumed, [{ queue: Q, type: 'resumed', jobs: [] }]);
        await noEvent(store, () => store.setPaused({ queue: Q, paused: false }), 'resuming a running queue');
      });
    });

    // ------------------------------------------------------------------ pruning
    describe('pruneEvents', () => {
      test('deletes events appended before `before`, oldest first, up to `limit`', async (store) => {
        for (let i = 0; i < 5; i++) await addOne(store, {}, T0 + i * 10); // at T0, +10, +20, +30, +40
        const all = await store.readEvents({ after: 0, limit: 100 });
        assert.equal(all.length, 5);

        assert.equal(await store.pruneEvents({ before: T0 + 30, limit: 0 }), 0);
        assert.equal(await store.pruneEvents({ before: T0, limit: 100 }), 0, '`before` is exclusive');
        assert.equal(await store.pruneEvents({ before: T0 + 30, limit: 2 }), 2, 'limit is respected');
        assert.deepEqual((await store.readEvents({ after: 0, limit: 100 })).map((e) => e.at), [T0 + 20, T0 + 30, T0 + 40]);
        assert.equal(await store.pruneEvents({ before: T0 + 30, limit: 100 }), 1);
        assert.deepEqual((await store.readEvents({ after: 0, limit: 100 })).map((e) => e.at), [T0 + 30, T0 + 40]);
        // Reading from an old seq just skips the pruned events.
        assert.deepEqual(
          (await store.readEvents({ after: nth(all, 0).seq, limit: 100 })).map((e) => e.seq),
          [nth(all, 3).seq, nth(all, 4).seq],
        );
      });

      test('never deletes the newest event, so seq never goes back', async (store) => {
        for (let i = 0; i < 3; i++) await addOne(store, {}, T0 + i);
        const last = await store.lastEventSeq();
        assert.equal(await store.pruneEvents({ before: T0 + 1_000_000, limit: 100 }), 2);
        const left = await store.readEvents({ after: 0, limit: 100 });
        assert.deepEqual(left.map((e) => e.seq), [last]);
        assert.equal(await store.lastEventSeq(), last);
        assert.equal(await store.pruneEvents({ before: T0 + 1_000_000, limit: 100 }), 0, 'the newest is kept however old');
        await addOne(store, {}, T0 + 10);
        const next = await store.readEvents({ after: last, limit: 100 });
        assert.equal(next.length, 1);
        assert.ok(nth(next, 0).seq > last, 'a new event after pruning gets a higher seq');
        assert.equal(await store.lastEventSeq(), nth(next, 0).seq);
      });

      test('pruning an empty log deletes nothing', async (store) => {
        assert.equal(await store.pruneEvents({ before: T0 + 1_000_000, limit: 100 }), 0);
        assert.equal(await store.lastEventSeq(), 0);
      });
    });

    // ------------------------------------------------------------------ atomicity
    describe('atomicity', () => {
      test('events describe the committed state: a job lifecycle in order', async (store) => {
        const events = await appendedBy(store, async () => {
          const id = await addOne(store, {}, T0);
          const { token } = await claimOne(store, { now: T0 + 10 });
          await store.updateProgress({ queue: Q, id, token, progress: '0.5' });
          await store.completeMany({ items: [{ id, token, result: null, remove: false }], now: T0 + 30 });
          await store.retryJob({ queue: Q, id, now: T0 + 40 });
          await store.removeJob({ queue: Q, id });
        });
        assert.deepEqual(
          events.map((e) => e.type),
          ['added', 'active', 'progress', 'completed', 'retried', 'removed'],
        );
      });
    });
  });
}
