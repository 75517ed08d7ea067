/**
 * The checkpoint thread of a file store (a worker_threads Worker; see checkpointer.ts).
 *
 * In WAL mode a commit only appends to the `-wal` file; a checkpoint copies the newest
 * version of every page in the WAL back into the database file and, with
 * synchronous=NORMAL, is the only moment SQLite fsyncs. node:sqlite is synchronous, so a
 * checkpoint on the store's own connection (SQLite's automatic one runs inside whichever
 * COMMIT crosses 1000 WAL pages) stalls the event loop for milliseconds. This thread has
 * its own connection to the same file and runs the checkpoints instead, while the main
 * connection keeps committing: a PASSIVE checkpoint takes no lock a writer needs.
 *
 * When to checkpoint (the main thread counts its commits in SLOT_COMMITS):
 * - every CHECKPOINT_COMMITS commits, or when the WAL file grew by CHECKPOINT_GROWTH_BYTES
 *   (large transactions), looking every BUSY_POLL_MS while commits arrive;
 * - at the latest maxDelayMs (1 s) after a commit (a trickle of writes, or the tail of a burst):
 *   this bounds what a power loss can take with synchronous=NORMAL to about a second, and a
 *   complete checkpoint lets the next commit start the WAL over from its beginning;
 * - when nothing happened for a while and the WAL file is larger than needed, a TRUNCATE
 *   checkpoint gives the disk space back;
 * - at once when the main thread asks for a catch-up (SLOT_CATCH_UP; the WAL reached the
 *   hard limit, see checkpointer.ts).
 * Idle, the thread sleeps until the next commit rings the doorbell (or IDLE_POLL_MS).
 *
 * Only node: built-ins and the protocol constants are loaded, so the thread starts quickly.
 */
import fs from 'node:fs';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { workerData } from 'node:worker_threads';
import {
  CATCH_UP_COMPLETE,
  CATCH_UP_INCOMPLETE,
  CATCH_UP_REQUESTED,
  SLOT_CATCH_UP,
  SLOT_CHECKPOINTS,
  SLOT_COMMITS,
  SLOT_COMPLETE,
  SLOT_DOORBELL,
  SLOT_SLEEPING,
  SLOT_STATE,
  SLOT_STOP,
  SLOT_TRUNCATES,
  STATE_CLOSED,
  STATE_RUNNING,
  type CheckpointThreadData,
} from './checkpoint-protocol.ts';

/** ≈ SQLite's default of 1000 WAL pages for the store's small transactions (3–4 pages each). */
const CHECKPOINT_COMMITS = 256;
const CHECKPOINT_GROWTH_BYTES = 4 * 1024 * 1024;
const BUSY_POLL_MS = 10;
const IDLE_POLL_MS = 1000;

interface CheckpointRow {
  readonly busy: number;
  readonly log: number;
  readonly checkpointed: number;
}

/** Atomics.waitAsync (Node ≥ 16), missing from the ES2023 lib the project compiles against. */
type WaitAsync = (
  array: Int32Array,
  index: number,
  value: number,
  timeoutMs: number,
) => { readonly async: false; readonly value: string } | { readonly async: true; readonly value: Promise<string> };
const waitAsync = (Atomics as unknown as { readonly waitAsync: WaitAsync }).waitAsync;

const data = workerData as CheckpointThreadData;
const ctl = new Int32Array(data.control);
const walFile = `${data.file}-wal`;

function walSize(): number {
  return fs.statSync(walFile, { throwIfNoEntry: false })?.size ?? 0;
}

/** SQLITE_BUSY or SQLITE_LOCKED: someone else holds the lock; try again later. */
function isBusy(err: unknown): boolean {
  const code = (err as { errcode?: unknown } | null)?.errcode;
  return typeof code === 'number' && ((code & 0xff) === 5 || (code & 0xff) === 6);
}

