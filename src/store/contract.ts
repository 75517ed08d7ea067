/**
 * The Store contract: the one seam between conveyor's engine and its storage.
 *
 * Everything above this file (queues, workers, retry and backoff decisions, validation,
 * the server, the CLI) is storage-agnostic. Everything below it (one folder per store
 * under src/stores/) owns its SQL, Lua or wire protocol and nothing else. No signature
 * here names a driver type or a query language.
 *
 * Rules every store follows (the conformance suite in test/conformance checks them):
 * - Each method is atomic: it fully applies or changes nothing.
 * - Batch-first: methods take lists, and answer per item in the same order.
 * - Outcomes that are states come back as discriminated unions, never as thrown errors:
 *   a stale lease is `{ status: 'stale' }`, an unknown job is `{ status: 'not_found' }`.
 *   Thrown errors are reserved for failures of the store itself (`StoreError`).
 * - Time comes in as `now` (epoch ms) from the caller, so tests can drive the clock and
 *   every process agrees on one source of time per operation.
 * - Ordering for claims: higher `priority` first, then earlier `runAt`, then insertion order.
 * - Results may be returned synchronously (embedded drivers) or as promises.
 */
import type { AttemptError, JobLogEntry, JobRecord, JobState, StoredJobOptions } from '../job.ts';

/** Synchronous stores (SQLite) answer directly; networked ones return promises. */
export type Awaitable<T> = T | PromiseLike<T>;

/** Optional abilities a store declares by name, so callers and tests branch on capabilities, never on store type. */
export type StoreCapability =
  /** Other processes can share the store (all but in-memory stores). */
  | 'multiProcess'
  /** `subscribe` delivers signals for writes made by other processes too, not only this one. */
  | 'crossProcessSignals'
  /** Jobs can be added inside a caller-owned database transaction (`enqueueInTransaction`). */
  | 'transactionalEnqueue';

// ---------------------------------------------------------------------------- writes

/**
 * The caller's own database connection, inside a transaction the caller opened and will
 * commit or roll back (capability `transactionalEnqueue`). A minimal structural type, so no
 * driver type appears in the contract: a `pg` `Client` or `PoolClient` fits as is, and
 * other drivers fit with a one-line adapter. It must accept `$1, $2, …` placeholders, take
 * JavaScript arrays as array parameters and return rows as objects keyed by column name,
 * as `pg` does.
 */
export interface TransactionClient {
  query(text: string, values?: unknown[]): PromiseLike<{ readonly rows: readonly unknown[] }>;
}

export interface NewJob {
  /** A caller-chosen id (the dedup key). Omitted: the store assigns a numeric id. */
  readonly id?: string;
  readonly queue: string;
  readonly name: string;
  /** JSON text, already validated and size-checked by the engine. */
  readonly data: string;
  readonly opts: StoredJobOptions;
  readonly priority: number;
  /** Epoch ms. A job whose `runAt` is after the call's `now` is stored `delayed`, else `waiting`. */
  readonly runAt: number;
}

export interface EnqueueParams {
  readonly jobs: readonly NewJob[];
  readonly now: number;
}

/**
 * `created`: written. `duplicate`: a live job (waiting, delayed or active) already has
 * this id, nothing was written, and `id` names the existing job. A finished job with the
 * same id is replaced by the new one.
 */
export type EnqueueResult = { readonly status: 'created'; readonly id: string } | { readonly status: 'duplicate'; readonly id: string };

export interface ClaimParams {
  readonly queues: readonly string[];
  /** Unique per worker instance; recorded as the lease owner. */
  readonly workerId: string;
  readonly limit: number;
  /** Lease length unless the job's own `opts.leaseMs` says otherwise. */
  readonly leaseMs: number;
  readonly now: number;
}

export interface ClaimedJob extends JobRecord {
  readonly lease: NonNullable<JobRecord['lease']>;
}

export interface ClaimResult {
  /** Claimed jobs, now `active`, in claim order. Never more than `limit`. Jobs of paused queues are never claimed. */
  readonly jobs: readonly ClaimedJob[];
  /**
   * When fewer than `limit` jobs were claimed: the earliest `runAt` of a delayed job in
   * these (unpaused) queues, so the worker can sleep exactly until then; else null.
   */
  readonly nextRunAt: number | null;
}

