/**
 * `WorkerBackend` over a conveyor server's remote-worker API, so the library's `Worker`
 * runs unchanged against a server instead of a database (see docs/guide.md, "Workers over
 * HTTP"). One backend per worker.
 *
 *   claim          POST /api/v1/claim (waitMs 0; the worker decides when to claim)
 *   completeMany   POST /api/v1/leases/complete
 *   failMany       POST /api/v1/leases/fail      (the worker's retry decision as retryDelayMs)
 *   extendLeases   POST /api/v1/leases/extend
 *   releaseMany    POST /api/v1/leases/release
 *   updateProgress POST /api/v1/queues/:q/jobs/:id/progress   (409 → stale, 404 → not_found)
 *   addLogs        POST /api/v1/queues/:q/jobs/:id/logs
 *   recoverStalled nothing: the server's maintenance loop recovers expired leases
 *   subscribe      a loop of POST /api/v1/wait (below)
 *   reportWorker   POST /api/v1/workers/report;  removeWorker  DELETE /api/v1/workers/:id
 *
 * Wake-ups. While the worker listens, one long wait (`waitMs`, default 30 s) is open at a
 * time; the server answers it as soon as a store signal says one of the worker's queues
 * may have jobs, and the backend passes that on as an `enqueued` (or `changed`) signal.
 * Each answer carries a cursor that the next wait sends back, so a signal arriving between
 * two waits is answered at once rather than lost. After a wake-up for a job that is due
 * now, the loop pauses until one of the worker's claims comes back short of its limit
 * (the worker has drained what there was and sleeps again): a busy worker claims as its
 * handlers finish and needs no wake-ups, so it costs no wait requests at all. So an idle
 * worker costs one wait per `waitMs` (plus its safety-net claim and registry report) and a
 * busy one nothing extra per job. `signalsReliable()` is true while the loop is connected,
 * which keeps the worker's safety-net poll long.
 */
import { ConveyorError } from '../errors.ts';
import type { AttemptError, JobLogEntry, StoredJobOptions } from '../job.ts';
import type {
  AddLogsParams,
  ClaimedJob,
  ClaimParams,
  ClaimResult,
  CompleteParams,
  ExtendOutcome,
  ExtendParams,
  FailOutcome,
  FailParams,
  JobWriteOutcome,
  LeaseOutcome,
  LeaseRef,
  ProgressParams,
  RecoveredJob,
  StoreSignal,
  WorkerBackend,
  WorkerInfo,
} from '../store/contract.ts';
import type { HttpClient } from './http.ts';

/** Default length of one wake-up wait. Below common proxy idle timeouts (60 s). */
export const DEFAULT_WAIT_MS = 30_000;
/** The server's limit for one wait. */
export const MAX_WAIT_MS = 60_000;
/** The server's limit on items per batch request. */
const MAX_ITEMS = 1000;
/** The server's limits on error fields and log lines (longer ones are cut, not refused). */
const MAX_ERROR_MESSAGE = 10_000;
const MAX_ERROR_NAME = 200;
const MAX_ERROR_STACK = 100_000;
const MAX_LOG_LINE = 100_000;
/** Longest pause between failed wake-up waits (200 ms doubling, jittered). */
const MAX_WAIT_BACKOFF_MS = 10_000;
/** Claimed jobs remembered for acknowledgements (their queue and attempt counts). */
const REMEMBERED_MAX = 100_000;

const APPLIED: LeaseOutcome = Object.freeze({ status: 'applied' as const });
const STALE: LeaseOutcome & FailOutcome & ExtendOutcome = Object.freeze({ status: 'stale' as const });

/** A claimed job as the server sends it (src/server/views.ts `claimedView`). */
interface WireClaimedJob {
  readonly id: string;
  readonly queue: string;
  readonly name: string;
  readonly data: unknown;
  readonly opts: StoredJobOptions;
  readonly priority: number;
  readonly attempt: number;
  readonly maxAttempts: number;
  readonly runAt: number;
  readonly createdAt: number;
  readonly progress: unknown;
  readonly lease: { readonly token: string; readonly expiresAt: number };
}

