/**
 * The SQLite store against the shared Store contract suite (file and in-memory), plus
 * checks that only a file store can make: two connections on one file, and signals that
 * cross connections and processes.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { openSqliteStore } from '../src/stores/sqlite/index.ts';
import type { NewJob, Store, StoreSignal } from '../src/store/contract.ts';
import { storeContractSuite, type MakeStore } from './conformance/store-contract.ts';
import { storeEventsSuite } from './conformance/store-events.ts';
import { storeRegistrySuite } from './conformance/store-registry.ts';

const T0 = 1_700_000_000_000;

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-test-'));
}

function open(file: string): Store {
  return openSqliteStore({ path: file, durability: 'normal', busyTimeoutMs: 5000 });
}

async function openMigrated(file: string): Promise<Store> {
  const store = open(file);
  await store.migrate();
  return store;
}

function job(over: Partial<NewJob> = {}): NewJob {
  return { queue: 'q', name: 'job', data: '{}', opts: { attempts: 1 }, priority: 0, runAt: T0, ...over };
}

async function waitFor(pred: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}

const fileStore: MakeStore = async () => {
  const dir = tempDir();
  const store = await openMigrated(path.join(dir, 'conveyor.db'));
  return {
    store,
    cleanup: async () => {
      try {
        await store.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  };
};

const memoryStore: MakeStore = async () => {
  const store = await openMigrated(':memory:');
  return { store, cleanup: async () => void (await store.close()) };
};

storeContractSuite('sqlite file', fileStore);
storeContractSuite('sqlite :memory:', memoryStore);
storeRegistrySuite('sqlite file', fileStore);
storeRegistrySuite('sqlite :memory:', memoryStore);
storeEventsSuite('sqlite file', fileStore);
storeEventsSuite('sqlite :memory:', memoryStore);

describe('sqlite store: capabilities', () => {
  it('a file store is multi-process with cross-process signals; :memory: is not multi-process', async () => {
    const dir = tempDir();
    const file = open(path.join(dir, 'conveyor.db'));
    const mem = open(':memory:');
    try {
      assert.equal(file.capabilities.has('multiProcess'), true);
      assert.equal(file.capabilities.has('crossProcessSignals'), true);
      assert.equal(mem.capabilities.has('multiProcess'), false);
      assert.equal(mem.capabilities.has('crossProcessSignals'), false);
    } finally {
      await file.close();
      await mem.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('two :memory: stores are separate databases', async () => {
    const a = await openMigrated(':memory:');
    const b = await openMigrated(':memory:');
    try {
      const [r] = await a.enqueueMany({ jobs: [job({ id: 'only-in-a' })], now: T0 });
      assert.equal(r?.status, 'created');
      assert.equal(await b.getJob({ queue: 'q', id: 'only-in-a' }), null);
    } finally {
      await a.close();
      await b.close();
    }
  });
});

describe('sqlite file store: two connections on one file', () => {
  it('each sees the other’s writes, and leases fence across connections', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'conveyor.db');
    const a = await openMigrated(file);
    const b = await openMigrated(file); // migrate from a second connection is a no-op
    try {
      const [ra] = await a.enqueueMany({ jobs: [job({ data: '{"from":"a"}' })], now: T0 });
      assert.equal(ra?.status, 'created');
      const idA = ra.id;
      assert.equal((await b.getJob({ queue: 'q', id: idA }))?.data, '{"from":"a"}');

      const claimed = await b.claim({ queues: ['q'], workerId: 'wb', limit: 10, leaseMs: 1000, now: T0 + 1 });
      assert.deepEqual(claimed.jobs.map((j) => j.id), [idA]);
      const token = claimed.jobs[0]?.lease.token ?? '';
      const seenByA = await a.getJob({ queue: 'q', id: idA });
      assert.equal(seenByA?.state, 'active');
      assert.equal(seenByA?.lease?.owner, 'wb');
      // Nothing left for A to claim.
      assert.deepEqual((await a.claim({ queues: ['q'], workerId: 'wa', limit: 10, leaseMs: 1000, now: T0 + 2 })).jobs, []);

      // A stale ack through A is rejected; the holder's token works through either connection.
      assert.deepEqual(await a.completeMany({ items: [{ id: idA, token: 'wrong', result: null, remove: false }], now: T0 + 3 }), [{ status: 'stale' }]);
      assert.deepEqual(await a.completeMany({ items: [{ id: idA, token, result: '"done"', remove: false }], now: T0 + 3 }), [{ status: 'applied' }]);
      const done = await b.getJob({ queue: 'q', id: idA });
      assert.equal(done?.state, 'completed');
      assert.equal(done?.result, '"done"');

      await b.setPaused({ queue: 'q', paused: true });
      assert.equal(await a.isPaused({ queue: 'q' }), true);
      assert.deepEqual((await a.countJobs({ queue: 'q' })).completed, 1);
    } finally {
      await a.close();
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a listener on one connection hears a write made by another', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'conveyor.db');
    const a = await openMigrated(file);
    const b = await openMigrated(file);
    const heard: StoreSignal[] = [];
    const unsubscribe = a.subscribe((s) => heard.push(s));
    try {
      await b.enqueueMany({ jobs: [job({ queue: 'cross' })], now: T0 });
      const ok = await waitFor(() => heard.length > 0, 2500);
      assert.ok(ok, 'store A got no signal within 2.5 s of store B enqueueing');
      const s = heard[0];
      assert.ok(s?.type === 'changed' || (s?.type === 'enqueued' && s.queue === 'cross'), `unexpected signal ${JSON.stringify(s)}`);
    } finally {
      unsubscribe();
      await a.close();
      await b.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a listener hears a write made by a separate Node process', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'conveyor.db');
    const a = await openMigrated(file);
    const heard: StoreSignal[] = [];
    const unsubscribe = a.subscribe((s) => heard.push(s));
    try {
      const storeModule = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'stores', 'sqlite', 'index.ts');
      const script = `
        import { openSqliteStore } from ${JSON.stringify(storeModule)};
        const store = openSqliteStore({ path: ${JSON.stringify(file)}, durability: 'normal', busyTimeoutMs: 5000 });
        await store.migrate();
        await store.enqueueMany({ jobs: [{ id: 'from-child', queue: 'cross', name: 'job', data: '{"child":true}', opts: { attempts: 1 }, priority: 0, runAt: ${T0} }], now: ${T0} });
        await store.close();
      `;
      const child = spawn(process.execPath, ['--input-type=module', '--no-warnings', '-e', script], { stdio: ['ignore', 'inherit', 'pipe'] });
      let stderr = '';
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      assert.equal(code, 0, `child process failed: ${stderr}`);

      const job = await a.getJob({ queue: 'cross', id: 'from-child' });
      assert.equal(job?.data, '{"child":true}');
      const ok = await waitFor(() => heard.length > 0, 2500);
      assert.ok(ok, 'no signal within 2.5 s of another process enqueueing');
    } finally {
      unsubscribe();
      await a.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('data survives close and reopen', async () => {
    const dir = tempDir();
    const file = path.join(dir, 'conveyor.db');
    try {
      const a = await openMigrated(file);
      await a.enqueueMany({ jobs: [job({ id: 'persisted', data: '{"p":1}' })], now: T0 });
      await a.setPaused({ queue: 'q', paused: true });
      await a.close();
      const b = await openMigrated(file);
      try {
        assert.equal((await b.getJob({ queue: 'q', id: 'persisted' }))?.data, '{"p":1}');
        assert.equal(await b.isPaused({ queue: 'q' }), true);
      } finally {
        await b.close();
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
