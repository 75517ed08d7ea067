/**
 * Checkpoints off the event loop, for file stores with durability 'normal'.
 *
 * SQLite's automatic checkpoint runs inside whichever COMMIT crosses 1000 WAL pages: it
 * copies the WAL into the database file and fsyncs both, on the store's connection, so on
 * the main thread (node:sqlite is synchronous). That is where the multi-millisecond stalls
 * of an otherwise ~25 µs commit came from. So the store's connection runs with
 * `wal_autocheckpoint = 0`, and a worker thread with its own connection to the same file
 * (checkpoint-thread.ts) checkpoints instead. Durability is unchanged: every COMMIT still
 * writes its WAL frames before returning; only the copy into the database file and its
 * fsyncs move.
 *
 * - The thread starts lazily, when the WAL file first reaches START_BYTES (where SQLite's
 *   default would have checkpointed for the first time): a thread takes tens of
 *   milliseconds and several MB to start, which most short-lived stores (tests, CLI
 *   commands) never need.
 *   Until then nothing checkpoints, exactly as with SQLite's default below 1000 pages.
 * - The main thread tells it about commits through shared memory (a counter, and a
 *   doorbell rung only when the thread sleeps): an atomic add per commit, no message.
 * - Every CHECK_EVERY commits the main thread stats the WAL file (a few µs).
 *
 * The hard limit. A checkpoint never blocks the writer, but the WAL can only start over
 * from its beginning (and so stop growing) once a checkpoint has copied all of it and
 * synced the database file with no commit in between. Real workloads pause often enough
 * for that; a producer or a drain that never pauses does not, and then the WAL file grows.
 * When it passes HARD_LIMIT_BYTES (64 MiB, the connection's journal_size_limit too), the
 * store holds its writes back *asynchronously* (TransactionRunner.pauseWrites: they return
 * promises; reads and the event loop carry on) while the thread catches up; the next
 * commit then starts the WAL over. Under a sustained load this costs a pause of one
 * checkpoint's length per 64 MiB of WAL, where SQLite's automatic checkpoint blocked the
 * event loop once per 4 MiB.
 *
 * If the thread does not answer within WAIT_FOR_THREAD_MS, or is not running, the main
 * thread checkpoints itself, blocking, as SQLite's automatic checkpoint would. A
 * checkpoint cannot copy frames that another connection's open read transaction still
 * needs, nor restart the WAL under it: while one does, the WAL can exceed the limit by
 * what is written meanwhile; the store then tries again every HARD_LIMIT_STEP of growth.
 *
 * - If the thread cannot start or dies, the connection goes back to SQLite's automatic
 *   checkpoints (`wal_autocheckpoint = 1000`) and one warning (CONVEYOR_CHECKPOINTER) is
 *   emitted: slower, never incorrect.
 * - Several processes on one file each have a checkpointer. SQLite serialises
 *   checkpoints with a lock; a PASSIVE checkpoint that finds it taken returns "busy" at
 *   once and is simply tried again later.
 * - durability 'full' does not use the thread (index.ts): every commit fsyncs the WAL
 *   there, and with a WAL that keeps growing each of those fsyncs also has to journal the
 *   file's new size; measured, commits got slower instead of faster.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import { Worker } from 'node:worker_threads';
import {
  CATCH_UP_COMPLETE,
  CATCH_UP_NONE,
  CATCH_UP_REQUESTED,
  SLOT_CATCH_UP,
  SLOT_CHECKPOINTS,
  SLOT_COMMITS,
  SLOT_COMPLETE,
  SLOT_COUNT,
  SLOT_DOORBELL,
  SLOT_SLEEPING,
  SLOT_STATE,
  SLOT_STOP,
  SLOT_TRUNCATES,
  STATE_RUNNING,
  type CheckpointThreadData,
} from './checkpoint-protocol.ts';

const MiB = 1024 * 1024;
/** The thread starts when the WAL file first reaches this size (≈ SQLite's 1000 pages). */
export const START_BYTES = 4 * MiB;
/** Above this WAL file size the thread must catch up, writes waiting (see above). */
export const HARD_LIMIT_BYTES = 64 * MiB;
const HARD_LIMIT_STEP = 16 * MiB;
/** The thread checkpoints at the latest this long after a commit (see checkpoint-thread.ts). */
const MAX_DELAY_MS = 1000;
/** The main thread looks at the WAL file size every this many commits. */
const CHECK_EVERY = 64;
/** The longest the main thread waits for the thread: a catch-up, or its close. */
const WAIT_FOR_THREAD_MS = 2000;