interface WireResults {
  readonly results: ReadonlyArray<{ readonly id: string; readonly status: string; readonly state?: string; readonly expiresAt?: number }>;
}

interface WaitAnswer {
  readonly ready: boolean;
  readonly cursor: string;
  readonly queue?: string | null;
  readonly delayMs?: number;
}

interface Claimed {
  readonly queue: string;
  readonly attemptsMade: number;
  readonly attempts: number;
}

export interface HttpWorkerBackendOptions {
  /** The worker's queues, for wake-up waits. Default: learned from its first claim. */
  readonly queues?: readonly string[];
  /** Length of one wake-up wait, 1,000-60,000 ms. Default 30,000. */
  readonly waitMs?: number;
}

export class HttpWorkerBackend implements WorkerBackend {
  readonly #http: HttpClient;
  readonly #waitMs: number;
  #queues: readonly string[] | undefined;
  /** Jobs this worker claimed and has not finished with: queue and attempts, for failures. */
  readonly #claimed = new Map<string, Claimed>();
  readonly #listeners = new Set<(signal: StoreSignal) => void>();
  /** The wake-up loop, while anyone listens. */
  #loop: AbortController | undefined;
  #connected = false;
  /** Paused after a wake-up until a claim comes back short (see the file comment). */
  #parked = false;
  #unpark: (() => void) | undefined;
  #closed = false;
  /** Counters for tests and diagnostics. */
  readonly stats = { waits: 0, wakeups: 0 };

  constructor(http: HttpClient, options: HttpWorkerBackendOptions = {}) {
    this.#http = http;
    this.#waitMs = Math.min(MAX_WAIT_MS, Math.max(1000, Math.round(options.waitMs ?? DEFAULT_WAIT_MS)));
    if (options.queues !== undefined && options.queues.length > 0) this.#queues = [...options.queues];
  }

  // ------------------------------------------------------------------ claiming

