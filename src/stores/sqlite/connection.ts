/**
 * Opening the database and running transactions on it.
 *
 * node:sqlite is synchronous: every statement blocks the event loop until it finishes.
 * That makes the uncontended case very cheap (no promise, no thread hop), and it shapes
 * how lock contention is handled: SQLite's own busy handler sleeps *synchronously*, so it
 * is kept short (BUSY_HANDLER_MS) and longer waits happen here, asynchronously, with
 * jittered exponential backoff, until the store's `busyTimeoutMs` has passed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { ConveyorError, StoreError } from '../../errors.ts';
import type { CheckpointOptions } from './checkpointer.ts';

/** How long SQLite itself may block the thread waiting for a lock before reporting SQLITE_BUSY. */
export const BUSY_HANDLER_MS = 10;
const BACKOFF_START_MS = 1.5;
const BACKOFF_MAX_MS = 50;

export interface ConnectionOptions {
  /** File path, or ':memory:'. */
  readonly path: string;
  readonly durability: 'normal' | 'full';
  readonly busyTimeoutMs: number;
  /** Internal (tests, benchmarks): how file stores checkpoint; see checkpointer.ts. */
  readonly checkpoint?: CheckpointOptions | undefined;
}

export function isMemoryPath(p: string): boolean {
  return p === ':memory:' || p === '';
}

/**
 * Opens the database and sets the connection pragmas. Any failure here means the store
 * cannot be used at all, so it is reported as STORE_UNAVAILABLE (STORE_BUSY if another
 * process kept the file locked for longer than `busyTimeoutMs`).
 */
export function openDatabase(options: ConnectionOptions): DatabaseSync {
  const memory = isMemoryPath(options.path);
  let db: DatabaseSync;
  try {
    if (!memory) fs.mkdirSync(path.dirname(path.resolve(options.path)), { recursive: true });
    db = new DatabaseSync(memory ? ':memory:' : options.path);
  } catch (err) {
    throw new StoreError('STORE_UNAVAILABLE', `cannot open SQLite database ${options.path}: ${messageOf(err)}`, {
      operation: 'open',
      cause: err,
    });
  }
  try {
    // Opening may race with other processes creating the file or switching it to WAL;
    // blocking for up to busyTimeoutMs is acceptable once, at startup (see withLongBusyTimeout).
    withLongBusyTimeout(db, options.busyTimeoutMs, () => {
      // WAL: readers never block the writer and vice versa, and a commit is one append.
      db.exec('PRAGMA journal_mode = WAL');
    });
    db.exec(
      [
        // NORMAL in WAL mode loses nothing on a process crash (the WAL is in the OS cache);
        // FULL also fsyncs the WAL on every commit, so it survives power loss.
        `PRAGMA synchronous = ${options.durability === 'full' ? 'FULL' : 'NORMAL'}`,
        `PRAGMA busy_timeout = ${Math.min(BUSY_HANDLER_MS, Math.max(0, Math.floor(options.busyTimeoutMs)))}`,
        // The store keeps related rows consistent itself (it deletes a job's logs with it),
        // so foreign-key checks would only add a lookup per write.
        'PRAGMA foreign_keys = OFF',
        'PRAGMA temp_store = MEMORY',
        // 32 MiB page cache: enough for the hot parts of a queue of a few million jobs.
        'PRAGMA cache_size = -32768',
        // After a burst, give the WAL file back to the OS down to 64 MiB at the next reset.
        'PRAGMA journal_size_limit = 67108864',
      ].join(';\n'),
    );
  } catch (err) {
    try {
      db.close();
    } catch {
      // already failing; the original error is the interesting one
    }
    if (err instanceof ConveyorError) throw err;
    if (isBusy(err)) throw busyError('open', err);
    throw new StoreError('STORE_UNAVAILABLE', `cannot use SQLite database ${options.path}: ${messageOf(err)}`, {
      operation: 'open',
      cause: err,
    });
  }
  return db;
}

