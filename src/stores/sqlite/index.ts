/**
 * The embedded SQLite store: conveyor's default, one file (or memory), no server.
 *
 * This class only wires things together: every method runs one operation module's
 * function inside the transaction runner, which supplies atomicity, busy retries, error
 * translation and post-commit signals. The SQL lives in the modules next to this file.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { JobRecord } from '../../job.ts';
import type {
  AddLogsParams,
  AdminOutcome,
  BulkRetryParams,
  ClaimParams,
  ClaimResult,
  CleanParams,
  CompleteParams,
  DrainParams,
  EnqueueParams,
  EnqueueResult,
  ExtendOutcome,
  ExtendParams,
  FailOutcome,
  FailParams,
  JobCounts,
  JobPage,
  JobRef,
  JobWriteOutcome,
  LeaseOutcome,
  LeaseRef,
  ListJobsParams,
  LogPage,
  ProgressParams,
  QueueInfo,
  RecoveredJob,
  RecoverParams,
  RetryParams,
  Store,
  StoreCapability,
  StoreSignal,
} from '../../store/contract.ts';
import type { ApiKeyRecord, ReadEventsParams, StoredEvent, WorkerInfo } from '../../store/contract.ts';
import { Acks } from './acks.ts';
import { Admin } from './admin.ts';
import { Checkpointer, type CheckpointStats } from './checkpointer.ts';
import { Claimer } from './claim.ts';
import { closedError, isMemoryPath, openDatabase, TransactionRunner, type ConnectionOptions } from './connection.ts';
import { StatementCache, type StoreContext } from './context.ts';
import { Enqueuer } from './enqueue.ts';
import { AttemptStarts, EventLog } from './events.ts';
import { JobLocator } from './lookup.ts';
import { migrate } from './migrations.ts';
import { QueueRegistry } from './queues.ts';
import { Reader } from './read.ts';
import { Registry } from './registry.ts';
import { Signals } from './signals.ts';

export type SqliteStoreOptions = ConnectionOptions;

const FILE_CAPABILITIES: ReadonlySet<StoreCapability> = new Set<StoreCapability>(['multiProcess', 'crossProcessSignals']);
const MEMORY_CAPABILITIES: ReadonlySet<StoreCapability> = new Set<StoreCapability>();

export class SqliteStore implements Store {
  readonly kind = 'sqlite';
  readonly capabilities: ReadonlySet<StoreCapability>;
  /** The database file, or ':memory:'. */
  readonly path: string;

  readonly #options: SqliteStoreOptions;
  readonly #db: DatabaseSync;
  readonly #runner: TransactionRunner;
  readonly #signals: Signals;
  readonly #enqueuer: Enqueuer;
  readonly #claimer: Claimer;
  readonly #acks: Acks;
  readonly #admin: Admin;
  readonly #reader: Reader;
  readonly #registry: Registry;
  readonly #events: EventLog;
  readonly #ping: StatementSync;
  readonly #queues: QueueRegistry;
  /** File stores: checkpoints off the event loop (null: SQLite's automatic checkpoints). */
  readonly #checkpointer: Checkpointer | null;

  /** Opens the database, sets pragmas and migrates the schema; prefer `openSqliteStore`. */
  constructor(options: SqliteStoreOptions) {
    const memory = isMemoryPath(options.path);
    this.#options = options;
    this.path = memory ? ':memory:' : options.path;
    this.capabilities = memory ? MEMORY_CAPABILITIES : FILE_CAPABILITIES;
    const db = openDatabase(options);
    try {
      migrate(db, options.busyTimeoutMs);
    } catch (err) {
      db.close();
      throw err;
    }
    this.#db = db;
    // durability 'full' keeps SQLite's own checkpoints: every commit already fsyncs the WAL,
    // and measured, the thread made such commits slower, not faster (see checkpointer.ts).
    const mode = options.checkpoint?.mode ?? (options.durability === 'full' ? 'inline' : 'background');
    this.#checkpointer =
      memory || mode === 'inline'
        ? null
        : new Checkpointer(db, options.path, options.durability, (until) => this.#runner.pauseWrites(until), options.checkpoint);
    const queues = new QueueRegistry(db);
    this.#queues = queues;
    this.#signals = new Signals(memory ? null : options.path, memory ? null : db.prepare('PRAGMA data_version'));
    this.#events = new EventLog(db);
    const ctx: StoreContext = {
      db,
      statements: new StatementCache(db),
      queues,
      signals: this.#signals,
      events: this.#events,
      attempts: new AttemptStarts(),
    };
    const checkpointer = this.#checkpointer;
    this.#runner = new TransactionRunner(
      db,
      options.busyTimeoutMs,
      [queues, this.#signals],
      checkpointer === null ? null : () => checkpointer.afterWrite(),
    );
    const locator = new JobLocator(ctx);
    this.#enqueuer = new Enqueuer(ctx);
    this.#claimer = new Claimer(ctx);
    this.#acks = new Acks(ctx, locator);
    this.#admin = new Admin(ctx, locator);
    this.#reader = new Reader(ctx, locator);
    this.#registry = new Registry(ctx);
    this.#ping = db.prepare('SELECT 1');
  }

  migrate(): void {
    this.#runner.assertOpen();
    migrate(this.#db, this.#options.busyTimeoutMs);
  }

  // ------------------------------------------------------------------ producers

  enqueueMany(params: EnqueueParams): readonly EnqueueResult[] | Promise<readonly EnqueueResult[]> {
    if (params.jobs.length === 0) {
      this.#runner.assertOpen();
      return [];
    }
    // Even a lone add is two statements (the job and its `added` event), so one transaction.
    return this.#runner.write('enqueueMany', () => this.#enqueuer.enqueue(params.jobs, params.now));
  }

  // -------------------------------------------------------------------- workers

  claim(params: ClaimParams): ClaimResult | Promise<ClaimResult> {
    // A lock-free read first: idle polls never take the write lock.
    const idle = this.#runner.read('claim', () => this.#claimer.nothingToClaim(params));
    if (idle instanceof Promise) return idle.then((answer) => answer ?? this.#claimForReal(params));
    return idle ?? this.#claimForReal(params);
  }

  #claimForReal(params: ClaimParams): ClaimResult | Promise<ClaimResult> {
    return this.#runner.write('claim', () => this.#claimer.claim(params));
  }

  completeMany(params: CompleteParams): readonly LeaseOutcome[] | Promise<readonly LeaseOutcome[]> {
    if (params.items.length === 0) return this.#empty();
    return this.#runner.write('completeMany', () => this.#acks.complete(params));
  }

  failMany(params: FailParams): readonly FailOutcome[] | Promise<readonly FailOutcome[]> {
    if (params.items.length === 0) return this.#empty();
    return this.#runner.write('failMany', () => this.#acks.fail(params));
  }

  extendLeases(params: ExtendParams): readonly ExtendOutcome[] | Promise<readonly ExtendOutcome[]> {
    if (params.items.length === 0) return this.#empty();
    return this.#runner.write('extendLeases', () => this.#acks.extend(params));
  }

  releaseMany(params: {
    readonly items: readonly LeaseRef[];
    readonly now: number;
  }): readonly LeaseOutcome[] | Promise<readonly LeaseOutcome[]> {
    if (params.items.length === 0) return this.#empty();
    return this.#runner.write('releaseMany', () => this.#acks.release(params));
  }

  recoverStalled(params: RecoverParams): readonly RecoveredJob[] | Promise<readonly RecoveredJob[]> {
    // A lock-free probe first: the periodic check of an idle worker never takes the write lock.
    const nothing = this.#runner.read('recoverStalled', () => this.#acks.nothingToRecover(params));
    if (nothing instanceof Promise) return nothing.then((none) => (none ? [] : this.#recoverForReal(params)));
    return nothing ? [] : this.#recoverForReal(params);
  }

  #recoverForReal(params: RecoverParams): readonly RecoveredJob[] | Promise<readonly RecoveredJob[]> {
    return this.#runner.write('recoverStalled', () => this.#acks.recover(params));
  }

  updateProgress(params: ProgressParams): JobWriteOutcome | Promise<JobWriteOutcome> {
    return this.#runner.write('updateProgress', () => this.#acks.updateProgress(params));
  }

  addLogs(params: AddLogsParams): JobWriteOutcome | Promise<JobWriteOutcome> {
    return this.#runner.write('addLogs', () => this.#acks.addLogs(params));
  }

  subscribe(listener: (signal: StoreSignal) => void): () => void {
    this.#runner.assertOpen();
    return this.#signals.subscribe(listener);
  }

  // ---------------------------------------------------------------------- reads

  getJob(ref: JobRef): JobRecord | null | Promise<JobRecord | null> {
    return this.#runner.read('getJob', () => this.#reader.getJob(ref));
  }

  listJobs(params: ListJobsParams): JobPage | Promise<JobPage> {
    return this.#runner.read('listJobs', () => this.#reader.listJobs(params), true);
  }

  getLogs(params: JobRef & { readonly offset: number; readonly limit: number }): LogPage | Promise<LogPage> {
    return this.#runner.read('getLogs', () => this.#reader.getLogs(params), true);
  }

  countJobs(params: { readonly queue: string }): JobCounts | Promise<JobCounts> {
    return this.#runner.read('countJobs', () => this.#reader.countJobs(params.queue));
  }

  listQueues(): readonly QueueInfo[] | Promise<readonly QueueInfo[]> {
    return this.#runner.read('listQueues', () => this.#reader.listQueues(), true);
  }

  isPaused(params: { readonly queue: string }): boolean | Promise<boolean> {
    return this.#runner.read('isPaused', () => this.#reader.isPaused(params.queue));
  }

  // ---------------------------------------------------------------------- admin

  setPaused(params: { readonly queue: string; readonly paused: boolean }): void | Promise<void> {
    return this.#runner.write('setPaused', () => this.#admin.setPaused(params.queue, params.paused));
  }

  retryJob(params: RetryParams): AdminOutcome | Promise<AdminOutcome> {
    return this.#runner.write('retryJob', () => this.#admin.retryJob(params));
  }

  retryMany(params: BulkRetryParams): number | Promise<number> {
    return this.#runner.write('retryMany', () => this.#admin.retryMany(params));
  }

  cancelJob(params: RetryParams): AdminOutcome | Promise<AdminOutcome> {
    return this.#runner.write('cancelJob', () => this.#admin.cancelJob(params));
  }

  promoteJob(params: RetryParams): AdminOutcome | Promise<AdminOutcome> {
    return this.#runner.write('promoteJob', () => this.#admin.promoteJob(params));
  }

  removeJob(params: JobRef): AdminOutcome | Promise<AdminOutcome> {
    return this.#runner.write('removeJob', () => this.#admin.removeJob(params));
  }

  clean(params: CleanParams): number | Promise<number> {
    return this.#runner.write('clean', () => this.#admin.clean(params));
  }

  drain(params: DrainParams): number | Promise<number> {
    return this.#runner.write('drain', () => this.#admin.drain(params));
  }

  // ------------------------------------------------------------------ event log

  readEvents(params: ReadEventsParams): readonly StoredEvent[] | Promise<readonly StoredEvent[]> {
    return this.#runner.read('readEvents', () => this.#events.read(params));
  }

  lastEventSeq(): number | Promise<number> {
    return this.#runner.read('lastEventSeq', () => this.#events.lastSeq());
  }

  pruneEvents(params: { readonly before: number; readonly limit: number }): number | Promise<number> {
    return this.#runner.write('pruneEvents', () => this.#events.prune(params.before, params.limit));
  }

  // ------------------------------------------------- API keys and worker registry

  createApiKey(record: ApiKeyRecord): void | Promise<void> {
    return this.#runner.writeOneStatement('createApiKey', () => this.#registry.createApiKey(record));
  }

  getApiKey(params: { readonly id: string }): ApiKeyRecord | null | Promise<ApiKeyRecord | null> {
    return this.#runner.read('getApiKey', () => this.#registry.getApiKey(params.id));
  }

  listApiKeys(): readonly ApiKeyRecord[] | Promise<readonly ApiKeyRecord[]> {
    return this.#runner.read('listApiKeys', () => this.#registry.listApiKeys());
  }

  revokeApiKey(params: { readonly id: string; readonly now: number }): boolean | Promise<boolean> {
    return this.#runner.writeOneStatement('revokeApiKey', () => this.#registry.revokeApiKey(params.id, params.now));
  }

  reportWorker(info: WorkerInfo): void | Promise<void> {
    return this.#runner.writeOneStatement('reportWorker', () => this.#registry.reportWorker(info));
  }

  listWorkers(params: { readonly since: number }): readonly WorkerInfo[] | Promise<readonly WorkerInfo[]> {
    return this.#runner.read('listWorkers', () => this.#registry.listWorkers(params.since));
  }

  removeWorker(params: { readonly id: string }): void | Promise<void> {
    return this.#runner.writeOneStatement('removeWorker', () => this.#registry.removeWorker(params.id));
  }

  pruneWorkers(params: { readonly before: number }): number | Promise<number> {
    return this.#runner.writeOneStatement('pruneWorkers', () => this.#registry.pruneWorkers(params.before));
  }

  // ------------------------------------------------------------------ lifecycle

  ping(): void | Promise<void> {
    return this.#runner.read('ping', () => {
      this.#ping.get();
    });
  }

  /** Idempotent. Afterwards every method throws ConveyorError('CLOSED'). */
  close(): void {
    if (this.#runner.closed) return;
    this.#runner.markClosed();
    this.#signals.close();
    // The thread first, so that this connection is the last one and its close checkpoints.
    this.#checkpointer?.close();
    try {
      this.#db.close();
    } catch {
      // Closing can only fail if the handle is already gone; closed is closed.
    }
  }

  /** Internal, for tests and benchmarks: what the background checkpointer did (null: none). */
  checkpointStats(): CheckpointStats | null {
    return this.#checkpointer?.stats() ?? null;
  }

  #empty<T>(): T[] {
    if (this.#runner.closed) throw closedError();
    return [];
  }
}

/** Opens (creating if needed) a SQLite store at `path` (a file, or ':memory:'), ready to use. */
export function openSqliteStore(options: SqliteStoreOptions): SqliteStore {
  return new SqliteStore(options);
}
