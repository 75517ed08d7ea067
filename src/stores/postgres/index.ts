/**
 * The PostgreSQL store: many processes on many machines share one queue.
 *
 * This class only wires things together: every method runs one operation module's
 * statement through `Database.run`, which supplies the closed check, retries of
 * serialization failures and deadlocks, and error translation; writes then emit their
 * signals (after commit: each write is one autocommit statement). The SQL lives in the
 * modules next to this file.
 */
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
  TransactionClient,
} from '../../store/contract.ts';
import type { ApiKeyRecord, WorkerInfo } from '../../store/contract.ts';
import type { ReadEventsParams, StoredEvent } from '../../store/contract.ts';
import { Acks } from './acks.ts';
import { Admin } from './admin.ts';
import { Claimer } from './claim.ts';
import {
  checkSchemaName,
  createPool,
  Database,
  DEFAULT_CONNECT_TIMEOUT_MS,
  DEFAULT_POOL_SIZE,
  DEFAULT_SCHEMA,
  DEFAULT_SIGNAL_POLL_MS,
  checkPostgresUrl,
  parsePostgresUrl,
  type ConnectionOptions,
} from './connection.ts';
import { Tables, type StoreContext } from './context.ts';
import { Enqueuer } from './enqueue.ts';
import { checkVersion, migrate } from './migrations.ts';
import { QueueRegistry } from './queues.ts';
import { EventLog } from './events.ts';
import { Reader } from './read.ts';
import { Registry } from './registry.ts';
import { Signals, type SignalMode } from './signals.ts';
import { ValidationError } from '../../errors.ts';

export interface PostgresStoreOptions {
  /**
   * `postgres://user:password@host:port/database`, optionally with `?schema=`, `?poolSize=`,
   * `?statementTimeoutMs=`, `?connectTimeoutMs=`, `?listen=`, `?listenUrl=`,
   * `?preparedStatements=`, `?signalPollMs=` (and any parameter `pg` understands, such as `sslmode`).
   */
  readonly url: string;
  /** The schema that holds conveyor's tables (created if missing). Default `conveyor`, or the URL's `?schema=`. */
  readonly schema?: string;
  /** Connections in the pool. Default 10, or the URL's `?poolSize=`. */
  readonly poolSize?: number;
  /** Create or upgrade the schema on open. Default true; with false, an outdated schema is refused with STORE_SCHEMA. */
  readonly migrate?: boolean;
  /**
   * A direct connection (not through a transaction-pooling PgBouncer) used only for LISTEN.
   * Default: the URL's `?listenUrl=`, else `url` itself.
   */
  readonly listenUrl?: string;
  /**
   * False: never LISTEN; subscribers are woken by polling every `signalPollMs` instead.
   * Default true, or the URL's `?listen=`. When LISTEN is found not to work (its probe
   * notification never arrives), the store falls back to polling by itself, with one
   * `CONVEYOR_NO_LISTEN` process warning.
   */
  readonly listen?: boolean;
  /**
   * False: never use named prepared statements. Default true, or the URL's
   * `?preparedStatements=`; the store also turns them off by itself when a
   * transaction-pooling PgBouncer mixes them up.
   */
  readonly preparedStatements?: boolean;
  /** Without LISTEN, how often subscribers are woken (ms). Default 1000, or the URL's `?signalPollMs=`. */
  readonly signalPollMs?: number;
}

const CAPABILITIES: ReadonlySet<StoreCapability> = new Set<StoreCapability>(['multiProcess', 'crossProcessSignals', 'transactionalEnqueue']);

/** Sends the NOTIFY payloads of a transactional enqueue inside the caller's transaction. */
const NOTIFY_IN_TRANSACTION = 'SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p';

export class PostgresStore implements Store {
  readonly kind = 'postgres';
  readonly capabilities: ReadonlySet<StoreCapability> = CAPABILITIES;
  /** The schema holding this store's tables. */
  readonly schema: string;

  readonly #db: Database;
  readonly #t: Tables;
  readonly #signals: Signals;
  readonly #enqueuer: Enqueuer;
  readonly #claimer: Claimer;
  readonly #acks: Acks;
  readonly #admin: Admin;
  readonly #reader: Reader;
  readonly #events: EventLog;
  readonly #registry: Registry;
  #closing: Promise<void> | undefined;