/**
 * Runs `fn` with SQLite's busy handler extended to `busyTimeoutMs`. Only for one-off work
 * at startup (opening, migrating), where blocking the thread is acceptable and far simpler
 * than making construction asynchronous.
 */
export function withLongBusyTimeout<T>(db: DatabaseSync, busyTimeoutMs: number, fn: () => T): T {
  const short = Math.min(BUSY_HANDLER_MS, Math.max(0, Math.floor(busyTimeoutMs)));
  db.exec(`PRAGMA busy_timeout = ${Math.max(0, Math.floor(busyTimeoutMs))}`);
  try {
    return fn();
  } finally {
    db.exec(`PRAGMA busy_timeout = ${short}`);
  }
}

// -------------------------------------------------------------------------- errors

interface SqliteErrorShape {
  readonly errcode?: unknown;
  readonly errstr?: unknown;
}

/** SQLITE_BUSY (5) or SQLITE_LOCKED (6), including their extended codes. */
export function isBusy(err: unknown): boolean {
  if (typeof err !== 'object' || err === null) return false;
  const code = (err as SqliteErrorShape).errcode;
  if (typeof code !== 'number') return false;
  const primary = code & 0xff;
  return primary === 5 || primary === 6;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export function busyError(operation: string, cause: unknown): StoreError {
  return new StoreError('STORE_BUSY', `SQLite store stayed locked by another connection during ${operation}`, {
    operation,
    cause,
  });
}

/** Our own errors pass through; anything else (driver errors, bugs) becomes STORE_ERROR. */
export function translateError(operation: string, err: unknown): ConveyorError {
  if (err instanceof ConveyorError) return err;
  return new StoreError('STORE_ERROR', `SQLite store failed during ${operation}: ${messageOf(err)}`, {
    operation,
    cause: err,
  });
}

export function closedError(): ConveyorError {
  return new ConveyorError('CLOSED', 'the SQLite store is closed');
}

// -------------------------------------------------------------------- transactions

/** Something with in-memory effects that must follow the fate of the current transaction. */
export interface TxParticipant {
  /** Called after a successful COMMIT. */
  committed(): void;
  /** Called after ROLLBACK (or when the transaction never started). */
  rolledBack(): void;
}

/** Marks a write that is a single statement in autocommit mode (see writeOneStatement). */
const AUTOCOMMIT = Symbol('autocommit');

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Runs store operations as transactions with busy retries.
 *
 * `write` wraps `fn` in BEGIN IMMEDIATE … COMMIT: the write lock is taken up front, so a
 * transaction never has to upgrade a read lock (which in WAL mode can fail without waiting)
 * and every read inside it sees the latest data. `read` runs `fn` as is (autocommit
 * statements) or, with `snapshot`, inside a deferred BEGIN for one consistent view.
 *
 * Fast path: no contention → the result is returned synchronously. On SQLITE_BUSY the
 * whole transaction is retried later, and the caller gets a Promise instead.
 */
export class TransactionRunner {
  readonly #db: DatabaseSync;
  readonly #busyTimeoutMs: number;
  readonly #participants: readonly TxParticipant[];
  readonly #begin: StatementSync;
  readonly #beginRead: StatementSync;
  readonly #commit: StatementSync;
  readonly #rollback: StatementSync;
  readonly #afterWrite: (() => void) | null;
  /** While set, writes wait for it before they run (see pauseWrites). */
  #writesPaused: Promise<void> | null = null;
  #closed = false;

  /** @param afterWrite called after every committed write (not after reads) */
  constructor(db: DatabaseSync, busyTimeoutMs: number, participants: readonly TxParticipant[], afterWrite: (() => void) | null = null) {
    this.#db = db;
    this.#busyTimeoutMs = busyTimeoutMs;
    this.#participants = participants;
    this.#afterWrite = afterWrite;
    this.#begin = db.prepare('BEGIN IMMEDIATE');
    this.#beginRead = db.prepare('BEGIN DEFERRED');
    this.#commit = db.prepare('COMMIT');
    this.#rollback = db.prepare('ROLLBACK');
  }

  get closed(): boolean {
    return this.#closed;
  }

  markClosed(): void {
    this.#closed = true;
  }

  assertOpen(): void {
    if (this.#closed) throw closedError();
  }

  /**
   * Holds writes back until `until` settles, without blocking the event loop: writes called
   * meanwhile return promises and run afterwards, in call order. Reads go on as usual. Used
   * by the checkpointer while its thread catches up with the WAL (see checkpointer.ts).
   */
  pauseWrites(until: Promise<void>): void {
    const resume = (): void => {
      if (this.#writesPaused === paused) this.#writesPaused = null;
    };
    const paused: Promise<void> = until.then(resume, resume);
    this.#writesPaused = paused;
  }

  write<T>(operation: string, fn: () => T): T | Promise<T> {
    if (this.#writesPaused !== null) return this.#writesPaused.then(() => this.#run(operation, fn, this.#begin));
    return this.#run(operation, fn, this.#begin);
  }

  /**
   * A write made of exactly one statement, run in autocommit mode: SQLite makes a single
   * statement atomic by itself, so BEGIN/COMMIT would only add two round trips into the
   * library on the hottest path (a lone add). Participants are told the outcome as usual.
   */
  writeOneStatement<T>(operation: string, fn: () => T): T | Promise<T> {
    if (this.#writesPaused !== null) return this.#writesPaused.then(() => this.#run(operation, fn, AUTOCOMMIT));
    return this.#run(operation, fn, AUTOCOMMIT);
  }

  read<T>(operation: string, fn: () => T, snapshot = false): T | Promise<T> {
    return this.#run(operation, fn, snapshot ? this.#beginRead : null);
  }

  #run<T>(operation: string, fn: () => T, begin: StatementSync | null | typeof AUTOCOMMIT): T | Promise<T> {
    if (this.#closed) throw closedError();
    try {
      return this.#attempt(fn, begin);
    } catch (err) {
      if (!isBusy(err)) throw translateError(operation, err);
      if (this.#busyTimeoutMs <= BUSY_HANDLER_MS) throw busyError(operation, err);
      return this.#retry(operation, fn, begin, Date.now() + this.#busyTimeoutMs - BUSY_HANDLER_MS);
    }
  }

  async #retry<T>(operation: string, fn: () => T, begin: StatementSync | null | typeof AUTOCOMMIT, deadline: number): Promise<T> {
    let backoff = BACKOFF_START_MS;
    for (;;) {
      // ±50% jitter around the current step, so processes that collided spread out.
      const wait = Math.min(backoff, BACKOFF_MAX_MS) * (0.5 + Math.random());
      await sleep(Math.max(1, Math.min(wait, deadline - Date.now())));
      if (this.#closed) throw closedError();
      try {
        return this.#attempt(fn, begin);
      } catch (err) {
        if (!isBusy(err)) throw translateError(operation, err);
        if (Date.now() >= deadline) throw busyError(operation, err);
      }
      backoff *= 2;
    }
  }

  #attempt<T>(fn: () => T, begin: StatementSync | null | typeof AUTOCOMMIT): T {
    if (begin === null) {
      // Autocommit reads have no in-memory effects to commit or roll back.
      return fn();
    }
    if (begin === AUTOCOMMIT) {
      let result: T;
      try {
        result = fn();
      } catch (err) {
        for (const p of this.#participants) p.rolledBack();
        throw err;
      }
      for (const p of this.#participants) p.committed();
      this.#afterWrite?.();
      return result;
    }
    let result: T;
    try {
      begin.run();
      result = fn();
      this.#commit.run();
    } catch (err) {
      if (this.#db.isTransaction) {
        try {
          this.#rollback.run();
        } catch {
          // A failed ROLLBACK leaves nothing more to undo; report the original error.
        }
      }
      for (const p of this.#participants) p.rolledBack();
      throw err;
    }
    for (const p of this.#participants) p.committed();
    if (begin !== this.#beginRead) this.#afterWrite?.();
    return result;
  }
}
