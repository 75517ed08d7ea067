/**
 * Leases for workers that are not in this process: the engine side of the server's
 * remote-worker API. A remote worker claims jobs (long-polling when the queues are empty),
 * then completes, fails, renews or releases them by lease token, exactly as an in-process
 * `Worker` does through the Store; this class adds what the in-process worker does for
 * itself: the retry decision and the retention flags, which need the job's options.
 *
 * Options of the jobs this process handed out are remembered (bounded, oldest dropped),
 * so acknowledging them costs no extra read; a job claimed through another server is read
 * once from the store.
 */
import { randomUUID } from 'node:crypto';
import { ConveyorError, ValidationError } from '../errors.ts';
import type { AttemptError, JobRecord, RetentionOption } from '../job.ts';
import { checkInteger, checkQueueName, serializeJson } from '../options.ts';
import type { Awaitable, ClaimedJob, ExtendOutcome, FailOutcome, LeaseOutcome, Store, StoreSignal } from '../store/contract.ts';
import { nextAttemptAt } from './retry-policy.ts';

const NOT_HELD = Symbol('not held');

/** At most this many claimed jobs' options are remembered. */
const REMEMBERED_MAX = 100_000;
/** Longest long-poll a claim may ask for. */
export const MAX_CLAIM_WAIT_MS = 60_000;
export const MAX_CLAIM_LIMIT = 1000;
/** Longest wake-up wait (`waitForWork`). */
export const MAX_WORK_WAIT_MS = 60_000;
/** Work signals remembered for cursors (see waitForWork); an older cursor is answered `ready`. */
const RECENT_SIGNALS_MAX = 1024;

/** A store signal that may make jobs claimable, numbered in the order this process received it. */
interface WorkSignal {
  readonly seq: number;
  /** null: `changed` (another process wrote; which queue is unknown). */
  readonly queue: string | null;
  /** When the signalled job is due (epoch ms). */
  readonly runAt: number;
}

export interface WorkWait {
  readonly queues: readonly string[];
  /** The cursor of the previous answer. Absent: answer at once with a cursor to start from. */
  readonly cursor?: string;
  /** Wait up to this long for a signal; 0 answers at once. */
  readonly waitMs: number;
  /** Aborted when the client goes away: stop waiting. */
  readonly signal?: AbortSignal;
}

export interface WorkWaitResult {
  /**
   * Since the cursor, a job was added to (or came back to) one of the queues, one of them
   * was resumed, or another process wrote something (a hint: claim to find out).
   */
  readonly ready: boolean;
  /** Send it with the next wait, so signals between two waits are not missed. */
  readonly cursor: string;
  /** With `ready`: the queue signalled first due, or null when unspecific (`changed`). */
  readonly queue?: string | null;
  /** With `ready`: milliseconds until the earliest signalled job is due (0: now). */
  readonly delayMs?: number;
}

interface Remembered {
  readonly id: string;
  readonly queue: string;
  readonly name: string;
  readonly opts: JobRecord['opts'];
  readonly attemptsMade: number;
}

export interface RemoteClaim {
  readonly queues: readonly string[];
  readonly workerId: string;
  readonly limit: number;
  readonly leaseMs: number;
  /** Wait up to this long for a job when none is ready; 0 answers at once. */
  readonly waitMs: number;
  /** Aborted when the client goes away: stop waiting. */
  readonly signal?: AbortSignal;
}

export interface RemoteComplete {
  readonly id: string;
  readonly token: string;
  readonly queue?: string;
  /** Any JSON value, or undefined for none. */
  readonly result?: unknown;
  /** Delete the job instead of keeping it; default from the job's `removeOnComplete`. */
  readonly remove?: boolean;
}

export interface RemoteFail {
  readonly id: string;
  readonly token: string;
  readonly queue?: string;
  readonly error: { readonly message: string; readonly name?: string; readonly stack?: string };
  /** false: fail for good now, whatever attempts remain. Default true (the job's policy decides). */
  readonly retry?: boolean;
  /** When retrying, wait this long instead of the job's backoff (a worker with its own strategy). */
  readonly retryDelayMs?: number;
}

