/**
 * The worker: claims jobs in batches into a small local buffer, runs up to `concurrency`
 * handlers, renews their leases, acknowledges in batches and recovers stalled jobs.
 *
 * It talks to storage only through `WorkerBackend` (claim / ack / heartbeat / recover),
 * which a database store and the HTTP client both implement.
 *
 * Life of a job inside a worker:
 *   claimed ──▶ buffer ──▶ running ──▶ ack queued ──▶ written (completeMany / failMany)
 * Every job held (buffered or running) has its lease renewed every `leaseMs / 3`. A lease
 * the store reports as lost aborts the handler's signal; whatever the handler returns
 * afterwards is discarded, because the store would reject it anyway (fencing).
 */
import { EventEmitter } from 'node:events';
import { hostname } from 'node:os';
import { randomUUID } from 'node:crypto';
import { ConveyorError, JobTimeoutError, LeaseLostError, ValidationError } from '../errors.ts';
import type { AttemptError, RetentionOption } from '../job.ts';
import type { ClaimedJob, ClaimResult, CompleteItem, FailItem, FailOutcome, LeaseOutcome, Store, StoreSignal, WorkerBackend } from '../store/contract.ts';
import { checkDuration, checkInteger, checkQueueName, rejectUnknownKeys, serializeJson, DEFAULT_MAX_PAYLOAD_BYTES } from '../options.ts';
import { AckBatcher } from './ack-batcher.ts';
import { isPromiseLike } from './enqueue-batcher.ts';
import { Job } from './job.ts';
import { nextAttemptAt, type BackoffStrategy } from './retry-policy.ts';

/** What a handler receives besides the job: everything it may need, by name. */
export interface JobContext<Data = unknown> {
  readonly job: Job<Data>;
  /** Aborted when the job times out, its lease is lost, or the worker shuts down past its deadline. */
  readonly signal: AbortSignal;
  /** 1 for the first try. */
  readonly attempt: number;
  readonly workerId: string;
  /** Saves a progress value for the job (fenced by this attempt's lease). */
  progress(value: unknown): Promise<void>;
  /** Appends a line to the job's log. */
  log(message: string): Promise<void>;
}

export type Handler<Data = unknown, Result = unknown> = (job: Job<Data>, context: JobContext<Data>) => Result | Promise<Result>;

export interface WorkerOptions {
  /** Handlers running at once. Default 1. */
  readonly concurrency?: number;
  /**
   * Most jobs taken per claim. Default: 4 × concurrency, 8 × against an asynchronous
   * (networked) store such as PostgreSQL (at least 10, at most 1000).
   */
  readonly batchSize?: number;
  /**
   * Jobs claimed ahead of free handler slots. Default: adaptive (see docs/guide.md): 3 ×
   * concurrency while jobs are short (< 25 ms), none while they are long (> 500 ms), else
   * concurrency. 0 claims only for free slots: strict priority and fair sharing between workers.
   */
  readonly prefetch?: number;
  /** Lease length in ms; renewed every third of it. Default 30,000. */
  readonly leaseMs?: number;
  /** How many times a job may stall before it goes to `failed`. Default 1. */
  readonly maxStalls?: number;
  /** How often this worker looks for expired leases to recover, in ms. Default leaseMs / 2. */
  readonly stalledCheckMs?: number;
  /**
   * Safety-net poll while idle, in ms, in case a wake-up signal is missed. Default 30,000
   * while the store delivers every process's writes as signals (`signalsReliable()`, e.g.
   * PostgreSQL with LISTEN up and verified; else the capability `crossProcessSignals`),
   * where the poll only covers a signal lost in transit; 5,000 otherwise (an in-memory
   * store, or PostgreSQL while LISTEN is connecting, reconnecting or off).
   */
  readonly pollMs?: number;
  /** Named backoff functions for jobs with `backoff: { type: name }`. */
  readonly backoffStrategies?: Readonly<Record<string, BackoffStrategy>>;
  /** Start claiming at once. Default true; with false call `run()`. */
  readonly autorun?: boolean;
  /** Prefix of this worker's id, which is also the lease owner recorded on jobs. */
  readonly name?: string;
}

const WORKER_OPTION_KEYS: Record<keyof WorkerOptions, true> = {
  concurrency: true,
  batchSize: true,
  prefetch: true,
  leaseMs: true,
  maxStalls: true,
  stalledCheckMs: true,
  pollMs: true,
  backoffStrategies: true,
  autorun: true,
  name: true,
};

const WORKER_HINTS: Readonly<Record<string, string>> = {
  lockDuration: 'use leaseMs',
  maxStalledCount: 'use maxStalls',
  stalledInterval: 'use stalledCheckMs',
  drainDelay: 'workers wake on new jobs without polling; pollMs sets the safety-net poll',
  settings: 'pass backoffStrategies: { name: fn } directly',
  connection: 'workers use the Conveyor they were created from',
  limiter: 'rate limits are not available yet',
};

