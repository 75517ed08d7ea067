/**
 * What the store's connection (main thread) and its checkpoint thread share: the layout of
 * one small SharedArrayBuffer of Int32 slots, and the thread's start-up data. No code, so
 * the thread loads nothing but this and node: built-ins.
 *
 * All slots are read and written with Atomics.
 */

/** Commits made by the store's connection; main thread adds 1 after each write transaction. */
export const SLOT_COMMITS = 0;
/** Main thread adds 1 and notifies to wake the thread (a commit after idleness, a request, stop). */
export const SLOT_DOORBELL = 1;
/** 1 while the thread sleeps waiting for commits: the next commit rings the doorbell. */
export const SLOT_SLEEPING = 2;
/** Main thread sets 1 in close(); the thread closes its connection and ends. */
export const SLOT_STOP = 3;
/** The thread's state: STATE_STARTING, STATE_RUNNING, STATE_CLOSED (notified on change). */
export const SLOT_STATE = 4;
/**
 * The WAL reached the hard limit: the main thread holds its writes back, sets CATCH_UP_REQUESTED
 * and waits; the thread checkpoints and answers CATCH_UP_COMPLETE or CATCH_UP_INCOMPLETE (notified).
 */
export const SLOT_CATCH_UP = 5;
/** Statistics, for tests and benchmarks: checkpoints run by the thread… */
export const SLOT_CHECKPOINTS = 6;
/** …of which complete (copied every frame the WAL had when they started)… */
export const SLOT_COMPLETE = 7;
/** …and WAL truncations (TRUNCATE checkpoints that succeeded). */
export const SLOT_TRUNCATES = 8;
export const SLOT_COUNT = 9;

export const STATE_STARTING = 0;
export const STATE_RUNNING = 1;
export const STATE_CLOSED = 2;

export const CATCH_UP_NONE = 0;
export const CATCH_UP_REQUESTED = 1;
export const CATCH_UP_COMPLETE = 2;
export const CATCH_UP_INCOMPLETE = 3;

export interface CheckpointThreadData {
  /** Absolute path of the database file. */
  readonly file: string;
  /** The store connection's `synchronous` level; a checkpoint syncs according to it. */
  readonly synchronous: 'NORMAL' | 'FULL';
  /** SLOT_COUNT Int32 slots. */
  readonly control: SharedArrayBuffer;
  /** When idle, a WAL file larger than this is truncated to zero bytes. */
  readonly truncateAboveBytes: number;
  /** A commit waits at most this long for a checkpoint; also the idle time before a truncation. */
  readonly maxDelayMs: number;
}