export type RetentionHook = (queue: string, state: 'completed' | 'failed', policy: Exclude<RetentionOption, boolean>) => void;

export class LeaseService {
  readonly #store: Store;
  readonly #maxPayloadBytes: number;
  readonly #retention: RetentionHook | undefined;
  /** By lease token: unique per claim, where a caller-chosen job id is unique only per queue. */
  readonly #remembered = new Map<string, Remembered>();
  readonly #waiters = new Set<{ queues: readonly string[]; wake: () => void }>();
  /** Wake-up waits (waitForWork), woken by work signals. */
  readonly #workWaiters = new Set<{ readonly queues: readonly string[]; readonly wake: () => void }>();
  /** Cursors name this instance, so a cursor from another server (or before a restart) is never misread. */
  readonly #epoch = randomUUID().slice(0, 8);
  #workSeq = 0;
  /** The last RECENT_SIGNALS_MAX work signals, oldest first. */
  #recent: WorkSignal[] = [];
  #unsubscribe: (() => void) | undefined;
  #closed = false;
  /** Epoch ms of the last claim that returned jobs, for health. */
  lastClaimAt: number | null = null;

  constructor(store: Store, options: { maxPayloadBytes: number; retention?: RetentionHook }) {
    this.#store = store;
    this.#maxPayloadBytes = options.maxPayloadBytes;
    this.#retention = options.retention;
  }