interface Settings {
  readonly concurrency: number;
  /** Fixed claim batch size, or undefined for the default (see claimBatchSize). */
  readonly batchSize: number | undefined;
  /** Fixed prefetch, or undefined for adaptive. */
  readonly prefetch: number | undefined;
  readonly leaseMs: number;
  readonly maxStalls: number;
  readonly stalledCheckMs: number;
  /** Fixed safety-net poll, or undefined for the default, which follows the store's signals (see idlePollMs). */
  readonly pollMs: number | undefined;
  readonly backoffStrategies: Readonly<Record<string, BackoffStrategy>> | undefined;
  readonly autorun: boolean;
}

/** The idle safety-net poll when no `pollMs` is given (see WorkerOptions.pollMs). */
const DEFAULT_POLL_MS = 5000;
const DEFAULT_POLL_MS_WITH_SIGNALS = 30_000;

/**
 * How often a worker reports itself to the store's worker registry (`reportWorker`). The
 * report rides on the stalled-job check's timer (see maintenanceTick), so with the default
 * lease (check every 15 s) an idle worker costs, per minute: 4 stalled-job checks, 4
 * reports and 2 safety-net claims while the store's signals are reliable.
 */
const REPORT_EVERY_MS = 15_000;

function normalizeWorkerOptions(o: WorkerOptions | undefined): Settings & { name: string | undefined } {
  if (o !== undefined && (typeof o !== 'object' || o === null)) {
    throw new ValidationError('INVALID_ARGUMENT', 'worker options must be an object');
  }
  if (o) rejectUnknownKeys(o, WORKER_OPTION_KEYS, 'worker options', WORKER_HINTS);
  const concurrency = o?.concurrency === undefined ? 1 : checkInteger(o.concurrency, 'concurrency', 1, 10_000);
  const leaseMs = o?.leaseMs === undefined ? 30_000 : checkDuration(o.leaseMs, 'leaseMs', 100);
  return {
    concurrency,
    batchSize: o?.batchSize === undefined ? undefined : checkInteger(o.batchSize, 'batchSize', 1, 1000),
    prefetch: o?.prefetch === undefined ? undefined : checkInteger(o.prefetch, 'prefetch', 0, 10_000),
    leaseMs,
    maxStalls: o?.maxStalls === undefined ? 1 : checkInteger(o.maxStalls, 'maxStalls', 0, 1000),
    stalledCheckMs: o?.stalledCheckMs === undefined ? Math.max(50, Math.round(leaseMs / 2)) : checkDuration(o.stalledCheckMs, 'stalledCheckMs', 10),
    pollMs: o?.pollMs === undefined ? undefined : checkDuration(o.pollMs, 'pollMs', 10),
    backoffStrategies: o?.backoffStrategies,
    autorun: o?.autorun ?? true,
    name: o?.name,
  };
}

/** Claims one worker may make in one turn of the event loop before it yields (see pump). */
const MAX_CLAIMS_PER_TURN = 4;

/**
 * Claims one worker may have in flight at once against an asynchronous (networked) store.
 * A claim there takes milliseconds (a round trip and a commit); with one at a time, a
 * worker whose handlers are short sits idle for most of each claim. With two, the next
 * batch is already on its way while the previous one runs (see pump).
 */
const MAX_CLAIMS_IN_FLIGHT = 2;

/** Prefetch for short jobs, × concurrency: against a synchronous store, and an asynchronous one (see prefetch()). */
const SHORT_JOB_PREFETCH = 3;
const SHORT_JOB_PREFETCH_ASYNC = 14;

/** Default claim batch, × concurrency: against a synchronous store, and an asynchronous one (see claimBatchSize()). */
const CLAIM_BATCH = 4;
const CLAIM_BATCH_ASYNC = 8;

/** Carried beside each acknowledgement for the events emitted once the store has answered. */
interface AckMeta {
  readonly job: Job;
  readonly value: unknown;
  readonly error: Error | undefined;
}

/** One job this worker holds: buffered (not started) or running. */
interface Held {
  readonly record: ClaimedJob;
  readonly job: Job;
  readonly controller: AbortController;
  timer: ReturnType<typeof setTimeout> | undefined;
  running: boolean;
  startedAt: number;
  /** The attempt is over for this worker (acked, timed out or lease lost); later outcomes are ignored. */
  settled: boolean;
}

export interface WorkerEvents<Data, Result> {
  active: [job: Job<Data, Result>];
  completed: [job: Job<Data, Result>, result: Result];
  /** Every failed attempt; `willRetry` says whether another attempt is scheduled. */
  failed: [job: Job<Data, Result>, error: Error, willRetry: boolean];
  stalled: [jobId: string, queue: string, state: 'waiting' | 'failed'];
  /** The store rejected this worker's hold on a job (its lease expired or it was cancelled). */
  leaseLost: [job: Job<Data, Result>];
  /** Nothing left to do for now: the buffer is empty, no handler runs, the last claim found nothing. */
  drained: [];
  error: [error: Error];
  closed: [];
}