/** Identifies one attempt: the job and the lease token it was claimed with. */
export interface LeaseRef {
  readonly id: string;
  readonly token: string;
}

export interface CompleteItem extends LeaseRef {
  /** JSON text of the handler's result, or null. */
  readonly result: string | null;
  /** Delete the job instead of keeping it `completed` (retention `removeOnComplete: true`). */
  readonly remove: boolean;
}

export interface FailItem extends LeaseRef {
  readonly error: AttemptError;
  /** The engine's retry decision: epoch ms of the next attempt, or null to move the job to `failed`. */
  readonly retryAt: number | null;
  /** With `retryAt: null`: delete the job instead of keeping it `failed` (`removeOnFail: true`). */
  readonly remove: boolean;
}

export type LeaseOutcome = { readonly status: 'applied' } | { readonly status: 'stale' };

export type FailOutcome =
  | { readonly status: 'applied'; readonly state: 'waiting' | 'delayed' | 'failed' }
  | { readonly status: 'stale' };

export type ExtendOutcome = { readonly status: 'applied'; readonly expiresAt: number } | { readonly status: 'stale' };

export interface CompleteParams {
  readonly items: readonly CompleteItem[];
  readonly now: number;
}
export interface FailParams {
  readonly items: readonly FailItem[];
  readonly now: number;
}
export interface ExtendParams {
  readonly items: readonly LeaseRef[];
  /** New lease length from `now`, unless the job's own `opts.leaseMs` says otherwise (as for claims). */
  readonly leaseMs: number;
  readonly now: number;
}

/** A lease has expired when `expiresAt < now`; at `expiresAt === now` it is still held. */
export interface RecoverParams {
  /** Limit recovery to these queues; omitted means all queues. */
  readonly queues?: readonly string[];
  /** A job that has stalled more than this many times goes to `failed` (reason `stalled`). */
  readonly maxStalls: number;
  readonly limit: number;
  readonly now: number;
}

export interface RecoveredJob {
  readonly id: string;
  readonly queue: string;
  readonly state: 'waiting' | 'failed';
}

export interface ProgressParams {
  readonly queue: string;
  readonly id: string;
  /** When given, the update applies only while this lease is current. */
  readonly token?: string;
  /** JSON text. */
  readonly progress: string;
}

export interface AddLogsParams {
  readonly queue: string;
  readonly id: string;
  readonly token?: string;
  readonly entries: readonly JobLogEntry[];
}

export type JobWriteOutcome = { readonly status: 'applied' } | { readonly status: 'stale' } | { readonly status: 'not_found' };

// ------------------------------------------------------------------- administration

export interface JobRef {
  readonly queue: string;
  readonly id: string;
}

export type AdminOutcome =
  | { readonly status: 'applied' }
  | { readonly status: 'not_found' }
  | { readonly status: 'invalid_state'; readonly state: JobState };

export interface ListJobsParams {
  readonly queue: string;
  readonly states: readonly JobState[];
  /** Opaque cursor from a previous page's `nextCursor`. */
  readonly cursor?: string;
  readonly limit: number;
  /** Newest first (default) or oldest first, by insertion order. */
  readonly order?: 'desc' | 'asc';
  /** Exact job name filter. */
  readonly name?: string;
}

export interface JobPage {
  readonly jobs: readonly JobRecord[];
  /** Pass back to get the next page; null when there is none. */
  readonly nextCursor: string | null;
}

export type JobCounts = Record<JobState, number>;

export interface QueueInfo {
  readonly name: string;
  readonly paused: boolean;
  readonly counts: JobCounts;
}

export interface RetryParams extends JobRef {
  readonly now: number;
}

export interface BulkRetryParams {
  readonly queue: string;
  /** Which finished state to retry; default `failed`. */
  readonly state?: 'failed' | 'completed' | 'cancelled';
  readonly limit: number;
  readonly now: number;
}

export interface CleanParams {
  readonly queue: string;
  readonly state: 'completed' | 'failed' | 'cancelled' | 'waiting' | 'delayed';
  /** Remove only jobs that finished (or, for waiting/delayed, were created) at or before this epoch ms. */
  readonly olderThan?: number;
  /** Keep the newest `keep` jobs in that state (newest by insertion order) regardless of age. */
  readonly keep?: number;
  /** Remove at most this many per call, so a large clean never holds a long lock. */
  readonly limit: number;
}