  async claim(params: ClaimParams): Promise<ClaimResult> {
    this.#learnQueues(params.queues);
    const answer = await this.#http.request<{ jobs: WireClaimedJob[]; nextRunAt?: number | null }>(
      'POST',
      '/api/v1/claim',
      { queues: params.queues, limit: params.limit, leaseMs: params.leaseMs, waitMs: 0, workerId: params.workerId },
      { operation: 'claim' },
    );
    const now = Date.now();
    const jobs = answer.jobs.map((j) => toClaimedJob(j, params.workerId, now));
    for (const job of jobs) this.#remember(job);
    // Short of the limit: the worker has taken what there was and now sleeps until a signal.
    if (jobs.length < params.limit) this.#wakeLoop();
    return { jobs, nextRunAt: typeof answer.nextRunAt === 'number' ? answer.nextRunAt : null };
  }

  // ----------------------------------------------------------- acknowledgement

  async completeMany(params: CompleteParams): Promise<readonly LeaseOutcome[]> {
    const out: LeaseOutcome[] = [];
    for (let i = 0; i < params.items.length; i += MAX_ITEMS) {
      const chunk = params.items.slice(i, i + MAX_ITEMS);
      // The result is JSON text already (the worker serialized and size-checked it): splice it in.
      const items = chunk.map((item) => {
        const queue = this.#claimed.get(item.id)?.queue;
        return `{"id":${JSON.stringify(item.id)},"token":${JSON.stringify(item.token)}${queue === undefined ? '' : `,"queue":${JSON.stringify(queue)}`}${item.result === null ? '' : `,"result":${item.result}`},"remove":${item.remove ? 'true' : 'false'}}`;
      });
      const answer = await this.#http.request<WireResults>('POST', '/api/v1/leases/complete', `{"items":[${items.join(',')}]}`, { operation: 'complete' });
      for (const r of answer.results) out.push(r.status === 'applied' ? APPLIED : STALE);
    }
    // Applied or refused, this attempt is over.
    for (const item of params.items) this.#claimed.delete(item.id);
    return out;
  }

  async failMany(params: FailParams): Promise<readonly FailOutcome[]> {
    const out: FailOutcome[] = [];
    for (let i = 0; i < params.items.length; i += MAX_ITEMS) {
      const now = Date.now();
      const items = params.items.slice(i, i + MAX_ITEMS).map((item) => {
        const known = this.#claimed.get(item.id);
        const base = { id: item.id, token: item.token, ...(known === undefined ? {} : { queue: known.queue }), error: wireError(item.error) };
        // The worker decided: retry at retryAt (sent as a delay, so the two clocks need not agree) …
        if (item.retryAt !== null) return { ...base, retryDelayMs: Math.max(0, Math.round(item.retryAt - now)) };
        // … or no retry. With its attempts used up the server's count (the same this claim
        // carried) ends the job too, and the error is not marked unrecoverable.
        if (known !== undefined && item.error.reason !== 'unrecoverable' && known.attemptsMade + 1 >= known.attempts) return { ...base, retryDelayMs: 0 };
        return { ...base, retry: false };
      });
      const answer = await this.#http.request<WireResults>('POST', '/api/v1/leases/fail', { items }, { operation: 'fail' });
      for (const r of answer.results) {
        out.push(r.status === 'applied' && (r.state === 'waiting' || r.state === 'delayed' || r.state === 'failed') ? { status: 'applied', state: r.state } : STALE);
      }
    }
    for (const item of params.items) this.#claimed.delete(item.id);
    return out;
  }

  async extendLeases(params: ExtendParams): Promise<readonly ExtendOutcome[]> {
    const out: ExtendOutcome[] = [];
    for (let i = 0; i < params.items.length; i += MAX_ITEMS) {
      const chunk = params.items.slice(i, i + MAX_ITEMS);
      const answer = await this.#http.request<WireResults>(
        'POST',
        '/api/v1/leases/extend',
        { items: chunk.map((r) => ({ id: r.id, token: r.token })), leaseMs: params.leaseMs },
        { operation: 'extendLeases' },
      );
      answer.results.forEach((r, k) => {
        if (r.status === 'applied' && typeof r.expiresAt === 'number') out.push({ status: 'applied', expiresAt: r.expiresAt });
        else {
          out.push(STALE);
          this.#claimed.delete(chunk[k]!.id);
        }
      });
    }
    return out;
  }

  async releaseMany(params: { readonly items: readonly LeaseRef[]; readonly now: number }): Promise<readonly LeaseOutcome[]> {
    const out: LeaseOutcome[] = [];
    for (let i = 0; i < params.items.length; i += MAX_ITEMS) {
      const chunk = params.items.slice(i, i + MAX_ITEMS);
      const answer = await this.#http.request<WireResults>('POST', '/api/v1/leases/release', { items: chunk.map((r) => ({ id: r.id, token: r.token })) }, { operation: 'release' });
      for (const r of answer.results) out.push(r.status === 'applied' ? APPLIED : STALE);
    }
    for (const item of params.items) this.#claimed.delete(item.id);
    return out;
  }

  /** The server's maintenance loop recovers expired leases of every queue; a remote worker has nothing to do. */
  recoverStalled(): readonly RecoveredJob[] {
    return [];
  }

  async updateProgress(params: ProgressParams): Promise<JobWriteOutcome> {
    const token = requireToken(params.token, 'progress');
    return this.#jobWrite(params.queue, params.id, 'progress', `{"token":${JSON.stringify(token)},"progress":${params.progress}}`);
  }

  async addLogs(params: AddLogsParams): Promise<JobWriteOutcome> {
    const token = requireToken(params.token, 'logs');
    if (params.entries.length === 0) return APPLIED;
    let outcome: JobWriteOutcome = APPLIED;
    for (let i = 0; i < params.entries.length && outcome.status === 'applied'; i += MAX_ITEMS) {
      const messages = params.entries.slice(i, i + MAX_ITEMS).map((e: JobLogEntry) => cut(e.message, MAX_LOG_LINE));
      outcome = await this.#jobWrite(params.queue, params.id, 'logs', { token, messages });
    }
    return outcome;
  }

  async #jobWrite(queue: string, id: string, what: 'progress' | 'logs', body: unknown): Promise<JobWriteOutcome> {
    try {
      await this.#http.request('POST', `/api/v1/queues/${encodeURIComponent(queue)}/jobs/${encodeURIComponent(id)}/${what}`, body, { operation: what === 'progress' ? 'updateProgress' : 'addLogs' });
      return APPLIED;
    } catch (err) {
      if (err instanceof ConveyorError && err.code === 'LEASE_LOST') return STALE;
      if (err instanceof ConveyorError && err.code === 'JOB_NOT_FOUND') return { status: 'not_found' };
      throw err;
    }
  }

  // ------------------------------------------------------------ worker registry

  /** The worker's registry report (the worker calls it every 15 s); the server records it as `remote`. */
  async reportWorker(info: WorkerInfo): Promise<void> {
    this.#learnQueues(info.queues);
    await this.#http.request(
      'POST',
      '/api/v1/workers/report',
      {
        id: info.id,
        host: info.host,
        pid: info.pid,
        queues: info.queues,
        concurrency: info.concurrency,
        active: info.active,
        startedAt: info.startedAt,
        lastClaimAt: info.lastClaimAt,
      },
      { operation: 'reportWorker' },
    );
  }

  async removeWorker(params: { readonly id: string }): Promise<void> {
    await this.#http.request('DELETE', `/api/v1/workers/${encodeURIComponent(params.id)}`, undefined, { operation: 'removeWorker' });
  }

  // ------------------------------------------------------------------- signals

  subscribe(listener: (signal: StoreSignal) => void): () => void {
    this.#listeners.add(listener);
    this.#startLoop();
    return () => {
      this.#listeners.delete(listener);
      if (this.#listeners.size === 0) this.#stopLoop();
    };
  }

  /** True while the wake-up loop is connected: every job signalled to the server reaches this worker. */
  signalsReliable(): boolean {
    return this.#connected;
  }

  /** Stops the wake-up loop for good (the worker closed). */
  close(): void {
    this.#closed = true;
    this.#listeners.clear();
    this.#stopLoop();
  }

  #learnQueues(queues: readonly string[]): void {
    if (this.#queues !== undefined || queues.length === 0) return;
    this.#queues = [...queues];
    this.#startLoop();
  }

  #startLoop(): void {
    if (this.#loop !== undefined || this.#closed || this.#listeners.size === 0 || this.#queues === undefined) return;
    const controller = new AbortController();
    this.#loop = controller;
    void this.#run(this.#queues, controller.signal);
  }

  #stopLoop(): void {
    this.#loop?.abort();
    this.#loop = undefined;
    this.#connected = false;
    this.#unpark?.();
  }

  #wakeLoop(): void {
    this.#parked = false;
    this.#unpark?.();
  }

  #emit(signal: StoreSignal): void {
    for (const listener of [...this.#listeners]) {
      try {
        listener(signal);
      } catch {
        // A listener's fault is its own; the loop goes on.
      }
    }
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    // Contract of signalsReliable(): say `changed` when the answer changes, so an idle worker
    // re-checks (on connecting: claims once, covering anything added before the first cursor).
    this.#emit({ type: 'changed' });
  }

  async #run(queues: readonly string[], abort: AbortSignal): Promise<void> {
    let cursor: string | undefined;
    let failures = 0;
    while (!abort.aborted) {
      if (this.#parked) {
        await this.#parkedFor(this.#waitMs, abort);
        this.#parked = false;
        if (abort.aborted) return;
      }
      let answer: WaitAnswer;
      try {
        this.stats.waits++;
        answer = await this.#http.request<WaitAnswer>(
          'POST',
          '/api/v1/wait',
          cursor === undefined ? { queues, waitMs: 0 } : { queues, waitMs: this.#waitMs, cursor },
          { operation: 'wait', timeoutMs: this.#waitMs + 15_000, signal: abort },
        );
      } catch {
        if (abort.aborted) return;
        // The claim path reports the same failure to the worker; here only back off. A new
        // cursor is needed (the server may have restarted), and claiming once on reconnect
        // covers the gap.
        cursor = undefined;
        failures++;
        this.#setConnected(false);
        await sleep(Math.min(MAX_WAIT_BACKOFF_MS, 200 * 2 ** Math.min(failures, 10)) * (0.75 + Math.random() / 2), abort);
        continue;
      }
      if (abort.aborted) return;
      failures = 0;
      cursor = answer.cursor;
      this.#setConnected(true);
      if (!answer.ready) continue;
      this.stats.wakeups++;
      const delayMs = typeof answer.delayMs === 'number' && answer.delayMs > 0 ? answer.delayMs : 0;
      // Due now: the worker claims; wait again once a claim comes back short. Due later: the
      // worker only sets a timer, so keep listening.
      if (delayMs === 0) this.#parked = true;
      const queue = answer.queue;
      this.#emit(typeof queue === 'string' ? { type: 'enqueued', queue, runAt: Date.now() + delayMs } : { type: 'changed' });
    }
  }

  /** Resolves when a short claim unparks the loop, after `ms` at most (a safety net), or on abort. */
  #parkedFor(ms: number, abort: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        abort.removeEventListener('abort', done);
        if (this.#unpark === done) this.#unpark = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      abort.addEventListener('abort', done, { once: true });
      this.#unpark = done;
      if (!this.#parked) done();
    });
  }

  #remember(job: ClaimedJob): void {
    if (this.#claimed.size >= REMEMBERED_MAX) {
      const oldest = this.#claimed.keys().next().value;
      if (oldest !== undefined) this.#claimed.delete(oldest);
    }
    this.#claimed.set(job.id, { queue: job.queue, attemptsMade: job.attemptsMade, attempts: job.opts.attempts });
  }
}

