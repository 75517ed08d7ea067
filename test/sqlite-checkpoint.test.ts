/**
 * The SQLite store's background checkpointer (src/stores/sqlite/checkpointer.ts): the
 * thread checkpoints and truncates the WAL, the data stays intact, close() leaves no thread
 * behind (the process exits), and when the thread cannot run the store falls back to
 * SQLite's own checkpoints with one warning.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { fileURLToPath } from 'node:url';

import { openSqliteStore, type SqliteStore } from '../src/stores/sqlite/index.ts';
import type { CheckpointOptions } from '../src/stores/sqlite/checkpointer.ts';
import type { NewJob } from '../src/store/contract.ts';

const T0 = 1_700_000_000_000;
const KiB = 1024;
const PAD = 'x'.repeat(200);
let dir: string;
let counter = 0;

before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-checkpoint-'));
});
after(() => {
  fs.rmSync(dir, { recursive: true, force: true });
});

function open(checkpoint: CheckpointOptions = {}, file = path.join(dir, `c${++counter}.db`)): { store: SqliteStore; file: string } {
  return { store: openSqliteStore({ path: file, durability: 'normal', busyTimeoutMs: 5000, checkpoint }), file };
}

function job(i: number): NewJob {
  return { queue: 'q', name: 'n', data: JSON.stringify({ i, pad: PAD }), opts: { attempts: 1 }, priority: 0, runAt: T0 };
}

/** One-row write transactions, the pattern that suffered most from inline checkpoints. */
async function addSerially(store: SqliteStore, from: number, count: number): Promise<void> {
  for (let i = from; i < from + count; i++) await store.enqueueMany({ jobs: [job(i)], now: T0 });
}

function walSize(file: string): number {
  return fs.statSync(`${file}-wal`, { throwIfNoEntry: false })?.size ?? 0;
}

async function waitUntil(pred: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pred()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

function countJobs(file: string): number {
  const db = new DatabaseSync(file, { readOnly: true });
  try {
    return (db.prepare('SELECT count(*) AS n FROM jobs').get() as { n: number }).n;
  } finally {
    db.close();
  }
}

/** Collects the CONVEYOR_CHECKPOINTER warnings emitted while `fn` runs. */
async function checkpointerWarnings(fn: () => Promise<void>): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (w: Error & { code?: string }) => {
    if (w.code === 'CONVEYOR_CHECKPOINTER') seen.push(w);
  };
  process.on('warning', listener);
  try {
    await fn();
    // 'warning' events are emitted on the next tick.
    await new Promise((resolve) => setImmediate(resolve));
  } finally {
    process.off('warning', listener);
  }
  return seen;
}