export interface DrainParams {
  readonly queue: string;
  /** Also remove delayed jobs. Active jobs are never removed. */
  readonly includeDelayed: boolean;
  readonly limit: number;
}

export interface LogPage {
  readonly entries: readonly JobLogEntry[];
  readonly total: number;
}

// ---------------------------------------------------------------------- event log

/**
 * What happened to jobs and queues, for live views (the server's event stream, metrics,
 * the dashboard, `waitForResult` over HTTP). Stores append events inside the same
 * transaction as the change they describe, so an event exists if and only if its change
 * committed. One stored event covers every job one operation moved in one queue (a
 * 100-job claim is one `active` event with 100 items), which keeps the log's cost to one
 * small row per batch.
 */
export type EventType =
  /** Jobs were written (waiting or delayed). Items carry `name` and `state`. */
  | 'added'
  /** Jobs were claimed. Items carry `attempt` (1-based) and `waitMs` (start minus due time). */
  | 'active'
  /** One job reported progress. The item carries `progress` (JSON text). */
  | 'progress'
  /** Jobs completed. Items carry `attempt` and `durationMs` (finish minus start). */
  | 'completed'
  /** Attempts failed. Items carry `attempt`, `durationMs`, `error` (message) and `state`: `waiting`/`delayed` (will retry) or `failed`. */
  | 'failed'
  /** Expired leases were recovered. Items carry `state`: `waiting` or `failed`. */
  | 'stalled'
  /** Jobs were handed back unstarted by a closing worker (`releaseMany`). */
  | 'released'
  /** Admin moves, one per operation: a job retried, cancelled, promoted or removed; `clean` and `drain` also emit `removed` with up to the first 1,000 ids and `count`. */
  | 'retried'
  | 'cancelled'
  | 'promoted'
  | 'removed'
  /** Queue events; `jobs` is empty. */
  | 'paused'
  | 'resumed';

export interface EventItem {
  readonly id: string;
  readonly name?: string;
  readonly state?: JobState;
  readonly attempt?: number;
  readonly waitMs?: number;
  readonly durationMs?: number;
  readonly error?: string;
  readonly progress?: string;
}

export interface StoredEvent {
  /**
   * Increases with every appended event, per store (not per queue). Consecutive in
   * SQLite; in stores with concurrent writers an event may commit after one with a higher
   * seq (and rolled-back transactions leave gaps), so readers of the feed wait briefly for
   * gaps to fill (see src/engine/event-feed.ts).
   */
  readonly seq: number;
  readonly at: number;
  readonly queue: string;
  readonly type: EventType;
  readonly jobs: readonly EventItem[];
  /** For `removed` by `clean`/`drain`: how many jobs went (items list at most 1,000). */
  readonly count?: number;
}

export interface ReadEventsParams {
  /** Return events with `seq > after`, oldest first. */
  readonly after: number;
  readonly limit: number;
}

// ------------------------------------------------------------- keys and workers

/** What an API key may do on the server. `admin` implies all others. */
export type ApiScope = 'admin' | 'produce' | 'consume' | 'read';
export const API_SCOPES: readonly ApiScope[] = ['admin', 'produce', 'consume', 'read'];

/** An API key as stored: never the secret itself, only its SHA-256 hash (hex). */
export interface ApiKeyRecord {
  /** Public part of the key, shown in listings and used to look the key up. */
  readonly id: string;
  readonly name: string;
  readonly scopes: readonly ApiScope[];
  readonly hash: string;
  readonly createdAt: number;
  /** Epoch ms after which the key no longer authenticates; null: never expires. */
  readonly expiresAt: number | null;
  readonly revokedAt: number | null;
}

/** A live worker, direct (on the store) or remote (over HTTP), as last reported. */
export interface WorkerInfo {
  readonly id: string;
  readonly kind: 'direct' | 'remote';
  readonly host: string;
  readonly pid: number;
  readonly queues: readonly string[];
  readonly concurrency: number;
  /** Jobs being processed at the last report. */
  readonly active: number;
  readonly startedAt: number;
  /** Epoch ms of the last report (the worker's heartbeat). */
  readonly lastSeenAt: number;
  /** Epoch ms of the last claim that returned jobs; null: none yet. */
  readonly lastClaimAt: number | null;
  /** Free-form labels (library version, API key id of a remote worker). */
  readonly meta?: Readonly<Record<string, string>>;
}