  /** Creates the pool; no connection is made until the first call. Prefer `openPostgresStore`. */
  constructor(options: PostgresStoreOptions) {
    const parsed = parsePostgresUrl(options.url);
    const schema = checkSchemaName(options.schema ?? parsed.schema ?? DEFAULT_SCHEMA);
    const poolSize = options.poolSize ?? parsed.poolSize ?? DEFAULT_POOL_SIZE;
    if (!Number.isSafeInteger(poolSize) || poolSize < 1) {
      throw new ValidationError('INVALID_ARGUMENT', `poolSize must be an integer >= 1, got ${String(poolSize)}`);
    }
    const signalPollMs = options.signalPollMs ?? parsed.signalPollMs ?? DEFAULT_SIGNAL_POLL_MS;
    if (!Number.isSafeInteger(signalPollMs) || signalPollMs < 10) {
      throw new ValidationError('INVALID_ARGUMENT', `signalPollMs must be an integer >= 10, got ${String(signalPollMs)}`);
    }
    const listenUrl = options.listenUrl === undefined ? parsed.listenUrl : checkPostgresUrl(options.listenUrl, 'listenUrl must be a postgres:// url, got');
    const connection: ConnectionOptions = {
      url: parsed.connectionString,
      schema,
      poolSize,
      statementTimeoutMs: parsed.statementTimeoutMs,
      connectTimeoutMs: parsed.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    };
    // The LISTEN connection: the direct listenUrl if given (its own conveyor parameters, if
    // any, are ignored), else the pool's url. It runs no statements that could time out.
    const listenConnection: ConnectionOptions = {
      ...connection,
      url: listenUrl === undefined ? connection.url : parsePostgresUrl(listenUrl).connectionString,
      statementTimeoutMs: undefined,
    };
    this.schema = schema;
    this.#t = new Tables(schema);
    // Idle-connection errors: the pool replaces the connection; the next call that fails reports it.
    this.#db = new Database(createPool(connection, () => undefined), connection.url, {
      preparedStatements: options.preparedStatements ?? parsed.preparedStatements ?? true,
      otherUrls: [listenConnection.url],
    });
    this.#signals = new Signals(this.#db, schema, {
      listenConnection,
      listen: options.listen ?? parsed.listen ?? true,
      pollMs: signalPollMs,
    });
    const ctx: StoreContext = { db: this.#db, t: this.#t, queues: new QueueRegistry(this.#db, this.#t), signals: this.#signals };
    this.#enqueuer = new Enqueuer(ctx);
    this.#claimer = new Claimer(ctx);
    this.#acks = new Acks(ctx);
    this.#admin = new Admin(ctx);
    this.#reader = new Reader(ctx);
    this.#events = new EventLog(ctx);
    this.#registry = new Registry(ctx);
  }

  migrate(): Promise<void> {
    return this.#db.run('migrate', () => migrate(this.#db, this.#t));
  }

  /** Refuses a schema that is not at this code's version (for `migrate: false`). */
  checkSchema(): Promise<void> {
    return this.#db.run('open', () => checkVersion(this.#db, this.#t));
  }

  /** Runs a write and emits its signals once it has committed. */
  async #write<T>(operation: string, fn: () => Promise<{ value: T; signals: readonly StoreSignal[] }>): Promise<T> {
    const { value, signals } = await this.#db.run(operation, fn);
    this.#signals.emit(signals);
    return value;
  }

  // ------------------------------------------------------------------ producers

  async enqueueMany(params: EnqueueParams): Promise<readonly EnqueueResult[]> {
    this.#db.assertOpen();
    if (params.jobs.length === 0) return [];
    return this.#write('enqueueMany', async () => {
      const { results, signals } = await this.#enqueuer.enqueue(params.jobs, params.now);
      return { value: results, signals };
    });
  }

  /**
   * The outbox pattern: writes the jobs through the caller's `client`, inside the caller's
   * open transaction, with unnamed statements only (nothing is left in the caller's
   * session). The jobs exist if and only if that transaction commits. The NOTIFY for other
   * processes (and this one's LISTEN connection) is sent in the same transaction, so it is
   * delivered on commit only; nothing is delivered locally before. Queue rows for queues
   * this store has not seen yet are created first, by the pool in their own short
   * transaction (metadata: harmless if the caller rolls back, and never deleted). Errors
   * are translated but not retried: one from a statement in the caller's transaction has
   * aborted it, and the caller must roll it back.
   */
  async enqueueInTransaction(client: TransactionClient, params: EnqueueParams): Promise<readonly EnqueueResult[]> {
    this.#db.assertOpen();
    if (params.jobs.length === 0) return [];
    try {
      const { results, signals } = await this.#enqueuer.enqueue(params.jobs, params.now, async (text, values) => {
        const result = await client.query(text, values as unknown[]);
        return result.rows as Array<Record<string, unknown>>;
      });
      const payloads = this.#signals.transactionPayloads(signals);
      if (payloads.length > 0) await client.query(NOTIFY_IN_TRANSACTION, [this.#signals.channel, payloads]);
      return results;
    } catch (err) {
      throw this.#db.translate('enqueueInTransaction', err);
    }
  }

  // -------------------------------------------------------------------- workers

  claim(params: ClaimParams): Promise<ClaimResult> {
    return this.#db.run('claim', () => this.#claimer.claim(params));
  }

  async completeMany(params: CompleteParams): Promise<readonly LeaseOutcome[]> {
    this.#db.assertOpen();
    if (params.items.length === 0) return [];
    return this.#write('completeMany', async () => {
      const { outcomes, signals } = await this.#acks.complete(params);
      return { value: outcomes, signals };
    });
  }

  async failMany(params: FailParams): Promise<readonly FailOutcome[]> {
    this.#db.assertOpen();
    if (params.items.length === 0) return [];
    return this.#write('failMany', async () => {
      const { outcomes, signals } = await this.#acks.fail(params);
      return { value: outcomes, signals };
    });
  }

  async extendLeases(params: ExtendParams): Promise<readonly ExtendOutcome[]> {
    this.#db.assertOpen();
    if (params.items.length === 0) return [];
    return this.#db.run('extendLeases', () => this.#acks.extend(params));
  }

  async releaseMany(params: { readonly items: readonly LeaseRef[]; readonly now: number }): Promise<readonly LeaseOutcome[]> {
    this.#db.assertOpen();
    if (params.items.length === 0) return [];
    return this.#write('releaseMany', async () => {
      const { outcomes, signals } = await this.#acks.release(params);
      return { value: outcomes, signals };
    });
  }

  recoverStalled(params: RecoverParams): Promise<readonly RecoveredJob[]> {
    return this.#write('recoverStalled', async () => {
      const { recovered, signals } = await this.#acks.recover(params);
      return { value: recovered, signals };
    });
  }

  updateProgress(params: ProgressParams): Promise<JobWriteOutcome> {
    return this.#db.run('updateProgress', () => this.#acks.updateProgress(params));
  }

  addLogs(params: AddLogsParams): Promise<JobWriteOutcome> {
    return this.#db.run('addLogs', () => this.#acks.addLogs(params));
  }

  subscribe(listener: (signal: StoreSignal) => void): () => void {
    this.#db.assertOpen();
    return this.#signals.subscribe(listener);
  }

  /** Whether the LISTEN connection is up (health checks, tests). */
  get listening(): boolean {
    return this.#signals.listening;
  }

  /** The server process id of the LISTEN connection, or null (tests). */
  get listenPid(): number | null {
    return this.#signals.listenPid;
  }

  /**
   * How other processes' writes reach subscribers: `listen` (LISTEN/NOTIFY), or `poll`
   * (`listen: false`, or LISTEN was found not to work, e.g. through PgBouncer without `listenUrl`).
   */
  get signalMode(): SignalMode {
    return this.#signals.mode;
  }

  /** Contract: true while LISTEN is up and verified, so workers can keep a long safety-net poll. */
  signalsReliable(): boolean {
    return this.#signals.reliable;
  }

  /** Whether statements are prepared under names (false with `preparedStatements: false`, or after PgBouncer mixed them up). */
  get preparedStatements(): boolean {
    return this.#db.preparedStatements;
  }

  // ---------------------------------------------------------------------- reads

  getJob(ref: JobRef): Promise<JobRecord | null> {
    return this.#db.run('getJob', () => this.#reader.getJob(ref));
  }

  listJobs(params: ListJobsParams): Promise<JobPage> {
    return this.#db.run('listJobs', () => this.#reader.listJobs(params));
  }

  getLogs(params: JobRef & { readonly offset: number; readonly limit: number }): Promise<LogPage> {
    return this.#db.run('getLogs', () => this.#reader.getLogs(params));
  }

  countJobs(params: { readonly queue: string }): Promise<JobCounts> {
    return this.#db.run('countJobs', () => this.#reader.countJobs(params.queue));
  }

  listQueues(): Promise<readonly QueueInfo[]> {
    return this.#db.run('listQueues', () => this.#reader.listQueues());
  }

  isPaused(params: { readonly queue: string }): Promise<boolean> {
    return this.#db.run('isPaused', () => this.#reader.isPaused(params.queue));
  }

  // ---------------------------------------------------------------------- admin

  setPaused(params: { readonly queue: string; readonly paused: boolean }): Promise<void> {
    // The params carry no `now`: the event is stamped with this process's clock.
    const at = Date.now();
    return this.#write('setPaused', async () => ({ value: undefined, signals: await this.#admin.setPaused(params.queue, params.paused, at) }));
  }

  retryJob(params: RetryParams): Promise<AdminOutcome> {
    return this.#write('retryJob', async () => {
      const { outcome, signals } = await this.#admin.retryJob(params);
      return { value: outcome, signals };
    });
  }

  retryMany(params: BulkRetryParams): Promise<number> {
    return this.#write('retryMany', async () => {
      const { count, signals } = await this.#admin.retryMany(params);
      return { value: count, signals };
    });
  }

  cancelJob(params: RetryParams): Promise<AdminOutcome> {
    return this.#write('cancelJob', async () => {
      const { outcome, signals } = await this.#admin.cancelJob(params);
      return { value: outcome, signals };
    });
  }

  promoteJob(params: RetryParams): Promise<AdminOutcome> {
    return this.#write('promoteJob', async () => {
      const { outcome, signals } = await this.#admin.promoteJob(params);
      return { value: outcome, signals };
    });
  }

  removeJob(params: JobRef): Promise<AdminOutcome> {
    const at = Date.now(); // the event's time: JobRef carries no `now`
    return this.#db.run('removeJob', () => this.#admin.removeJob(params, at));
  }

  clean(params: CleanParams): Promise<number> {
    const at = Date.now(); // the event's time: CleanParams carry no `now`
    return this.#db.run('clean', () => this.#admin.clean(params, at));
  }

  drain(params: DrainParams): Promise<number> {
    const at = Date.now(); // the event's time: DrainParams carry no `now`
    return this.#db.run('drain', () => this.#admin.drain(params, at));
  }

  // ------------------------------------------------------------------ event log

  readEvents(params: ReadEventsParams): Promise<readonly StoredEvent[]> {
    return this.#db.run('readEvents', () => this.#events.read(params));
  }

  lastEventSeq(): Promise<number> {
    return this.#db.run('lastEventSeq', () => this.#events.lastSeq());
  }

  pruneEvents(params: { readonly before: number; readonly limit: number }): Promise<number> {
    return this.#db.run('pruneEvents', () => this.#events.prune(params));
  }

  // ------------------------------------------------- API keys and worker registry

  createApiKey(record: ApiKeyRecord): Promise<void> {
    return this.#db.run('createApiKey', () => this.#registry.createApiKey(record));
  }

  getApiKey(params: { readonly id: string }): Promise<ApiKeyRecord | null> {
    return this.#db.run('getApiKey', () => this.#registry.getApiKey(params.id));
  }

  listApiKeys(): Promise<readonly ApiKeyRecord[]> {
    return this.#db.run('listApiKeys', () => this.#registry.listApiKeys());
  }

  revokeApiKey(params: { readonly id: string; readonly now: number }): Promise<boolean> {
    return this.#db.run('revokeApiKey', () => this.#registry.revokeApiKey(params.id, params.now));
  }

  reportWorker(info: WorkerInfo): Promise<void> {
    return this.#db.run('reportWorker', () => this.#registry.reportWorker(info));
  }

  listWorkers(params: { readonly since: number }): Promise<readonly WorkerInfo[]> {
    return this.#db.run('listWorkers', () => this.#registry.listWorkers(params.since));
  }

  removeWorker(params: { readonly id: string }): Promise<void> {
    return this.#db.run('removeWorker', () => this.#registry.removeWorker(params.id));
  }

  pruneWorkers(params: { readonly before: number }): Promise<number> {
    return this.#db.run('pruneWorkers', () => this.#registry.pruneWorkers(params.before));
  }

  // ------------------------------------------------------------------ lifecycle

  ping(): Promise<void> {
    return this.#db.run('ping', async () => {
      await this.#db.rows('SELECT 1');
    });
  }

  /** Idempotent. Afterwards every method rejects with ConveyorError('CLOSED'). */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#db.markClosed();
      // The LISTEN socket and idle pool sockets are unref'd (they never keep a process alive
      // by themselves), so without this the event loop could run dry while we wait for them
      // to end, and a script's `await store.close()` would never return.
      const keepAlive = setInterval(() => undefined, 1000);
      try {
        // Stop listening and send pending notifications before the pool goes away.
        await this.#signals.close();
        await this.#db.pool.end().catch(() => undefined);
      } finally {
        clearInterval(keepAlive);
      }
    })();
    return this.#closing;
  }
}

/**
 * Opens a PostgreSQL store: creates the pool, then migrates the schema (or, with
 * `migrate: false`, checks that it is current). Connection problems reject with
 * STORE_UNAVAILABLE, schema problems with STORE_SCHEMA.
 */
export async function openPostgresStore(options: PostgresStoreOptions): Promise<PostgresStore> {
  const store = new PostgresStore(options);
  try {
    if (options.migrate === false) await store.checkSchema();
    else await store.migrate();
  } catch (err) {
    await store.close();
    throw err;
  }
  return store;
}
