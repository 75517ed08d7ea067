/**
 * Group commit modes (ConveyorOptions.groupCommit), counted at the Store: adds made in
 * separate event-loop callbacks (as concurrent HTTP requests arrive) share one write with
 * `tick`, and are written one by one with the default `microtask`. Real SQLite file.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Conveyor } from '../src/index.ts';
import type { Store } from '../src/store/contract.ts';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';

function countingEnqueues(store: Store): { store: Store; batches: number[] } {
  const batches: number[] = [];
  const proxy = new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== 'enqueueMany' || typeof value !== 'function') return typeof value === 'function' ? value.bind(target) : value;
      return (params: { jobs: readonly unknown[] }) => {
        batches.push(params.jobs.length);
        return (value as (p: unknown) => unknown).call(target, params);
      };
    },
  });
  return { store: proxy, batches };
}

/** 20 adds, each from its own setImmediate callback in one turn: like 20 requests read in one poll. */
async function addsFromSeparateCallbacks(cv: Conveyor, queue: string): Promise<void> {
  const adds: Promise<unknown>[] = [];
  await new Promise<void>((resolve) => {
    for (let i = 0; i < 20; i++) setImmediate(() => adds.push(cv.queue(queue).add('job', { i })));
    setImmediate(resolve);
  });
  await Promise.all(adds);
}

describe('group commit', () => {
  for (const mode of ['microtask', 'tick'] as const) {
    it(`${mode}: adds from separate callbacks of one turn ${mode === 'tick' ? 'share one write' : 'are written one by one'}`, async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-gc-'));
      const counted = countingEnqueues(openSqliteStore({ path: path.join(dir, 'q.db'), durability: 'normal', busyTimeoutMs: 5000 }));
      const cv = await Conveyor.open({ store: counted.store, groupCommit: mode });
      try {
        await addsFromSeparateCallbacks(cv, 'gc');
        assert.equal(counted.batches.reduce((a, b) => a + b, 0), 20);
        if (mode === 'tick') assert.deepEqual(counted.batches, [20]);
        else assert.equal(counted.batches.length, 20);
        // A lone add is written either way, and a loop of un-awaited adds shares one write either way.
        counted.batches.length = 0;
        await Promise.all(Array.from({ length: 10 }, (_, i) => cv.queue('gc').add('job', { i })));
        assert.deepEqual(counted.batches, [10]);
        assert.equal((await cv.queue('gc').getCounts()).waiting, 30);
      } finally {
        await cv.close();
        fs.rmSync(dir, { recursive: true, force: true });
      }
    });
  }

  it('rejects an unknown mode', async () => {
    await assert.rejects(Conveyor.open({ url: 'sqlite::memory:', groupCommit: 'sometimes' as never }), { code: 'INVALID_ARGUMENT' });
  });
});