describe('sqlite background checkpointer', () => {
  it("no thread for a store whose WAL stays small, nor for :memory: or durability 'full'", async () => {
    const { store } = open();
    const memory = openSqliteStore({ path: ':memory:', durability: 'normal', busyTimeoutMs: 5000 });
    const full = openSqliteStore({ path: path.join(dir, `full-${++counter}.db`), durability: 'full', busyTimeoutMs: 5000 });
    try {
      await addSerially(store, 0, 200);
      assert.equal(store.checkpointStats()?.thread, 'not started');
      assert.equal(memory.checkpointStats(), null);
      // With synchronous=FULL SQLite's own checkpoints measured faster: kept as they were.
      assert.equal(full.checkpointStats(), null);
    } finally {
      store.close();
      memory.close();
      full.close();
    }
  });

  it('the thread checkpoints, then truncates the idle WAL; data intact from a fresh connection', async () => {
    const { store, file } = open({ startBytes: 256 * KiB, maxDelayMs: 100 });
    const N = 1500;
    try {
      await addSerially(store, 0, N);
      await waitUntil(() => (store.checkpointStats()?.threadCheckpoints ?? 0) > 0, 'a checkpoint by the thread');
      assert.equal(store.checkpointStats()?.thread, 'running');
      assert.ok(walSize(file) > 256 * KiB, 'the WAL grew past the start threshold');
      // Writes stopped: the thread catches up, then truncates the WAL to zero bytes.
      await waitUntil(() => walSize(file) === 0 && store.checkpointStats()!.threadTruncates > 0, 'the idle WAL to be truncated');
      const stats = store.checkpointStats()!;
      assert.equal(stats.mainCheckpoints, 0, 'no checkpoint on the main thread below the hard limit');
      // Everything is in the database file now: a fresh connection reads it all…
      assert.equal(countJobs(file), N);
      // …and the store keeps working after the truncation.
      await addSerially(store, N, 10);
      assert.equal(countJobs(file), N + 10);
    } finally {
      store.close();
    }
    assert.equal(store.checkpointStats()?.thread, 'closed');
    assert.equal(fs.existsSync(`${file}-wal`), false, 'the last close checkpoints and removes the WAL, as before');
    const db = new DatabaseSync(file, { readOnly: true });
    try {
      assert.equal((db.prepare('PRAGMA integrity_check').get() as { integrity_check: string }).integrity_check, 'ok');
    } finally {
      db.close();
    }
  });

  it('two stores on one file, each with its thread: concurrent checkpoints are harmless', async () => {
    const file = path.join(dir, `shared-${++counter}.db`);
    const a = open({ startBytes: 128 * KiB, maxDelayMs: 50 }, file).store;
    const b = open({ startBytes: 128 * KiB, maxDelayMs: 50 }, file).store;
    try {
      for (let round = 0; round < 10; round++) {
        await addSerially(a, round * 200, 100);
        await addSerially(b, round * 200 + 100, 100);
      }
      await waitUntil(() => a.checkpointStats()?.thread === 'running' && b.checkpointStats()?.thread === 'running', 'both threads');
      await waitUntil(() => walSize(file) === 0, 'the idle WAL to be truncated');
      assert.equal(countJobs(file), 2000);
    } finally {
      a.close();
      b.close();
    }
  });

  it('above the hard limit writes wait (asynchronously) while the thread catches up: the WAL stays bounded', async () => {
    const { store, file } = open({ startBytes: 64 * KiB, hardLimitBytes: 512 * KiB });
    let largest = 0;
    let deferred = 0;
    try {
      // Writes that never pause: the WAL cannot start over by itself.
      for (let i = 0; i < 4000; i++) {
        const r = store.enqueueMany({ jobs: [job(i)], now: T0 });
        if (r instanceof Promise) {
          deferred++;
          await r;
        }
        if (i % 50 === 0) largest = Math.max(largest, walSize(file));
      }
      const stats = store.checkpointStats()!;
      assert.ok(stats.catchUps >= 1 && deferred >= 1, JSON.stringify({ ...stats, deferred }));
      assert.equal(stats.mainCheckpoints, 0, 'the thread answered: nothing blocked the event loop');
      // The limit plus what the commits between two size checks write.
      assert.ok(largest < 2 * 512 * KiB, `the WAL reached ${largest} bytes`);
      assert.equal(countJobs(file), 4000);
    } finally {
      store.close();
    }
  });

  it('a thread that does not answer: the main thread checkpoints itself at the hard limit', async () => {
    // A thread that never checkpoints stands for one that is stuck.
    const stuck = new URL('data:text/javascript,setInterval(() => {}, 1000)');
    const { store, file } = open({ startBytes: 64 * KiB, hardLimitBytes: 512 * KiB, threadUrl: stuck, threadTimeoutMs: 20 });
    let largest = 0;
    try {
      for (let i = 0; i < 1000; i += 50) {
        await addSerially(store, i, 50);
        largest = Math.max(largest, walSize(file));
      }
      const stats = store.checkpointStats()!;
      assert.ok(stats.mainCheckpoints >= 1, JSON.stringify(stats));
      assert.equal(stats.threadCheckpoints, 0);
      assert.ok(largest < 2 * 512 * KiB, `the WAL reached ${largest} bytes`);
      assert.equal(countJobs(file), 1000);
    } finally {
      store.close();
    }
  });

  it('close() while writes wait for a catch-up: they fail with CLOSED, nothing hangs', async () => {
    const stuck = new URL('data:text/javascript,setInterval(() => {}, 1000)');
    const { store } = open({ startBytes: 64 * KiB, hardLimitBytes: 256 * KiB, threadUrl: stuck, threadTimeoutMs: 60_000 });
    let waiting: Promise<unknown> | null = null;
    try {
      for (let i = 0; i < 5000 && waiting === null; i++) {
        const r = store.enqueueMany({ jobs: [job(i)], now: T0 });
        if (r instanceof Promise) waiting = r;
      }
      assert.ok(waiting !== null, 'a write was held back');
    } finally {
      store.close();
    }
    await assert.rejects(waiting, (err: Error & { code?: string }) => err.code === 'CLOSED');
  });

  it('a thread that cannot start: one warning, SQLite checkpoints on the main thread again', async () => {
    const missing = new URL('./no-such-checkpoint-thread.js', import.meta.url);
    const { store, file } = open({ startBytes: 64 * KiB, threadUrl: missing });
    let largest = 0;
    try {
      const warnings = await checkpointerWarnings(async () => {
        await addSerially(store, 0, 300);
        await waitUntil(() => store.checkpointStats()?.thread === 'failed', 'the thread to fail');
        // With wal_autocheckpoint back at 1000 pages the WAL stops growing (~4 MiB).
        for (let i = 300; i < 4000; i += 100) {
          await addSerially(store, i, 100);
          largest = Math.max(largest, walSize(file));
        }
      });
      assert.equal(warnings.length, 1, warnings.map((w) => w.message).join('\n'));
      assert.match(warnings[0]!.message, /checkpoint/);
      assert.ok(largest < 6 * 1024 * KiB, `the WAL reached ${largest} bytes`);
      assert.equal(countJobs(file), 4000);
    } finally {
      store.close();
    }
  });

  it('a thread that dies: the same fallback, and the store keeps working', async () => {
    const crash = new URL('data:text/javascript,setTimeout(() => { throw new Error("checkpointer crashed") }, 20)');
    const { store, file } = open({ startBytes: 64 * KiB, threadUrl: crash });
    try {
      const warnings = await checkpointerWarnings(async () => {
        await addSerially(store, 0, 300);
        await waitUntil(() => store.checkpointStats()?.thread === 'failed', 'the thread to fail');
        await addSerially(store, 300, 100);
      });
      assert.equal(warnings.length, 1);
      assert.match(warnings[0]!.message, /checkpointer crashed/);
      assert.equal(countJobs(file), 400);
    } finally {
      store.close();
    }
  });

  it('the thread never keeps a process alive, closed or not', async () => {
    const storeModule = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'src', 'stores', 'sqlite', 'index.ts');
    for (const closes of [true, false]) {
      const file = path.join(dir, `child-${++counter}.db`);
      const script = `
        import { openSqliteStore } from ${JSON.stringify(storeModule)};
        const store = openSqliteStore({ path: ${JSON.stringify(file)}, durability: 'normal', busyTimeoutMs: 5000, checkpoint: { startBytes: 64 * 1024 } });
        for (let i = 0; i < 500; i++) await store.enqueueMany({ jobs: [{ queue: 'q', name: 'n', data: '{}', opts: { attempts: 1 }, priority: 0, runAt: 0 }], now: 0 });
        while (store.checkpointStats().threadCheckpoints === 0 && store.checkpointStats().thread !== 'failed') await new Promise((r) => setTimeout(r, 5));
        ${closes ? 'store.close();' : ''}
        console.log(JSON.stringify(store.checkpointStats()));
      `;
      const started = Date.now();
      const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
      clearTimeout(timer);
      const elapsed = Date.now() - started;
      assert.equal(code, 0, `child (closes: ${closes}) failed: ${stderr}`);
      assert.equal(JSON.parse(stdout).thread, closes ? 'closed' : 'running');
      assert.ok(elapsed < 5000, `the child took ${elapsed} ms to exit`);
      assert.doesNotMatch(stderr, /CONVEYOR_CHECKPOINTER/);
      assert.equal(countJobs(file), 500);
    }
  });
});