// ------------------------------------------------------------------------- signals

/**
 * Hints that something changed, so idle workers and waiters wake without polling.
 * Signals are hints, never the source of truth: receivers re-read the store.
 * `changed` means "another process wrote; details unknown".
 */
export type StoreSignal =
  | { readonly type: 'enqueued'; readonly queue: string; readonly runAt: number }
  | { readonly type: 'finished'; readonly queue: string; readonly id: string; readonly state: JobState }
  | { readonly type: 'paused' | 'resumed'; readonly queue: string }
  | { readonly type: 'changed' };

// -------------------------------------------------------------------------- seams

/**
 * What a worker needs and nothing more: claim, acknowledge, renew, recover.
 * The HTTP worker client implements this too, so a worker runs unchanged against a
 * database or a conveyor server.
 */
export interface WorkerBackend {
  claim(params: ClaimParams): Awaitable<ClaimResult>;
  completeMany(params: CompleteParams): Awaitable<readonly LeaseOutcome[]>;
  failMany(params: FailParams): Awaitable<readonly FailOutcome[]>;
  extendLeases(params: ExtendParams): Awaitable<readonly ExtendOutcome[]>;
  /**
   * Give back jobs this worker claimed but never started (graceful shutdown): each goes back
   * to `waiting` at once, with attempts and stalls unchanged. Stale refs are ignored ('stale').
   */
  releaseMany(params: { readonly items: readonly LeaseRef[]; readonly now: number }): Awaitable<readonly LeaseOutcome[]>;
  /** Return expired leases to `waiting`, or `failed` after `maxStalls`. */
  recoverStalled(params: RecoverParams): Awaitable<readonly RecoveredJob[]>;
  updateProgress(params: ProgressParams): Awaitable<JobWriteOutcome>;
  addLogs(params: AddLogsParams): Awaitable<JobWriteOutcome>;
  /** Register for change signals; returns the unsubscribe function. */
  subscribe(listener: (signal: StoreSignal) => void): () => void;
  /**
   * Optional: whether `subscribe` delivers, right now, a signal for every write any process
   * commits (PostgreSQL: its LISTEN connection is up and verified). While true, a worker's
   * safety-net poll only covers a signal lost in transit, so it can be long; while false
   * (connecting, reconnecting, polling instead of LISTEN) workers poll more often. A store
   * that implements it emits `changed` whenever the answer changes, so idle subscribers
   * re-check at once. Stores without it: the capability `crossProcessSignals` decides.
   */
  signalsReliable?(): boolean;
}

/** The whole contract: the worker seam plus producers' and administrators' operations. */
export interface Store extends WorkerBackend {
  /** Short name for logs and errors, e.g. `sqlite`. */
  readonly kind: string;
  readonly capabilities: ReadonlySet<StoreCapability>;

  /** Create or upgrade the schema. Safe to call from several processes at once; idempotent. */
  migrate(): Awaitable<void>;
  /**
   * Verify, without changing anything, that the schema is at this code's version
   * (`STORE_SCHEMA` otherwise). Used when auto-migration is off. Stores that always
   * migrate on open (the embedded SQLite store) may omit it.
   */
  checkSchema?(): Awaitable<void>;

  enqueueMany(params: EnqueueParams): Awaitable<readonly EnqueueResult[]>;
  /**
   * Capability `transactionalEnqueue` (the outbox pattern): writes the jobs through the
   * caller's `client`, inside the caller's open transaction, and neither commits nor rolls
   * back. The jobs exist if and only if that transaction commits. Same answers and dedup
   * rules as `enqueueMany` (a live `jobId`, also one added earlier in the same transaction,
   * is a `duplicate`). Signals to other processes are sent inside that transaction too, so
   * they are delivered only on commit; nothing is delivered to this store's local
   * subscribers before the commit. A failure leaves the caller's transaction to the caller
   * (in PostgreSQL it is then aborted and must be rolled back); it is not retried.
   */
  enqueueInTransaction?(client: TransactionClient, params: EnqueueParams): Promise<readonly EnqueueResult[]>;