export interface WorkerStats {
  readonly claimed: number;
  readonly completed: number;
  readonly failed: number;
  /** Acknowledgements the store rejected (or that were dropped because the lease was known lost). */
  readonly staleAcks: number;
  readonly stalledRecovered: number;
  readonly active: number;
  readonly buffered: number;
}

/** The worker registry of a backend that has one (a Store; not necessarily the HTTP client). */
type Registry = Pick<Store, 'reportWorker' | 'removeWorker'>;

export interface WorkerDeps {
  readonly backend: WorkerBackend;
  readonly maxPayloadBytes?: number;
  /** Called once the worker has closed, so its owner can forget it. */
  readonly onClosed?: () => void;
  /** Applies count/age retention after finished jobs were written (the owner throttles it). */
  readonly retention?: (queue: string, state: 'completed' | 'failed', policy: Exclude<RetentionOption, boolean>) => void;
}

export class Worker<Data = unknown, Result = unknown> extends EventEmitter<WorkerEvents<Data, Result>> {
  readonly id: string;
  readonly queues: readonly string[];
  readonly concurrency: number;
  private readonly settings: Settings;
  private readonly handler: Handler<Data, Result>;
  private readonly backend: WorkerBackend;
  private readonly maxPayloadBytes: number;
  private readonly acks: AckBatcher<AckMeta>;
  private readonly held = new Map<string, Held>();
  private buffer: Held[] = [];
  private runningCount = 0;
  /** Claims sent to the store and not answered yet. */
  private claimsInFlight = 0;
  /** Sum of the limits of those claims: capacity they may fill when they answer. */
  private reservedByClaims = 0;
  /** The store answered a claim with a promise (a networked store): claims may overlap. */
  private asyncClaims = false;
  /** Whether the last answered claim was full (the queue probably has more). */
  private lastClaimFull = false;
  /**
   * The last claim got fewer jobs than it asked for: the queue had nothing more to give.
   * Against an asynchronous store the worker then claims again only when woken (a signal,
   * its timer), not each time a job finishes: each claim there is a round trip, and one
   * that finds nothing would also delay the claim a new job's signal asks for.
   */
  private dry = false;
  /** Claims are answered in the order they were sent (see inClaimOrder). */
  private claimsSent = 0;
  private claimsApplied = 0;
  private readonly earlyClaims = new Map<number, () => void>();
  private pumpQueued = false;
  private claimsThisTurn = 0;
  /** Moving average of handler durations, for adaptive prefetch. */
  private avgHandlerMs: number | undefined;
  private turnResetScheduled = false;
  private yieldScheduled = false;
  private wakeRequested = false;
  private started = false;
  private closing: Promise<void> | undefined;
  private closed = false;
  private paused = false;
  private drainedEmitted = false;
  private claimErrors = 0;
  private idleTimer: ReturnType<typeof setTimeout> | undefined;
  private idleTimerAt = Infinity;
  private heartbeatTimer: ReturnType<typeof setInterval> | undefined;
  /** Stalled-job checks and registry reports (see maintenanceTick). */
  private maintenanceTimer: ReturnType<typeof setInterval> | undefined;
  private lastStalledCheckAt = 0;
  private lastReportAt = 0;
  private report: PromiseLike<void> | undefined;
  private startedAt = 0;
  private lastClaimAt: number | null = null;
  private readonly registry: Registry | undefined;
  /** The store signals other processes' writes (capability), for backends without signalsReliable(). */
  private readonly crossProcessSignals: boolean;
  private unsubscribe: (() => void) | undefined;
  private idleWaiters: Array<() => void> = [];
  private readonly onClosed: (() => void) | undefined;
  private readonly retention: WorkerDeps['retention'];
  private counters = { claimed: 0, completed: 0, failed: 0, staleAcks: 0, stalledRecovered: 0 };

