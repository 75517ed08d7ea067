/**
 * Helpers shared by the Store conformance suites (store-contract.ts, store-events.ts,
 * store-registry.ts): the fixed clock base, job and claim shorthands, and the per-test
 * fresh-store wrapper. Only the `Store` interface is used: no SQL, no driver.
 */
import { it } from 'node:test';
import assert from 'node:assert/strict';

import type { ClaimResult, NewJob, Store } from '../../src/store/contract.ts';

export type MakeStore = () => Promise<{ store: Store; cleanup: () => Promise<void> }>;

/** Fixed clock base; tests add offsets to it. */
export const T0 = 1_700_000_000_000;
export const Q = 'q';
export const LEASE = 30_000;

/** Normalizes a value to plain JSON (drops `undefined` properties, prototypes), for deep comparison. */
export function plain<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}

export function nth<T>(xs: readonly T[], i: number): T {
  assert.ok(i < xs.length, `expected at least ${i + 1} item(s), got ${xs.length}`);
  return xs[i] as T;
}

export function newJob(over: Partial<NewJob> = {}): NewJob {
  return { queue: Q, name: 'job', data: '{"n":1}', opts: { attempts: 3 }, priority: 0, runAt: T0, ...over };
}

/** Enqueues and asserts every job was created; returns the ids in input order. */
export async function add(store: Store, jobs: readonly Partial<NewJob>[], now = T0): Promise<string[]> {
  const results = await store.enqueueMany({ jobs: jobs.map((j) => newJob(j)), now });
  assert.equal(results.length, jobs.length, 'one result per job');
  return results.map((r, i) => {
    assert.equal(r.status, 'created', `job #${i} should be created`);
    return r.id;
  });
}

export async function addOne(store: Store, job: Partial<NewJob> = {}, now = T0): Promise<string> {
  return nth(await add(store, [job], now), 0);
}

export interface ClaimOpts {
  queues?: readonly string[];
  workerId?: string;
  limit?: number;
  leaseMs?: number;
  now?: number;
}

export async function claim(store: Store, o: ClaimOpts = {}): Promise<ClaimResult> {
  return await store.claim({
    queues: o.queues ?? [Q],
    workerId: o.workerId ?? 'w1',
    limit: o.limit ?? 10,
    leaseMs: o.leaseMs ?? LEASE,
    now: o.now ?? T0,
  });
}

/** Claims exactly one job and returns its id and token. */
export async function claimOne(store: Store, o: ClaimOpts = {}): Promise<{ id: string; token: string }> {
  const res = await claim(store, { limit: 1, ...o });
  assert.equal(res.jobs.length, 1, 'expected to claim exactly one job');
  const job = nth(res.jobs, 0);
  return { id: job.id, token: job.lease.token };
}

/** Returns a `test(name, fn)` that runs each test with its own fresh store, always cleaned up. */
export function storeTest(makeStore: MakeStore): (name: string, fn: (store: Store) => Promise<void>) => void {
  return (name, fn) => {
    it(name, async () => {
      const { store, cleanup } = await makeStore();
      try {
        await fn(store);
      } finally {
        await cleanup();
      }
    });
  };
}