  /** Closing: every long poll answers now (empty), and new ones answer at once. */
  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    for (const w of this.#waiters) w.wake();
    for (const w of this.#workWaiters) w.wake();
  }

  /** Claims up to `limit` jobs; with none ready, waits for one up to `waitMs`. */
  async claim(params: RemoteClaim): Promise<readonly ClaimedJob[]> {
    return (await this.claimBatch(params)).jobs;
  }

  /**
   * `claim`, also answering `nextRunAt`: with fewer jobs than `limit`, the earliest due time
   * of a delayed job in these queues (else null), so a remote worker can sleep until then.
   */
  async claimBatch(params: RemoteClaim): Promise<{ readonly jobs: readonly ClaimedJob[]; readonly nextRunAt: number | null }> {
    if (params.queues.length === 0) throw new ValidationError('INVALID_ARGUMENT', 'queues must name at least one queue');
    for (const q of params.queues) checkQueueName(q);
    checkInteger(params.limit, 'limit', 1, MAX_CLAIM_LIMIT);
    checkInteger(params.leaseMs, 'leaseMs', 1000, 24 * 3600_000);
    checkInteger(params.waitMs, 'waitMs', 0, MAX_CLAIM_WAIT_MS);
    const deadline = Date.now() + params.waitMs;
    for (;;) {
      // Register before claiming, so a job added between an empty claim and the wait still wakes us.
      const waiter = this.#waiter(params.queues);
      try {
        const now = Date.now();
        const result = await this.#store.claim({ queues: params.queues, workerId: params.workerId, limit: params.limit, leaseMs: params.leaseMs, now });
        if (result.jobs.length > 0) {
          this.lastClaimAt = now;
          for (const job of result.jobs) this.#remember(job);
          return result;
        }
        const left = deadline - Date.now();
        if (left <= 0 || params.signal?.aborted || this.#closed) return { jobs: [], nextRunAt: result.nextRunAt };
        const until = result.nextRunAt === null ? left : Math.min(left, Math.max(0, result.nextRunAt - Date.now()));
        await waiter.wait(until, params.signal);
        if (params.signal?.aborted || this.#closed) return { jobs: [], nextRunAt: result.nextRunAt };
      } finally {
        waiter.dispose();
      }
    }
  }

  /**
   * Waits for work without touching the store: answers `ready` as soon as a store signal
   * says jobs may be claimable in one of `queues` (a job added, retried, recovered or
   * released there, the queue resumed, or `changed`: another process wrote), else
   * `ready: false` after `waitMs`. A remote worker alternates these waits with claims, so
   * an idle one costs one request per `waitMs` and no store statement at all.
   *
   * The cursor closes the gap between two waits: every work signal this instance receives
   * is numbered, and a wait with the previous answer's cursor is answered at once when a
   * matching signal arrived in between. Without a cursor the answer is immediate (not
   * ready) and carries the first one; a cursor of another server instance (behind a load
   * balancer, or from before a restart) cannot be resolved and just waits from now, so
   * clients start afresh (and claim once) after reconnecting.
   */
  async waitForWork(params: WorkWait): Promise<WorkWaitResult> {
    if (params.queues.length === 0) throw new ValidationError('INVALID_ARGUMENT', 'queues must name at least one queue');
    for (const q of params.queues) checkQueueName(q);
    checkInteger(params.waitMs, 'waitMs', 0, MAX_WORK_WAIT_MS);
    this.#unsubscribe ??= this.#store.subscribe((s) => this.#onSignal(s));
    if (params.cursor === undefined) return { ready: false, cursor: this.#cursor() };
    const since = this.#parseCursor(params.cursor);
    // Ours: catch up on what arrived since. Not ours: nothing to catch up from; wait from now.
    const from = since ?? this.#workSeq;
    const now = this.#pending(params.queues, from);
    if (now !== null) return now;
    if (params.waitMs === 0 || params.signal?.aborted || this.#closed) return { ready: false, cursor: this.#cursor() };
    return new Promise<WorkWaitResult>((resolve) => {
      const finish = (): void => {
        clearTimeout(timer);
        params.signal?.removeEventListener('abort', finish);
        this.#workWaiters.delete(entry);
        resolve(this.#pending(params.queues, from) ?? { ready: false, cursor: this.#cursor() });
      };
      const entry = { queues: params.queues, wake: finish };
      const timer = setTimeout(finish, params.waitMs);
      params.signal?.addEventListener('abort', finish, { once: true });
      this.#workWaiters.add(entry);
    });
  }

  #cursor(): string {
    return `${this.#epoch}.${this.#workSeq}`;
  }

  /** The seq of a cursor this instance issued, or null for anything else. */
  #parseCursor(cursor: string): number | null {
    const dot = cursor.indexOf('.');
    if (dot < 0 || cursor.slice(0, dot) !== this.#epoch) return null;
    const seq = Number(cursor.slice(dot + 1));
    return Number.isSafeInteger(seq) && seq >= 0 && seq <= this.#workSeq ? seq : null;
  }

  /** The ready answer for work signals after `since` in these queues, or null when there are none. */
  #pending(queues: readonly string[], since: number): WorkWaitResult | null {
    if (since >= this.#workSeq) return null;
    const recent = this.#recent;
    const cursor = this.#cursor();
    // Signals after `since` fell out of the window: something happened; claim to find out.
    if (recent.length === 0 || recent[0]!.seq > since + 1) return { ready: true, cursor, queue: null, delayMs: 0 };
    let first: WorkSignal | null = null;
    for (let i = recent.length - 1; i >= 0 && recent[i]!.seq > since; i--) {
      const s = recent[i]!;
      if (s.queue !== null && !queues.includes(s.queue)) continue;
      if (first === null || s.runAt <= first.runAt) first = s;
    }
    if (first === null) return null;
    return { ready: true, cursor, queue: first.queue, delayMs: Math.max(0, first.runAt - Date.now()) };
  }

  async complete(items: readonly RemoteComplete[]): Promise<readonly LeaseOutcome[]> {
    const now = Date.now();
    const prepared = await Promise.all(
      items.map(async (item) => {
        const result = item.result === undefined ? null : serializeJson(item.result, this.#maxPayloadBytes, 'job result');
        let remove = item.remove;
        let known: Remembered | null = null;
        if (remove === undefined || this.#retention) {
          const found = await this.#lookup(item);
          if (found === NOT_HELD) return { item: null, known: null };
          known = found;
          remove ??= known?.opts.removeOnComplete === true;
        }
        return { item: { id: item.id, token: item.token, result, remove }, known };
      }),
    );
    const outcomes = await this.#applied(prepared, (list) => this.#store.completeMany({ items: list, now }), { status: 'stale' } as const);
    outcomes.forEach((o, i) => {
      const known = prepared[i]!.known;
      if (o.status !== 'applied') return;
      this.#remembered.delete(items[i]!.token);
      const keep = known?.opts.removeOnComplete;
      if (known && keep !== undefined && typeof keep !== 'boolean') this.#retention?.(known.queue, 'completed', keep);
    });
    return outcomes;
  }

  async fail(items: readonly RemoteFail[]): Promise<readonly FailOutcome[]> {
    const now = Date.now();
    const prepared = await Promise.all(
      items.map(async (item) => {
        const found = await this.#lookup(item, true);
        if (found === NOT_HELD) return { item: null, known: null };
        const known = found;
        const error: AttemptError = {
          message: item.error.message,
          ...(item.error.name === undefined ? {} : { name: item.error.name }),
          ...(item.error.stack === undefined ? {} : { stack: item.error.stack }),
          attempt: (known?.attemptsMade ?? 0) + 1,
          at: now,
          ...(item.retry === false ? { reason: 'unrecoverable' as const } : {}),
        };
        let retryAt: number | null = null;
        if (known && item.retry !== false) {
          if (item.retryDelayMs !== undefined) {
            retryAt = known.attemptsMade + 1 < known.opts.attempts ? now + checkInteger(item.retryDelayMs, 'retryDelayMs', 0, Number.MAX_SAFE_INTEGER) : null;
          } else {
            try {
              retryAt = nextAttemptAt({ opts: known.opts, attemptsMade: known.attemptsMade + 1, error: new Error(item.error.message), now, job: { id: item.id, name: known.name }, strategies: undefined });
            } catch {
              // A named strategy lives in the worker's code, not here: the worker must say when.
              throw new ValidationError('INVALID_ARGUMENT', `job ${item.id} uses a custom backoff strategy; send retryDelayMs with its failure`, { details: { id: item.id } });
            }
          }
        }
        const remove = retryAt === null && known?.opts.removeOnFail === true;
        return { item: { id: item.id, token: item.token, error, retryAt, remove }, known };
      }),
    );
    const outcomes = await this.#applied(prepared, (list) => this.#store.failMany({ items: list, now }), { status: 'stale' } as const);
    outcomes.forEach((o, i) => {
      if (o.status !== 'applied') return;
      const known = prepared[i]!.known;
      // Finished, or it will run again (the next claim brings fresh attempt counts).
      this.#remembered.delete(items[i]!.token);
      if (o.state !== 'failed') return;
      const keep = known?.opts.removeOnFail;
      if (known && keep !== undefined && typeof keep !== 'boolean') this.#retention?.(known.queue, 'failed', keep);
    });
    return outcomes;
  }

  async extend(items: readonly { id: string; token: string }[], leaseMs: number): Promise<readonly ExtendOutcome[]> {
    checkInteger(leaseMs, 'leaseMs', 1000, 24 * 3600_000);
    return this.#store.extendLeases({ items, leaseMs, now: Date.now() });
  }

  async release(items: readonly { id: string; token: string }[]): Promise<readonly LeaseOutcome[]> {
    const outcomes = await this.#store.releaseMany({ items, now: Date.now() });
    for (const item of items) this.#remembered.delete(item.token);
    return outcomes;
  }

  #remember(job: ClaimedJob): void {
    if (this.#remembered.size >= REMEMBERED_MAX) {
      const oldest = this.#remembered.keys().next().value;
      if (oldest !== undefined) this.#remembered.delete(oldest);
    }
    this.#remembered.set(job.lease.token, { id: job.id, queue: job.queue, name: job.name, opts: job.opts, attemptsMade: job.attemptsMade });
  }

  /**
   * Runs `write` for the prepared items that have one, and answers `skipped` for the others
   * (items whose named queue's job is not leased with their token), in the callers' order.
   */
  async #applied<I, O>(prepared: ReadonlyArray<{ item: I | null }>, write: (items: I[]) => Awaitable<readonly O[]>, skipped: O): Promise<O[]> {
    const list = prepared.flatMap((p) => (p.item === null ? [] : [p.item]));
    const written = list.length === 0 ? [] : await write(list);
    let next = 0;
    return prepared.map((p) => (p.item === null ? skipped : written[next++]!));
  }

  /** The claimed job's options: remembered from our claim, else read (claimed through another server). */
  /**
   * Whether job `id` is in `queue` (for single-job endpoints, whose path names both): from
   * what this process remembers of its claims, else one read.
   */
  async inQueue(queue: string, id: string, token?: string): Promise<boolean> {
    const known = token === undefined ? undefined : this.#remembered.get(token);
    if (known && known.id === id) return known.queue === queue;
    return (await this.#store.getJob({ queue, id })) !== null;
  }

  /**
   * The options of the job an item's lease is on: remembered by token, else read from the
   * item's queue. NOT_HELD: the job of that id in that queue is not leased with this token
   * (a stale lease, or the wrong queue named); the item is answered stale without a write,
   * so a job of another queue with the same id is never acted on with these options.
   */
  async #lookup(item: { id: string; token: string; queue?: string | undefined }, need = false): Promise<Remembered | null | typeof NOT_HELD> {
    const known = this.#remembered.get(item.token);
    if (known && known.id === item.id) return item.queue === undefined || item.queue === known.queue ? known : NOT_HELD;
    if (item.queue === undefined) {
      // Claimed through another server (or before a restart): without the queue the job's
      // retry policy cannot be read, and guessing would fail a job that has attempts left.
      if (need) throw new ValidationError('INVALID_ARGUMENT', `job ${item.id}: send its queue with the failure (this server did not hand out its lease)`, { details: { id: item.id } });
      return null;
    }
    const record = await this.#store.getJob({ queue: item.queue, id: item.id });
    if (record === null) return null;
    if (record.lease?.token !== item.token) return NOT_HELD;
    return { id: record.id, queue: record.queue, name: record.name, opts: record.opts, attemptsMade: record.attemptsMade };
  }

  #waiter(queues: readonly string[]): { wait: (ms: number, signal?: AbortSignal) => Promise<void>; dispose: () => void } {
    this.#unsubscribe ??= this.#store.subscribe((s) => this.#onSignal(s));
    let wake: () => void = () => undefined;
    let woken = false;
    const entry = {
      queues,
      wake: () => {
        woken = true;
        wake();
      },
    };
    this.#waiters.add(entry);
    return {
      wait: (ms, signal) =>
        new Promise<void>((resolve) => {
          if (woken) return resolve();
          const timer = setTimeout(done, ms);
          function done(): void {
            clearTimeout(timer);
            signal?.removeEventListener('abort', done);
            resolve();
          }
          wake = done;
          signal?.addEventListener('abort', done, { once: true });
        }),
      dispose: () => {
        this.#waiters.delete(entry);
      },
    };
  }

  #onSignal(signal: StoreSignal): void {
    for (const w of this.#waiters) {
      if (signal.type === 'changed' || ((signal.type === 'enqueued' || signal.type === 'resumed') && w.queues.includes(signal.queue))) w.wake();
    }
    if (signal.type !== 'enqueued' && signal.type !== 'resumed' && signal.type !== 'changed') return;
    const work: WorkSignal = {
      seq: ++this.#workSeq,
      queue: signal.type === 'changed' ? null : signal.queue,
      runAt: signal.type === 'enqueued' ? signal.runAt : Date.now(),
    };
    this.#recent.push(work);
    if (this.#recent.length > RECENT_SIGNALS_MAX * 2) this.#recent = this.#recent.slice(-RECENT_SIGNALS_MAX);
    for (const w of this.#workWaiters) {
      if (work.queue === null || w.queues.includes(work.queue)) w.wake();
    }
  }
}

/** Throws JOB_NOT_FOUND/LEASE_LOST style errors for single-job endpoints. */
export function expectLease(outcome: { status: string }, id: string): void {
  if (outcome.status === 'applied') return;
  if (outcome.status === 'not_found') throw new ConveyorError('JOB_NOT_FOUND', `no job ${id}`, { details: { id } });
  throw new ConveyorError('LEASE_LOST', `the lease on job ${id} is no longer held (it expired and was recovered, finished, or was cancelled)`, { details: { id } });
}