  constructor(queues: string | readonly string[], handler: Handler<Data, Result>, options: WorkerOptions | undefined, deps: WorkerDeps) {
    super();
    const list = typeof queues === 'string' ? [queues] : [...queues];
    if (list.length === 0) throw new ValidationError('INVALID_ARGUMENT', 'a worker needs at least one queue');
    for (const q of list) checkQueueName(q);
    if (typeof handler !== 'function') throw new ValidationError('INVALID_ARGUMENT', 'a worker needs a handler function: (job, context) => result');
    // A backend that is a whole Store says what it can do; the worker seam itself does not.
    const capabilities = (deps.backend as { readonly capabilities?: ReadonlySet<string> }).capabilities;
    this.crossProcessSignals = capabilities?.has('crossProcessSignals') === true;
    const s = normalizeWorkerOptions(options);
    this.settings = s;
    this.queues = list;
    this.concurrency = s.concurrency;
    this.handler = handler;
    this.backend = deps.backend;
    this.maxPayloadBytes = deps.maxPayloadBytes ?? DEFAULT_MAX_PAYLOAD_BYTES;
    this.onClosed = deps.onClosed;
    this.retention = deps.retention;
    this.id = `${s.name ?? 'worker'}:${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
    const registry = deps.backend as Partial<Registry>;
    this.registry = typeof registry.reportWorker === 'function' && typeof registry.removeWorker === 'function' ? (registry as Registry) : undefined;
    this.acks = new AckBatcher(this.backend, {
      onCompleted: (item, meta, outcome) => this.afterComplete(item, meta, outcome),
      onFailed: (item, meta, outcome) => this.afterFail(meta, outcome),
      onError: (err) => this.reportError(err),
    });
    if (s.autorun) queueMicrotask(() => this.run());
  }

  /** Starts claiming. Called automatically unless `autorun: false`. */
  run(): void {
    if (this.started || this.closing) return;
    this.started = true;
    this.unsubscribe = this.backend.subscribe((signal) => this.onSignal(signal));
    this.heartbeatTimer = setInterval(() => this.heartbeat(), Math.max(10, Math.floor(this.settings.leaseMs / 3)));
    this.heartbeatTimer.unref();
    this.startedAt = Date.now();
    // One timer for the stalled-job check and the registry report, so an idle worker wakes
    // once per period, not twice.
    this.maintenanceTimer = setInterval(() => this.maintenanceTick(), Math.min(this.settings.stalledCheckMs, REPORT_EVERY_MS));
    this.maintenanceTimer.unref();
    this.lastStalledCheckAt = this.startedAt;
    this.recoverStalled();
    this.reportSelf();
    this.pump();
  }

  /** Stops taking new jobs until `resume()`; running jobs go on. */
  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    this.requestWake();
  }

  get isRunning(): boolean {
    return this.started && !this.closing;
  }

  stats(): WorkerStats {
    return { ...this.counters, active: this.runningCount, buffered: this.buffer.length };
  }

  /** The jobs running right now (for shutdown messages and the server's worker list). */
  activeJobs(): ReadonlyArray<{ id: string; queue: string; name: string; startedAt: number | null }> {
    const out = [];
    for (const h of this.held.values()) if (h.running) out.push({ id: h.record.id, queue: h.record.queue, name: h.record.name, startedAt: h.record.startedAt });
    return out;
  }

  /** Resolves when nothing is buffered, running or waiting to be acknowledged. */
  async whenIdle(): Promise<void> {
    while (this.held.size > 0 || this.acks.size > 0) {
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  /**
   * Graceful shutdown: stop claiming, hand buffered jobs back at once, wait for running
   * handlers up to `timeoutMs` (default 30 s), write their acknowledgements, then stop.
   * Handlers still running at the deadline get their signal aborted; their leases are left
   * to expire, so those jobs run again elsewhere rather than twice at once.
   */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.closing ??= this.shutdown(options.timeoutMs === undefined ? 30_000 : checkDuration(options.timeoutMs, 'timeoutMs'));
    return this.closing;
  }

  private async shutdown(timeoutMs: number): Promise<void> {
    this.clearIdleTimer();
    await this.releaseBuffered();
    if (this.runningCount > 0) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<'timeout'>((resolve) => {
        timer = setTimeout(() => resolve('timeout'), timeoutMs);
      });
      const outcome = await Promise.race([this.waitForRunning(), deadline]);
      clearTimeout(timer);
      if (outcome === 'timeout') {
        for (const h of this.held.values()) {
          if (h.running && !h.settled) {
            h.settled = true;
            h.controller.abort(new ConveyorError('CLOSED', `worker closed while job ${h.record.id} was still running`));
            this.forget(h);
          }
        }
      }
    }
    await this.acks.drain();
    clearInterval(this.heartbeatTimer);
    clearInterval(this.maintenanceTimer);
    await this.removeSelf();
    this.unsubscribe?.();
    this.closed = true;
    this.wakeIdleWaiters();
    this.onClosed?.();
    this.emit('closed');
  }

  private async waitForRunning(): Promise<void> {
    while (this.runningCount > 0) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async releaseBuffered(): Promise<void> {
    const buffered = this.buffer;
    this.buffer = [];
    if (buffered.length === 0) return;
    for (const h of buffered) {
      h.settled = true;
      this.forget(h);
    }
    try {
      await this.backend.releaseMany({ items: buffered.map((h) => ({ id: h.record.id, token: h.record.lease.token })), now: Date.now() });
    } catch (err) {
      // Not fatal: the leases expire and the jobs are recovered as stalled.
      this.reportError(err);
    }
  }

  // ------------------------------------------------------------------ claiming

  private onSignal(signal: StoreSignal): void {
    if (this.closing) return;
    switch (signal.type) {
      case 'enqueued':
        if (!this.queues.includes(signal.queue)) return;
        if (signal.runAt > Date.now() + 1) this.wakeAt(signal.runAt);
        else this.requestWake();
        return;
      case 'resumed':
        if (this.queues.includes(signal.queue)) this.requestWake();
        return;
      case 'changed':
        this.requestWake();
        return;
      default:
        return;
    }
  }

  private requestWake(): void {
    this.wakeRequested = true;
    // Against an asynchronous store a wake-up may claim beside a claim in flight (which may
    // have read the queue before the new job was committed), rather than after it.
    if (this.claimsInFlight === 0 || (this.asyncClaims && this.claimsInFlight < MAX_CLAIMS_IN_FLIGHT)) queueMicrotask(() => this.pump());
  }

  private wakeAt(at: number): void {
    if (at >= this.idleTimerAt) return;
    this.clearIdleTimer();
    this.idleTimerAt = at;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      this.idleTimerAt = Infinity;
      this.dry = false;
      this.pump();
    }, Math.max(0, at - Date.now()));
  }

  private clearIdleTimer(): void {
    if (this.idleTimer !== undefined) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    this.idleTimerAt = Infinity;
  }

  /** Starts buffered jobs in free slots, then claims more if the buffer runs low. */
  private pump(): void {
    this.startBuffered();
    if (this.closing || this.paused || !this.started) return;
    // A second claim while one is in flight only against an asynchronous store, only while
    // the queue has been yielding full batches or on a wake-up (a new job), and only for at
    // least half a batch (see MAX_CLAIMS_IN_FLIGHT); a synchronous store answers before pump
    // runs again.
    if (this.dry && this.asyncClaims && !this.wakeRequested) return;
    const overlapping = this.claimsInFlight > 0;
    if (overlapping && (!this.asyncClaims || !(this.lastClaimFull || this.wakeRequested) || this.claimsInFlight >= MAX_CLAIMS_IN_FLIGHT)) return;
    // Claim when the buffer can no longer fill the free slots, or on a wake-up while idle.
    const prefetch = this.prefetch();
    const lowWater = Math.floor(prefetch / 2);
    if (this.buffer.length > lowWater && !this.wakeRequested) return;
    const capacity = this.settings.concurrency + prefetch;
    // Finished jobs whose acks are still queued count against capacity, so a failing or
    // slow store cannot make acks pile up without bound; so do claims in flight.
    const held = this.held.size + this.acks.size + this.reservedByClaims;
    if (held >= capacity) return;
    const batchSize = this.claimBatchSize();
    if (overlapping && capacity - held < Math.max(1, Math.floor(batchSize / 2))) return;
    // With a synchronous store and instant handlers, claim → run → ack can chain through
    // microtasks without end. After a few claims in one turn of the event loop, yield, so
    // lease timers and I/O are never starved.
    if (this.claimsThisTurn >= MAX_CLAIMS_PER_TURN) {
      if (!this.yieldScheduled) {
        this.yieldScheduled = true;
        setImmediate(() => {
          this.yieldScheduled = false;
          this.claimsThisTurn = 0;
          this.pump();
        });
      }
      return;
    }
    this.claimsThisTurn++;
    if (!this.turnResetScheduled) {
      this.turnResetScheduled = true;
      setImmediate(() => {
        this.turnResetScheduled = false;
        this.claimsThisTurn = 0;
      });
    }
    const limit = Math.min(batchSize, capacity - held);
    this.claimsInFlight++;
    this.reservedByClaims += limit;
    this.wakeRequested = false;
    const seq = this.claimsSent++;
    let result: ClaimResult | PromiseLike<ClaimResult>;
    try {
      result = this.backend.claim({ queues: this.queues, workerId: this.id, limit, leaseMs: this.settings.leaseMs, now: Date.now() });
    } catch (err) {
      this.inClaimOrder(seq, () => this.onClaimError(err, limit));
      return;
    }
    if (isPromiseLike(result)) {
      this.asyncClaims = true;
      result.then(
        (r) => this.inClaimOrder(seq, () => this.onClaimed(r, limit)),
        (err: unknown) => this.inClaimOrder(seq, () => this.onClaimError(err, limit)),
      );
    } else {
      this.inClaimOrder(seq, () => this.onClaimed(result, limit));
    }
  }

  /**
   * Applies claim answers in the order the claims were sent, so jobs start in claim order
   * even when two overlapping claims answer the other way round.
   */
  private inClaimOrder(seq: number, apply: () => void): void {
    if (seq !== this.claimsApplied) {
      this.earlyClaims.set(seq, apply);
      return;
    }
    apply();
    this.claimsApplied++;
    for (let next = this.earlyClaims.get(this.claimsApplied); next !== undefined; next = this.earlyClaims.get(this.claimsApplied)) {
      this.earlyClaims.delete(this.claimsApplied);
      next();
      this.claimsApplied++;
    }
  }

  /**
   * Most jobs per claim: `batchSize` if given; else 4 × concurrency, or 8 × against an
   * asynchronous store, where each claim is a round trip and a commit (at least 10, at most
   * 1000). With the deeper prefetch there (14 × concurrency) two overlapping claims of a
   * full batch fit in the buffer.
   */
  private claimBatchSize(): number {
    if (this.settings.batchSize !== undefined) return this.settings.batchSize;
    return Math.min(1000, Math.max((this.asyncClaims ? CLAIM_BATCH_ASYNC : CLAIM_BATCH) * this.settings.concurrency, 10));
  }

  /**
   * How many jobs to hold beyond free slots. Prefetching makes short jobs fast (fewer,
   * larger claims) but would let one worker sit on long jobs that idle workers could run,
   * so by default it follows the observed handler duration. Against an asynchronous
   * (networked) store a claim costs a round trip and a commit, milliseconds in which short
   * jobs run out, so short jobs get a deeper buffer there: 14 × concurrency instead of 3 ×,
   * which lets two claims of a full (8 × concurrency) batch overlap. Measured on PostgreSQL,
   * concurrency 50, no-op jobs, interleaved rounds on a busy 2-core VM: 7 × with 200-job
   * batches drained 15-17k → 20-23k jobs/s against 3 × with 100-job ones; 14 × with 400-job
   * batches then drained faster than 7 × with 200-job ones in 13 rounds of 13 over three
   * runs (per-round ratio 1.00-1.84, median 1.28; node CPU per job about -20 %), while
   * 400-job batches with the 7 × buffer alone did not (-4 %).
   */
  private prefetch(): number {
    if (this.settings.prefetch !== undefined) return this.settings.prefetch;
    const c = this.settings.concurrency;
    const avg = this.avgHandlerMs;
    if (avg === undefined) return c;
    if (avg < 25) return Math.min((this.asyncClaims ? SHORT_JOB_PREFETCH_ASYNC : SHORT_JOB_PREFETCH) * c, 1000);
    if (avg > 500) return 0;
    return c;
  }

  private onClaimed(result: ClaimResult, limit: number): void {
    this.claimsInFlight--;
    this.reservedByClaims -= limit;
    this.claimErrors = 0;
    const jobs = result.jobs;
    this.lastClaimFull = jobs.length >= limit;
    this.dry = !this.lastClaimFull;
    if (this.closing) {
      // Claimed while shutting down: hand them straight back.
      if (jobs.length > 0) {
        void Promise.resolve(this.backend.releaseMany({ items: jobs.map((j) => ({ id: j.id, token: j.lease.token })), now: Date.now() })).catch((e: unknown) => this.reportError(e));
      }
      return;
    }
    this.counters.claimed += jobs.length;
    if (jobs.length > 0) this.lastClaimAt = Date.now();
    for (const record of jobs) {
      const h: Held = {
        record,
        job: new Job(record, { backend: this.backend, maxPayloadBytes: this.maxPayloadBytes }),
        controller: new AbortController(),
        timer: undefined,
        running: false,
        startedAt: 0,
        settled: false,
      };
      this.held.set(record.id, h);
      this.buffer.push(h);
    }
    if (jobs.length > 0) this.drainedEmitted = false;
    if (jobs.length >= limit || this.wakeRequested) {
      queueMicrotask(() => this.pump());
      return;
    }
    this.startBuffered();
    if (jobs.length === 0 && this.held.size === 0 && this.acks.size === 0 && this.claimsInFlight === 0 && !this.drainedEmitted) {
      this.drainedEmitted = true;
      this.emit('drained');
    }
    // Sleep until the next delayed job is due or the safety-net poll, whichever is first;
    // a signal (new job, resume, another process's write) wakes us earlier.
    const pollAt = Date.now() + this.idlePollMs();
    this.wakeAt(result.nextRunAt === null ? pollAt : Math.min(pollAt, result.nextRunAt));
  }

  private onClaimError(err: unknown, limit: number): void {
    this.claimsInFlight--;
    this.reservedByClaims -= limit;
    this.lastClaimFull = false;
    this.claimErrors++;
    this.reportError(err);
    // Back off so a store outage is not hammered; reconnecting is the store's job.
    this.wakeAt(Date.now() + Math.min(5000, 25 * 2 ** this.claimErrors));
  }

  // ------------------------------------------------------------------- running

  private startBuffered(): void {
    while (this.runningCount < this.settings.concurrency && this.buffer.length > 0 && !this.closing) {
      const h = this.buffer.shift()!;
      if (h.settled) continue;
      this.runningCount++;
      h.running = true;
      h.startedAt = performance.now();
      this.execute(h);
    }
  }

  private execute(h: Held): void {
    const { record, job, controller } = h;
    const timeout = record.opts.timeout;
    if (timeout !== undefined) {
      h.timer = setTimeout(() => this.onTimeout(h, timeout), timeout);
    }
    this.emit('active', job as Job<Data, Result>);
    const context: JobContext<Data> = {
      job: job as Job<Data>,
      signal: controller.signal,
      attempt: record.attemptsMade + 1,
      workerId: this.id,
      progress: (value) => job.updateProgress(value),
      log: (message) => job.log(message),
    };
    let out: Result | Promise<Result>;
    try {
      out = this.handler(job as Job<Data>, context);
    } catch (err) {
      queueMicrotask(() => this.onAttemptFailed(h, err));
      return;
    }
    if (isPromiseLike(out)) {
      out.then(
        (value) => this.onAttemptSucceeded(h, value),
        (err: unknown) => this.onAttemptFailed(h, err),
      );
    } else {
      // Finish synchronous handlers in a microtask, so a buffer of them does not recurse.
      const value = out;
      queueMicrotask(() => this.onAttemptSucceeded(h, value));
    }
  }

  private onTimeout(h: Held, timeoutMs: number): void {
    if (h.settled) return;
    const err = new JobTimeoutError(timeoutMs);
    h.controller.abort(err);
    this.onAttemptFailed(h, err, 'timeout');
  }

  private onAttemptSucceeded(h: Held, value: Result): void {
    if (h.settled) return;
    let text: string | null;
    try {
      text = value === undefined ? null : serializeJson(value, this.maxPayloadBytes, 'job result');
    } catch (err) {
      this.onAttemptFailed(h, err);
      return;
    }
    this.finishAttempt(h);
    this.acks.complete(
      { id: h.record.id, token: h.record.lease.token, result: text, remove: h.record.opts.removeOnComplete === true },
      { job: h.job, value, error: undefined },
    );
  }

  private onAttemptFailed(h: Held, err: unknown, reason?: AttemptError['reason']): void {
    if (h.settled) return;
    const error = toError(err);
    const attemptsMade = h.record.attemptsMade + 1;
    const now = Date.now();
    let retryAt: number | null;
    let finalError = error;
    try {
      retryAt = nextAttemptAt({
        opts: h.record.opts,
        attemptsMade,
        error: err,
        now,
        job: { id: h.record.id, name: h.record.name },
        strategies: this.settings.backoffStrategies,
      });
    } catch (strategyError) {
      // A missing or throwing backoff strategy ends the job rather than guessing a schedule.
      retryAt = null;
      finalError = toError(strategyError);
      this.reportError(strategyError);
    }
    const attemptError: AttemptError = {
      message: error.message,
      name: error.name,
      ...(error.stack === undefined ? {} : { stack: error.stack }),
      at: now,
      attempt: attemptsMade,
      ...(reason ? { reason } : err instanceof Error && err.name === 'UnrecoverableError' ? { reason: 'unrecoverable' as const } : {}),
    };
    this.finishAttempt(h);
    this.acks.fail(
      {
        id: h.record.id,
        token: h.record.lease.token,
        error: attemptError,
        retryAt,
        remove: retryAt === null && h.record.opts.removeOnFail === true,
      },
      { job: h.job, value: undefined, error: finalError },
    );
  }

  /** The handler is done with this attempt: free the slot and start the next job. */
  private finishAttempt(h: Held): void {
    h.settled = true;
    const ms = performance.now() - h.startedAt;
    this.avgHandlerMs = this.avgHandlerMs === undefined ? ms : this.avgHandlerMs * 0.9 + ms * 0.1;
    if (h.timer !== undefined) clearTimeout(h.timer);
    this.forget(h);
    this.pump();
  }

  private forget(h: Held): void {
    if (this.held.get(h.record.id) === h) this.held.delete(h.record.id);
    if (h.running) {
      h.running = false;
      this.runningCount--;
    }
    this.wakeIdleWaiters();
  }

  private wakeIdleWaiters(): void {
    if (this.idleWaiters.length === 0) return;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  // ------------------------------------------------------------ acknowledgement

  private afterComplete(item: CompleteItem, meta: AckMeta, outcome: LeaseOutcome): void {
    const job = meta.job as Job<Data, Result>;
    if (outcome.status === 'applied') {
      this.counters.completed++;
      this.emit('completed', job, meta.value as Result);
      const keep = job.opts.removeOnComplete;
      if (keep !== undefined && keep !== true && keep !== false) this.retention?.(job.queueName, 'completed', keep);
    } else {
      this.counters.staleAcks++;
      this.emit('leaseLost', job);
    }
    this.afterAck();
  }

  private afterFail(meta: AckMeta, outcome: FailOutcome): void {
    const job = meta.job as Job<Data, Result>;
    if (outcome.status === 'applied') {
      this.counters.failed++;
      this.emit('failed', job, meta.error ?? new Error('job failed'), outcome.state !== 'failed');
      const keep = job.opts.removeOnFail;
      if (outcome.state === 'failed' && keep !== undefined && keep !== true && keep !== false) this.retention?.(job.queueName, 'failed', keep);
    } else {
      this.counters.staleAcks++;
      this.emit('leaseLost', job);
    }
    this.afterAck();
  }

  private afterAck(): void {
    this.wakeIdleWaiters();
    if (!this.pumpQueued) {
      // Acks free capacity; claim again once this flush's callbacks are all done.
      this.pumpQueued = true;
      queueMicrotask(() => {
        this.pumpQueued = false;
        this.pump();
      });
    }
    if (this.held.size === 0 && this.acks.size === 0 && this.claimsInFlight === 0 && !this.drainedEmitted && this.idleTimer !== undefined) {
      this.drainedEmitted = true;
      this.emit('drained');
    }
  }

  // --------------------------------------------------------------- maintenance

  private heartbeat(): void {
    if (this.held.size === 0) return;
    const holds = [...this.held.values()].filter((h) => !h.settled);
    if (holds.length === 0) return;
    const now = Date.now();
    let result;
    try {
      result = this.backend.extendLeases({ items: holds.map((h) => ({ id: h.record.id, token: h.record.lease.token })), leaseMs: this.settings.leaseMs, now });
    } catch (err) {
      this.reportError(err);
      return;
    }
    Promise.resolve(result).then(
      (outcomes) => {
        for (let i = 0; i < holds.length; i++) {
          if (outcomes[i]?.status === 'stale') this.onLeaseLost(holds[i]!);
        }
      },
      (err: unknown) => this.reportError(err),
    );
  }

  private onLeaseLost(h: Held): void {
    if (h.settled) return;
    h.settled = true;
    if (h.timer !== undefined) clearTimeout(h.timer);
    this.counters.staleAcks++;
    h.controller.abort(new LeaseLostError(`lost the lease on job ${h.record.id}: it expired or the job was cancelled`));
    this.buffer = this.buffer.filter((b) => b !== h);
    this.forget(h);
    this.emit('leaseLost', h.job as Job<Data, Result>);
    this.pump();
  }

  /**
   * The safety-net poll: `pollMs` if given; else long while the store's signals are
   * reliable right now (it says so through `signalsReliable()`, and signals `changed`
   * when that changes, so a sleeping worker re-checks and re-arms a shorter poll), short
   * otherwise.
   */
  private idlePollMs(): number {
    if (this.settings.pollMs !== undefined) return this.settings.pollMs;
    const reliable = this.backend.signalsReliable === undefined ? this.crossProcessSignals : this.backend.signalsReliable();
    return reliable ? DEFAULT_POLL_MS_WITH_SIGNALS : DEFAULT_POLL_MS;
  }

  /**
   * Every min(stalledCheckMs, 15 s): the stalled-job check when it is due, and the registry
   * report when it is due (a check or report due within half a tick counts as due, so
   * equal periods share every tick).
   */
  private maintenanceTick(): void {
    const now = Date.now();
    const tick = Math.min(this.settings.stalledCheckMs, REPORT_EVERY_MS);
    if (now - this.lastStalledCheckAt >= this.settings.stalledCheckMs - tick / 2) {
      this.lastStalledCheckAt = now;
      this.recoverStalled();
    }
    if (now - this.lastReportAt >= REPORT_EVERY_MS - tick / 2) this.reportSelf();
  }

  /** Tells the store's worker registry this worker is alive (one upsert), if it has one. */
  private reportSelf(): void {
    if (this.registry === undefined || this.closing || this.report !== undefined) return;
    const now = Date.now();
    this.lastReportAt = now;
    let result;
    try {
      result = this.registry.reportWorker({
        id: this.id,
        kind: 'direct',
        host: hostname(),
        pid: process.pid,
        queues: this.queues,
        concurrency: this.settings.concurrency,
        active: this.runningCount,
        startedAt: this.startedAt,
        lastSeenAt: now,
        lastClaimAt: this.lastClaimAt,
      });
    } catch (err) {
      this.reportError(err);
      return;
    }
    if (!isPromiseLike(result)) return;
    const report = Promise.resolve(result).then(
      () => undefined,
      (err: unknown) => this.reportError(err),
    );
    this.report = report;
    void report.then(() => {
      if (this.report === report) this.report = undefined;
    });
  }

  /** On close: waits for a report in flight (so it cannot re-create the row), then removes this worker's row. */
  private async removeSelf(): Promise<void> {
    if (this.registry === undefined || !this.started) return;
    await this.report;
    try {
      await this.registry.removeWorker({ id: this.id });
    } catch (err) {
      this.reportError(err);
    }
  }

  private recoverStalled(): void {
    if (this.closing) return;
    let result;
    try {
      result = this.backend.recoverStalled({ queues: this.queues, maxStalls: this.settings.maxStalls, limit: 1000, now: Date.now() });
    } catch (err) {
      this.reportError(err);
      return;
    }
    Promise.resolve(result).then(
      (recovered) => {
        for (const r of recovered) {
          this.counters.stalledRecovered++;
          this.emit('stalled', r.id, r.queue, r.state);
        }
        if (recovered.some((r) => r.state === 'waiting')) this.requestWake();
      },
      (err: unknown) => this.reportError(err),
    );
  }

  private reportError(err: unknown): void {
    const error = toError(err);
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else if (!this.closed) process.emitWarning(`conveyor worker ${this.id}: ${error.message}`, { code: 'CONVEYOR_WORKER_ERROR' });
  }
}

function toError(err: unknown): Error {
  if (err instanceof Error) return err;
  return new Error(typeof err === 'string' ? err : `non-error thrown: ${safeString(err)}`);
}

function safeString(value: unknown): string {
  try {
    return JSON.stringify(value) ?? String(value);
  } catch {
    return String(value);
  }
}