/**
 * The thread's script, next to this module with the same extension: `.ts` when running
 * from source (Node's type stripping also applies to workers), `.js` from the build.
 */
const THREAD_URL = new URL(`./checkpoint-thread${import.meta.url.endsWith('.ts') ? '.ts' : '.js'}`, import.meta.url);

/** Atomics.waitAsync (Node ≥ 16), missing from the ES2023 lib the project compiles against. */
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { readonly async: false; readonly value: string } | { readonly async: true; readonly value: Promise<string> };
const waitAsync = (Atomics as unknown as { readonly waitAsync: WaitAsync }).waitAsync;

/**
 * The thread's Node options. A worker inherits its parent's by default, and some of those
 * make it fail (`--input-type`, as in `node --input-type=module -e …`) or do per-process
 * work twice (`--cpu-prof`); the thread needs none, except type stripping on the Node
 * versions where it is still behind a flag, to load its `.ts` source.
 */
function threadExecArgv(): string[] {
  return process.execArgv.filter((arg) => /^--(no-)?experimental-(strip|transform)-types$/.test(arg));
}

/** Internal knobs, for tests and benchmarks. */
export interface CheckpointOptions {
  /**
   * 'background' (the default with durability 'normal'): a thread checkpoints. 'inline'
   * (the default with durability 'full'): SQLite's own automatic checkpoints on the store's
   * connection, as before the thread existed.
   */
  readonly mode?: 'background' | 'inline';
  readonly startBytes?: number;
  readonly hardLimitBytes?: number;
  readonly maxDelayMs?: number;
  /** How long a catch-up may wait for the thread before the main thread checkpoints itself. */
  readonly threadTimeoutMs?: number;
  /** The thread's script; tests point it at a missing or misbehaving one. */
  readonly threadUrl?: URL;
}

export interface CheckpointStats {
  readonly thread: 'not started' | 'starting' | 'running' | 'failed' | 'closed';
  /** Checkpoints the thread ran, how many copied all the WAL had when they began, truncations. */
  readonly threadCheckpoints: number;
  readonly threadComplete: number;
  readonly threadTruncates: number;
  /** Hard-limit catch-ups by the thread, and how long writes waited for them. */
  readonly catchUps: number;
  readonly catchUpMs: number;
  readonly catchUpMaxMs: number;
  /** Blocking checkpoints on the main thread (no thread, or it did not answer), and their time. */
  readonly mainCheckpoints: number;
  readonly mainCheckpointMs: number;
  readonly mainCheckpointMaxMs: number;
}

interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

export class Checkpointer {
  readonly #db: DatabaseSync;
  readonly #file: string;
  readonly #walFile: string;
  readonly #synchronous: 'NORMAL' | 'FULL';
  readonly #startBytes: number;
  readonly #hardLimit: number;
  readonly #maxDelayMs: number;
  readonly #threadTimeoutMs: number;
  readonly #threadUrl: URL;
  readonly #pauseWrites: (until: Promise<void>) => void;
  readonly #ctl = new Int32Array(new SharedArrayBuffer(SLOT_COUNT * Int32Array.BYTES_PER_ELEMENT));
  readonly #passive: StatementSync;
  #phase: 'not started' | 'started' | 'failed' | 'closed' = 'not started';
  #worker: Worker | null = null;
  #untilCheck = CHECK_EVERY;
  /** The WAL size above which the next check acts (raised after a catch-up that could not complete). */
  #hardLimitAt: number;
  /** Ends the catch-up under way (writes resume); null when none is. */
  #endCatchUp: (() => void) | null = null;
  #catchUps = 0;
  #catchUpMs = 0;
  #catchUpMaxMs = 0;
  #mainCheckpoints = 0;
  #mainCheckpointMs = 0;
  #mainCheckpointMaxMs = 0;

