/**
 * Change signals for `subscribe`.
 *
 * Local signals are collected while a transaction runs and delivered only after it
 * commits (a rolled-back write must not wake anyone). Writes by other processes are
 * noticed by watching the database's WAL file: every commit appends to it. Watching the
 * directory (not the file) keeps working when SQLite creates, truncates or deletes the WAL.
 * Our own commits touch the WAL too; `PRAGMA data_version` changes only when *another*
 * connection committed, so it filters those out.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { StatementSync } from 'node:sqlite';
import type { StoreSignal } from '../../store/contract.ts';
import type { TxParticipant } from './connection.ts';

type Listener = (signal: StoreSignal) => void;

/** How long to wait before re-checking data_version when a WAL write was not (yet) a visible commit. */
const RECHECK_MS = 15;

export class Signals implements TxParticipant {
  readonly #listeners = new Set<Listener>();
  readonly #pending: StoreSignal[] = [];
  /** The database file to watch, or null for in-memory databases. */
  readonly #file: string | null;
  /** `PRAGMA data_version`, prepared by the store; null for in-memory databases. */
  readonly #dataVersion: (() => number) | null;
  #watcher: fs.FSWatcher | null = null;
  #lastVersion = 0;
  #checkQueued = false;
  #recheckQueued = false;
  #closed = false;

  constructor(file: string | null, dataVersion: StatementSync | null) {
    this.#file = file === null ? null : path.resolve(file);
    this.#dataVersion =
      dataVersion === null ? null : () => (dataVersion.get() as { data_version: number }).data_version;
  }

  /** Whether anyone listens; writers skip building signals when nobody does. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** Queue a signal for delivery when the current transaction commits. */
  push(signal: StoreSignal): void {
    this.#pending.push(signal);
  }

  committed(): void {
    if (this.#pending.length === 0) return;
    const signals = this.#pending.splice(0);
    for (const s of signals) this.#deliver(s);
  }

  rolledBack(): void {
    this.#pending.length = 0;
  }

  subscribe(listener: Listener): () => void {
    // A wrapper per subscription, so the same function subscribed twice is two listeners.
    const entry: Listener = (signal) => listener(signal);
    this.#listeners.add(entry);
    if (this.#listeners.size === 1) this.#startWatching();
    return () => {
      if (!this.#listeners.delete(entry)) return;
      if (this.#listeners.size === 0) this.#stopWatching();
    };
  }

  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#pending.length = 0;
    this.#stopWatching();
  }

  #deliver(signal: StoreSignal): void {
    for (const listener of this.#listeners) {
      try {
        listener(signal);
      } catch (err) {
        // A broken listener must not break the write that already committed, nor the
        // other listeners; surface it as a process warning instead of swallowing it.
        process.emitWarning(`conveyor: a store signal listener threw: ${err instanceof Error ? err.message : String(err)}`, {
          code: 'CONVEYOR_SIGNAL_LISTENER',
        });
      }
    }
  }

  #startWatching(): void {
    if (this.#file === null || this.#dataVersion === null || this.#closed || this.#watcher !== null) return;
    const walName = path.basename(this.#file) + '-wal';
    try {
      this.#lastVersion = this.#dataVersion();
      // persistent: false → the watcher never keeps the process alive.
      this.#watcher = fs.watch(path.dirname(this.#file), { persistent: false }, (_event, filename) => {
        if (filename === null || filename.toString() === walName) this.#schedule();
      });
      this.#watcher.on('error', () => this.#stopWatching());
    } catch {
      // No file watching on this filesystem: local signals still work, and signals are
      // hints only (workers also poll), so this degrades latency, not correctness.
      this.#watcher = null;
    }
  }

  #stopWatching(): void {
    this.#watcher?.close();
    this.#watcher = null;
  }

  /** Coalesce bursts of file events into one check per tick. */
  #schedule(): void {
    if (this.#checkQueued) return;
    this.#checkQueued = true;
    setTimeout(() => {
      this.#checkQueued = false;
      this.#check(true);
    }, 1).unref();
  }

  #check(first: boolean): void {
    if (this.#watcher === null || this.#dataVersion === null) return;
    let version: number;
    try {
      version = this.#dataVersion();
    } catch {
      // Could not look (e.g. the file is locked during recovery): say "something changed"
      // rather than risk a missed wake-up.
      this.#deliver({ type: 'changed' });
      return;
    }
    if (version !== this.#lastVersion) {
      this.#lastVersion = version;
      this.#deliver({ type: 'changed' });
    } else if (first && !this.#recheckQueued) {
      // The event may have come from WAL frames of a commit that is not visible yet (a
      // commit becomes visible when the wal-index is updated, after the last write): look
      // once more a little later before concluding it was our own write or a checkpoint.
      this.#recheckQueued = true;
      setTimeout(() => {
        this.#recheckQueued = false;
        this.#check(false);
      }, RECHECK_MS).unref();
    }
  }
}