/** A claimed job as the worker expects it from a store: JSON fields as text, the lease with its owner. */
function toClaimedJob(j: WireClaimedJob, owner: string, now: number): ClaimedJob {
  return {
    id: j.id,
    queue: j.queue,
    name: j.name,
    data: JSON.stringify(j.data ?? null),
    opts: j.opts,
    state: 'active',
    priority: j.priority,
    attemptsMade: j.attempt - 1,
    maxAttempts: j.maxAttempts,
    // Not sent with a claim: stalls and earlier attempts' errors are in the job's detail (admin API).
    stalls: 0,
    runAt: j.runAt,
    createdAt: j.createdAt,
    startedAt: now,
    finishedAt: null,
    lease: { owner, token: j.lease.token, expiresAt: j.lease.expiresAt },
    progress: j.progress === null || j.progress === undefined ? null : JSON.stringify(j.progress),
    result: null,
    errors: [],
  };
}

function wireError(error: AttemptError): { message: string; name?: string; stack?: string } {
  return {
    message: cut(error.message, MAX_ERROR_MESSAGE),
    ...(error.name === undefined ? {} : { name: cut(error.name, MAX_ERROR_NAME) }),
    ...(error.stack === undefined ? {} : { stack: cut(error.stack, MAX_ERROR_STACK) }),
  };
}

function cut(text: string, max: number): string {
  return text.length <= max ? text : `${text.slice(0, max - 1)}…`;
}

function requireToken(token: string | undefined, what: string): string {
  if (token === undefined) {
    throw new ConveyorError('NOT_SUPPORTED', `over HTTP, ${what} can be written only by the worker holding the job's lease`);
  }
  return token;
}

function sleep(ms: number, abort: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer);
      abort.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    abort.addEventListener('abort', done, { once: true });
  });
}