  /** @param pauseWrites holds the store's writes back until the promise settles */
  constructor(
    db: DatabaseSync,
    file: string,
    durability: 'normal' | 'full',
    pauseWrites: (until: Promise<void>) => void,
    options: CheckpointOptions = {},
  ) {
    this.#db = db;
    this.#file = path.resolve(file);
    this.#walFile = `${this.#file}-wal`;
    this.#synchronous = durability === 'full' ? 'FULL' : 'NORMAL';
    this.#startBytes = options.startBytes ?? START_BYTES;
    this.#hardLimit = options.hardLimitBytes ?? HARD_LIMIT_BYTES;
    this.#hardLimitAt = this.#hardLimit;
    this.#maxDelayMs = options.maxDelayMs ?? MAX_DELAY_MS;
    this.#threadTimeoutMs = options.threadTimeoutMs ?? WAIT_FOR_THREAD_MS;
    this.#threadUrl = options.threadUrl ?? THREAD_URL;
    this.#pauseWrites = pauseWrites;
    this.#passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
    db.exec('PRAGMA wal_autocheckpoint = 0');
  }

  /** Called after every committed write transaction of the store's connection. */
  afterWrite(): void {
    const ctl = this.#ctl;
    Atomics.add(ctl, SLOT_COMMITS, 1);
    if (Atomics.load(ctl, SLOT_SLEEPING) !== 0) {
      Atomics.store(ctl, SLOT_SLEEPING, 0);
      this.#ring();
    }
    if (--this.#untilCheck === 0) this.#check();
  }

  /** Stops the thread (waiting for a checkpoint under way) before the connection closes. */
  close(): void {
    const phase = this.#phase;
    this.#phase = 'closed';
    this.#endCatchUp?.(); // writes held back now run, and find the store closed
    const worker = this.#worker;
    this.#worker = null;
    if (phase !== 'started' || worker === null) return;
    const ctl = this.#ctl;
    Atomics.store(ctl, SLOT_STOP, 1);
    this.#ring();
    // Wait (briefly, synchronously: close() is synchronous) for the thread to close its
    // connection, so that the store's own close is the last one and, as before, checkpoints
    // and removes the WAL. A thread still starting up is just terminated.
    if (Atomics.load(ctl, SLOT_STATE) === STATE_RUNNING) Atomics.wait(ctl, SLOT_STATE, STATE_RUNNING, WAIT_FOR_THREAD_MS);
    worker.terminate().catch(() => {});
  }

  stats(): CheckpointStats {
    const ctl = this.#ctl;
    let thread: CheckpointStats['thread'];
    if (this.#phase === 'started') thread = Atomics.load(ctl, SLOT_STATE) === STATE_RUNNING ? 'running' : 'starting';
    else thread = this.#phase;
    return {
      thread,
      threadCheckpoints: Atomics.load(ctl, SLOT_CHECKPOINTS),
      threadComplete: Atomics.load(ctl, SLOT_COMPLETE),
      threadTruncates: Atomics.load(ctl, SLOT_TRUNCATES),
      catchUps: this.#catchUps,
      catchUpMs: this.#catchUpMs,
      catchUpMaxMs: this.#catchUpMaxMs,
      mainCheckpoints: this.#mainCheckpoints,
      mainCheckpointMs: this.#mainCheckpointMs,
      mainCheckpointMaxMs: this.#mainCheckpointMaxMs,
    };
  }

  #ring(): void {
    Atomics.add(this.#ctl, SLOT_DOORBELL, 1);
    Atomics.notify(this.#ctl, SLOT_DOORBELL);
  }

  #check(): void {
    this.#untilCheck = CHECK_EVERY;
    if (this.#phase === 'closed' || this.#endCatchUp !== null) return;
    let size: number;
    try {
      size = fs.statSync(this.#walFile, { throwIfNoEntry: false })?.size ?? 0;
    } catch {
      return; // best effort: the write itself has committed
    }
    if (this.#phase === 'not started' && size >= this.#startBytes) this.#start();
    if (size <= this.#hardLimit) {
      this.#hardLimitAt = this.#hardLimit;
    } else if (size > this.#hardLimitAt) {
      if (this.#phase === 'started') this.#catchUp(size);
      else this.#checkpointHere(size);
    }
  }

  #start(): void {
    this.#phase = 'started';
    const data: CheckpointThreadData = {
      file: this.#file,
      synchronous: this.#synchronous,
      control: this.#ctl.buffer as SharedArrayBuffer,
      truncateAboveBytes: this.#startBytes,
      maxDelayMs: this.#maxDelayMs,
    };
    let worker: Worker;
    try {
      worker = new Worker(this.#threadUrl, { workerData: data, name: 'conveyor-checkpointer', execArgv: threadExecArgv() });
    } catch (err) {
      this.#fail(err);
      return;
    }
    this.#worker = worker;
    // Never keeps the process alive; at exit the thread just stops (a checkpoint cut short
    // is harmless: the WAL stays authoritative until one completes).
    worker.unref();
    worker.on('error', (err) => this.#fail(err));
    worker.on('exit', (code) => this.#fail(new Error(`the thread exited with code ${code}`)));
  }

  /** The thread could not start or died: SQLite's automatic checkpoints take over again. */
  #fail(err: unknown): void {
    if (this.#phase !== 'started' && this.#phase !== 'not started') return;
    this.#phase = 'failed';
    const worker = this.#worker;
    this.#worker = null;
    worker?.terminate().catch(() => {});
    try {
      this.#db.exec('PRAGMA wal_autocheckpoint = 1000');
    } catch {
      // the connection is gone; nothing left to checkpoint for
    }
    const reason = err instanceof Error ? err.message : String(err);
    process.emitWarning(
      `conveyor: the background checkpointer of SQLite store ${this.#file} failed (${reason}); checkpoints now run on the main thread`,
      { code: 'CONVEYOR_CHECKPOINTER' },
    );
    this.#endCatchUp?.(); // one the thread will never answer
  }

  /** The WAL passed the hard limit: writes wait while the thread copies and syncs it all. */
  #catchUp(size: number): void {
    const ctl = this.#ctl;
    const started = performance.now();
    let ended = false;
    let resume!: () => void;
    const resumed = new Promise<void>((resolve) => (resume = resolve));
    // Keeps the process alive while writes wait (Atomics.waitAsync does not), and bounds the wait.
    const timer = setTimeout(() => end(), this.#threadTimeoutMs);
    const end = (): void => {
      if (ended) return;
      ended = true;
      clearTimeout(timer);
      this.#endCatchUp = null;
      const answer = Atomics.exchange(ctl, SLOT_CATCH_UP, CATCH_UP_NONE);
      if (answer === CATCH_UP_REQUESTED) {
        // No answer in time (the thread is stuck) or ever (it died): do it here, blocking.
        if (this.#phase !== 'closed') this.#checkpointHere(size);
      } else {
        // Complete: the next commit starts the WAL over. Not complete: another connection
        // holds old frames or was checkpointing; try again once the WAL has grown some more.
        this.#hardLimitAt = answer === CATCH_UP_COMPLETE ? this.#hardLimit : size + HARD_LIMIT_STEP;
      }
      const ms = performance.now() - started;
      this.#catchUps++;
      this.#catchUpMs += ms;
      this.#catchUpMaxMs = Math.max(this.#catchUpMaxMs, ms);
      resume();
    };
    this.#endCatchUp = end;
    Atomics.store(ctl, SLOT_CATCH_UP, CATCH_UP_REQUESTED);
    this.#ring();
    const answer = waitAsync(ctl, SLOT_CATCH_UP, CATCH_UP_REQUESTED, this.#threadTimeoutMs);
    if (answer.async) void answer.value.then(end);
    else end();
    this.#pauseWrites(resumed);
  }

  /** Checkpoints on this thread, blocking: when there is no thread to do it. */
  #checkpointHere(size: number): void {
    const started = performance.now();
    try {
      const row = this.#passive.get() as unknown as CheckpointRow;
      const complete = row.busy === 0 && row.checkpointed === row.log;
      this.#hardLimitAt = complete ? this.#hardLimit : size + HARD_LIMIT_STEP;
    } catch {
      this.#hardLimitAt = size + HARD_LIMIT_STEP;
    }
    const ms = performance.now() - started;
    this.#mainCheckpoints++;
    this.#mainCheckpointMs += ms;
    this.#mainCheckpointMaxMs = Math.max(this.#mainCheckpointMaxMs, ms);
  }
}