  getJob(ref: JobRef): Awaitable<JobRecord | null>;
  listJobs(params: ListJobsParams): Awaitable<JobPage>;
  getLogs(params: JobRef & { readonly offset: number; readonly limit: number }): Awaitable<LogPage>;
  countJobs(params: { readonly queue: string }): Awaitable<JobCounts>;
  /** Every queue that has jobs or a stored pause flag. */
  listQueues(): Awaitable<readonly QueueInfo[]>;

  setPaused(params: { readonly queue: string; readonly paused: boolean }): Awaitable<void>;
  isPaused(params: { readonly queue: string }): Awaitable<boolean>;

  /** A finished job (completed, failed, cancelled) goes back to `waiting` with its attempts reset. */
  retryJob(params: RetryParams): Awaitable<AdminOutcome>;
  /** Retry up to `limit` finished jobs of one state; returns how many moved. */
  retryMany(params: BulkRetryParams): Awaitable<number>;
  /** Waiting, delayed or active job → `cancelled`. An active job's lease is revoked, so its worker's ack is stale. */
  cancelJob(params: RetryParams): Awaitable<AdminOutcome>;
  /** A delayed job becomes due now. */
  promoteJob(params: RetryParams): Awaitable<AdminOutcome>;
  /** Delete a job that is not active (active jobs must be cancelled first). */
  removeJob(params: JobRef): Awaitable<AdminOutcome>;
  /** Delete up to `limit` jobs of one state by age and keep-count; returns how many went. */
  clean(params: CleanParams): Awaitable<number>;
  /** Delete up to `limit` waiting (and optionally delayed) jobs; returns how many went. */
  drain(params: DrainParams): Awaitable<number>;

  // Event log: see StoredEvent. Appended by the operations above, read by live views.
  readEvents(params: ReadEventsParams): Awaitable<readonly StoredEvent[]>;
  /** The highest seq appended so far (0 when none): where a new live reader starts. */
  lastEventSeq(): Awaitable<number>;
  /** Delete up to `limit` events appended before `before` (epoch ms); returns how many went. */
  pruneEvents(params: { readonly before: number; readonly limit: number }): Awaitable<number>;

  // API keys for the server. Ids are unique; creating an existing id throws `StoreError` (`CONFLICT`).
  createApiKey(record: ApiKeyRecord): Awaitable<void>;
  getApiKey(params: { readonly id: string }): Awaitable<ApiKeyRecord | null>;
  /** All keys, revoked ones included, oldest first. */
  listApiKeys(): Awaitable<readonly ApiKeyRecord[]>;
  /** Marks the key revoked at `now`; false when there is no such key or it was already revoked. */
  revokeApiKey(params: { readonly id: string; readonly now: number }): Awaitable<boolean>;

  // Worker registry: workers report themselves every few seconds; listings show the live ones.
  /** Insert or replace the worker's row by id. */
  reportWorker(info: WorkerInfo): Awaitable<void>;
  /** Workers whose `lastSeenAt >= since`, by id. */
  listWorkers(params: { readonly since: number }): Awaitable<readonly WorkerInfo[]>;
  /** A closing worker removes itself; `pruneWorkers` removes the ones that vanished without it. */
  removeWorker(params: { readonly id: string }): Awaitable<void>;
  pruneWorkers(params: { readonly before: number }): Awaitable<number>;

  /** Cheap round trip, for health checks. */
  ping(): Awaitable<void>;
  close(): Awaitable<void>;
}

/** What `Conveyor.open` needs to build a store. */
export interface StoreOpenOptions {
  /** `sqlite:///abs/path.db`, `sqlite://relative.db`, `sqlite::memory:`, later `postgres://…`. */
  readonly url: string;
  /** `normal` (default): survives any process crash. `full`: fsync on every commit, survives power loss too. */
  readonly durability: 'normal' | 'full';
  /** How long a store may wait on locks held by other processes before failing with `STORE_BUSY`. */
  readonly busyTimeoutMs: number;
}

/** Thrown by nothing; used by stores to assert exhaustiveness at compile time. */
export function assertNever(value: never): never {
  throw new Error(`unexpected value: ${String(value)}`);
}