// ------------------------------------------------------------ flushing the database file
//
// Under a write load that never pauses, SQLite's checkpoints copy pages into the database
// file but skip its fsync (they sync it only when no commit came in while they copied:
// before the WAL may start over, the database must be on disk). The dirty pages then pile
// up in the OS cache until some checkpoint does sync (the catch-up at the hard limit, or
// the store's close), which then has tens of megabytes to write: measured, 20–50 ms more
// per catch-up. So after each checkpoint the thread flushes the database file itself.
//
// It needs a file descriptor for that, and must never open (and so later close) one of its
// own: closing any descriptor of a file drops all POSIX locks the process holds on it,
// including SQLite's, which would let another process delete the WAL under us. Instead the
// thread borrows the descriptor its own SQLite connection opened, found on Linux through
// /proc/self/fd, and never closes it; it stays valid for as long as that connection is
// open, which covers every use below. Correctness never depends on this flush (SQLite
// still syncs wherever it must); elsewhere than Linux it is simply skipped.

/** The descriptors of this process open on the database file, by number. */
function descriptorsOfDatabase(): Set<string> | null {
  try {
    const real = fs.realpathSync(data.file);
    const found = new Set<string>();
    for (const name of fs.readdirSync('/proc/self/fd')) {
      try {
        if (fs.readlinkSync(`/proc/self/fd/${name}`) === real) found.add(name);
      } catch {
        // closed meanwhile (for instance the directory listing's own descriptor)
      }
    }
    return found;
  } catch {
    return null; // no /proc: not Linux
  }
}

/** The database descriptor that opening `open()` added, or -1 if not exactly one. */
function borrowDescriptor<T>(open: () => T): { readonly value: T; readonly fd: number } {
  const before = descriptorsOfDatabase();
  const value = open();
  if (before === null) return { value, fd: -1 };
  const added = [...(descriptorsOfDatabase() ?? [])].filter((name) => !before.has(name));
  // Another connection opening the same file at the same moment would make this ambiguous.
  return { value, fd: added.length === 1 ? Number(added[0]) : -1 };
}

let databaseFd = -1;

function flushDatabase(): void {
  if (databaseFd < 0) return;
  try {
    fs.fdatasyncSync(databaseFd);
  } catch {
    databaseFd = -1; // not worth retrying; SQLite's own syncs are unaffected
  }
}

/**
 * Runs a wal_checkpoint pragma; true if it copied every frame the WAL had when it started
 * (then, if no commit came in meanwhile, SQLite also synced the database file).
 */
function checkpoint(stmt: StatementSync): boolean {
  let row: CheckpointRow;
  try {
    row = stmt.get() as unknown as CheckpointRow;
  } catch (err) {
    if (isBusy(err)) return false;
    throw err;
  }
  Atomics.add(ctl, SLOT_CHECKPOINTS, 1);
  // busy: another connection held the checkpoint lock (another process's checkpointer),
  // or readers still use old frames. log = -1: the database is not in WAL mode.
  const complete = row.busy === 0 && row.checkpointed === row.log;
  if (complete) Atomics.add(ctl, SLOT_COMPLETE, 1);
  flushDatabase();
  return complete;
}

async function run(db: DatabaseSync): Promise<void> {
  const passive = db.prepare('PRAGMA wal_checkpoint(PASSIVE)');
  const truncate = db.prepare('PRAGMA wal_checkpoint(TRUNCATE)');
  // The WAL already holds frames when the thread starts: the first look checkpoints.
  let doneCommits = -1; // commit count covered by the last complete checkpoint
  let attemptCommits = Atomics.load(ctl, SLOT_COMMITS);
  let attemptSize = 0;
  let attemptAt = -Infinity;
  for (;;) {
    const bell = Atomics.load(ctl, SLOT_DOORBELL);
    if (Atomics.load(ctl, SLOT_STOP) !== 0) return;
    const commits = Atomics.load(ctl, SLOT_COMMITS);
    const now = performance.now();
    if (Atomics.load(ctl, SLOT_CATCH_UP) === CATCH_UP_REQUESTED) {
      // The WAL reached the hard limit and the main thread holds its writes back until this
      // checkpoint has copied (and synced) everything, so that the next commit can start
      // the WAL over. Nothing of ours commits meanwhile, so it normally completes.
      attemptCommits = commits;
      attemptAt = now;
      const complete = checkpoint(passive);
      if (complete) doneCommits = commits;
      Atomics.store(ctl, SLOT_CATCH_UP, complete ? CATCH_UP_COMPLETE : CATCH_UP_INCOMPLETE);
      Atomics.notify(ctl, SLOT_CATCH_UP);
      continue;
    }
    const size = walSize();
    if (size < attemptSize) attemptSize = size; // the WAL started over or was truncated
    let waitMs: number;
    if (commits !== doneCommits) {
      const due =
        ((commits - attemptCommits) | 0) >= CHECKPOINT_COMMITS ||
        size - attemptSize >= CHECKPOINT_GROWTH_BYTES ||
        now - attemptAt >= data.maxDelayMs;
      if (due) {
        attemptCommits = commits;
        attemptSize = size;
        attemptAt = now;
        // `commits` was read before the checkpoint began: a commit made meanwhile keeps
        // the WAL pending, and the next look checkpoints again.
        if (checkpoint(passive)) doneCommits = commits;
      }
      // Even when the next one is due at once (a heavy load), pause a little: back-to-back
      // checkpoints cost the main thread CPU on small machines for little gain (measured),
      // and a catch-up request rings the doorbell, which ends the wait early.
      waitMs = BUSY_POLL_MS;
    } else {
      if (size > data.truncateAboveBytes && now - attemptAt >= data.maxDelayMs) {
        // Idle for a while, everything copied: give the disk space back. TRUNCATE needs the
        // write lock; with busy_timeout 0 it simply reports busy if a write is under way (or
        // a reader still uses the WAL), and is tried again a little later.
        attemptAt = now;
        if (checkpoint(truncate)) {
          Atomics.add(ctl, SLOT_TRUNCATES, 1);
          attemptSize = 0;
        }
        continue;
      }
      // Sleep until the next commit; the main thread rings the doorbell when it sees
      // SLEEPING. Re-read the commit count after announcing, so no wake-up is missed.
      Atomics.store(ctl, SLOT_SLEEPING, 1);
      if (Atomics.load(ctl, SLOT_COMMITS) !== commits) {
        Atomics.store(ctl, SLOT_SLEEPING, 0);
        continue;
      }
      // A WAL to truncate: wake when it is due.
      waitMs = size > data.truncateAboveBytes ? Math.max(1, attemptAt + data.maxDelayMs - now) : IDLE_POLL_MS;
    }
    const wait = waitAsync(ctl, SLOT_DOORBELL, bell, waitMs);
    if (wait.async) await wait.value;
    Atomics.store(ctl, SLOT_SLEEPING, 0);
  }
}

// Atomics.waitAsync alone does not keep a worker's event loop alive.
const keepAlive = setInterval(() => {}, 1 << 30);
let db: DatabaseSync | null = null;
try {
  // timeout 0: never wait for a lock; a checkpoint that cannot proceed is simply retried.
  const opened = borrowDescriptor(() => new DatabaseSync(data.file, { timeout: 0 }));
  db = opened.value;
  databaseFd = opened.fd;
  db.exec(`PRAGMA synchronous = ${data.synchronous}`);
  Atomics.store(ctl, SLOT_STATE, STATE_RUNNING);
  Atomics.notify(ctl, SLOT_STATE);
  await run(db);
} finally {
  clearInterval(keepAlive);
  databaseFd = -1;
  try {
    db?.close();
  } finally {
    Atomics.store(ctl, SLOT_STATE, STATE_CLOSED);
    Atomics.notify(ctl, SLOT_STATE);
  }
}
