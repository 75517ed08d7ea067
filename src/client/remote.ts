/**
 * `Conveyor.connect({ server, apiKey })`: the library against a conveyor server instead of
 * a database. Workers are the library's own `Worker` over an `HttpWorkerBackend` (same
 * options, events, retries, heartbeats and shutdown); queues add jobs through the
 * producer endpoints. Administration stays with the server's admin API, the CLI or
 * `Conveyor.open` on the store; those queue methods throw `NOT_SUPPORTED` here.
 *
 * Why a separate entry point rather than `Conveyor.open({ url: 'http://…' })`: `open` hands
 * out the store itself (`cv.store`, migrations, transactions, every admin operation), which
 * a client of a server cannot honour. A distinct `RemoteConveyor` type says at compile
 * time what works over HTTP, and `CONVEYOR_URL` can never silently turn a database
 * process into an HTTP client.
 */
import { ConveyorError, ValidationError } from '../errors.ts';
import type { JobRecord } from '../job.ts';
import { checkDuration, checkInteger, checkJobName, normalizeJobOptions, rejectUnknownKeys, serializeJson, DEFAULT_MAX_PAYLOAD_BYTES, type JobOptions } from '../options.ts';
import { Job } from '../engine/job.ts';
import { checkQueueSetup, markDuplicate, prepareBulk, type BulkJob, type QueueOptions } from '../engine/queue.ts';
import { Worker, type Handler, type WorkerOptions } from '../engine/worker.ts';
import { closeOnSignals, type CloseOnSignalsOptions } from '../engine/signals-close.ts';
import { HttpClient } from './http.ts';
import { HttpWorkerBackend, MAX_WAIT_MS } from './http-backend.ts';

export interface ConnectOptions {
  /** URL of a conveyor server (`conveyor serve`), e.g. `http://127.0.0.1:8080`. */
  readonly server: string;
  /**
   * An API key (`conveyor keys create`), sent as `Authorization: Bearer …`. Workers need the
   * `consume` scope, `queue.add` the `produce` scope. Needed once the server has any key.
   */
  readonly apiKey?: string;
  /** Largest job data or result, as JSON bytes, checked before sending. Default 1 MiB (the server may allow less). */
  readonly maxPayloadBytes?: number;
  /** A request without an answer after this long fails with STORE_UNAVAILABLE. Default 30,000 ms. */
  readonly requestTimeoutMs?: number;
  /** How long an idle worker's wake-up wait stays open (one request per this period). Default 30,000 ms; 1,000-60,000. */
  readonly waitMs?: number;
}

const CONNECT_KEYS: Record<keyof ConnectOptions, true> = { server: true, apiKey: true, maxPayloadBytes: true, requestTimeoutMs: true, waitMs: true };

/** The server's lower bound for a lease. */
const MIN_REMOTE_LEASE_MS = 1000;

/** What `Conveyor.connect` returns: workers and producers over HTTP. */
export class RemoteConveyor {
  /** The server's base URL. */
  readonly server: string;
  readonly maxPayloadBytes: number;
  readonly #http: HttpClient;
  readonly #waitMs: number | undefined;
  readonly #queues = new Map<string, RemoteQueue<any, any>>();
  readonly #workers = new Set<Worker<any, any>>();
  #closing: Promise<void> | undefined;

  private constructor(http: HttpClient, maxPayloadBytes: number, waitMs: number | undefined) {
    this.#http = http;
    this.server = http.base;
    this.maxPayloadBytes = maxPayloadBytes;
    this.#waitMs = waitMs;
  }

  /**
   * Checks the server answers (`/health/live`), then returns a client. The API key is not
   * checked here: a wrong key fails the first call that needs it (`UNAUTHORIZED`), and a
   * worker reports it as an `'error'` event and backs off.
   */
  static async connect(options: ConnectOptions): Promise<RemoteConveyor> {
    if (typeof options !== 'object' || options === null) throw new ValidationError('INVALID_ARGUMENT', 'Conveyor.connect takes an options object: { server, apiKey }');
    rejectUnknownKeys(options, CONNECT_KEYS, 'Conveyor.connect options');
    const maxPayloadBytes = options.maxPayloadBytes === undefined ? DEFAULT_MAX_PAYLOAD_BYTES : checkInteger(options.maxPayloadBytes, 'maxPayloadBytes', 1, 512 * 1024 * 1024);
    const requestTimeoutMs = options.requestTimeoutMs === undefined ? undefined : checkDuration(options.requestTimeoutMs, 'requestTimeoutMs', 100);
    const waitMs = options.waitMs === undefined ? undefined : checkInteger(options.waitMs, 'waitMs', 1000, MAX_WAIT_MS);
    const http = new HttpClient({ server: options.server, apiKey: options.apiKey, requestTimeoutMs });
    await http.request('GET', '/health/live', undefined, { operation: 'connect' });
    return new RemoteConveyor(http, maxPayloadBytes, waitMs);
  }

  /** A queue to add jobs to over HTTP (one object per name). */
  queue<Data = unknown, Result = unknown>(name: string, options?: QueueOptions): RemoteQueue<Data, Result> {
    this.#assertOpen();
    let q = this.#queues.get(name);
    if (!q || options !== undefined) {
      q = new RemoteQueue<Data, Result>(name, options, { http: this.#http, maxPayloadBytes: this.maxPayloadBytes, assertOpen: () => this.#assertOpen() });
      this.#queues.set(name, q);
    }
    return q as RemoteQueue<Data, Result>;
  }

  /**
   * Starts a worker that claims from the server: the library's `Worker`, with the same
   * options and events as on a database. `leaseMs` must be at least 1,000 (the server's
   * lower bound). Stalled jobs are recovered by the server, so `stalled` events do not fire.
   */
  worker<Data = unknown, Result = unknown>(queues: string | readonly string[], handler: Handler<Data, Result>, options?: WorkerOptions): Worker<Data, Result> {
    this.#assertOpen();
    if (typeof options === 'object' && options !== null && options.leaseMs !== undefined && typeof options.leaseMs === 'number' && options.leaseMs < MIN_REMOTE_LEASE_MS) {
      throw new ValidationError('INVALID_ARGUMENT', `leaseMs must be at least ${MIN_REMOTE_LEASE_MS} for a worker over HTTP (got ${options.leaseMs})`);
    }
    const list = typeof queues === 'string' ? [queues] : Array.isArray(queues) ? [...(queues as readonly string[])] : [];
    const backend = new HttpWorkerBackend(this.#http, { queues: list, ...(this.#waitMs === undefined ? {} : { waitMs: this.#waitMs }) });
    const worker: Worker<Data, Result> = new Worker<Data, Result>(queues, handler, options, {
      backend,
      maxPayloadBytes: this.maxPayloadBytes,
      onClosed: () => {
        backend.close();
        this.#workers.delete(worker);
      },
    });
    this.#workers.add(worker);
    return worker;
  }

  /** Workers started from this client and not yet closed. */
  get workers(): ReadonlySet<Worker<any, any>> {
    return this.#workers;
  }

  /** Closes every worker gracefully (waiting up to `timeoutMs` for running jobs). */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#workers].map((w) => w.close(options)));
    })();
    return this.#closing;
  }

  /** As `Conveyor.closeOnSignals`: SIGTERM/SIGINT close gracefully, then exit. Returns a function that removes the handlers. */
  closeOnSignals(options: CloseOnSignalsOptions = {}): () => void {
    return closeOnSignals((o) => this.close(o), options);
  }

  #assertOpen(): void {
    if (this.#closing) throw new ConveyorError('CLOSED', 'this client is closed; connect again with Conveyor.connect()');
  }
}

interface RemoteQueueDeps {
  readonly http: HttpClient;
  readonly maxPayloadBytes: number;
  readonly assertOpen: () => void;
}

interface Added {
  readonly id: string;
  readonly queue: string;
  readonly name: string;
  readonly state: JobRecord['state'];
  /** true: a live job had this jobId and nothing was added (older servers omit it). */
  readonly duplicate?: boolean;
}

/** A job checked and serialized here, then sent as the producer endpoints take it. */
interface Prepared {
  readonly wire: string;
  readonly name: string;
  readonly data: string;
  readonly normalized: ReturnType<typeof normalizeJobOptions>;
}

/**
 * One queue over HTTP: `add` and `addBulk` go through the server's producer endpoints
 * (which group-commit concurrent adds and write a bulk atomically). Jobs are validated and
 * size-checked here first, with the library's messages, and again by the server.
 */
export class RemoteQueue<Data = unknown, Result = unknown> {
  readonly name: string;
  readonly defaultJobOptions: JobOptions | undefined;
  readonly #deps: RemoteQueueDeps;

  constructor(name: string, options: QueueOptions | undefined, deps: RemoteQueueDeps) {
    ({ name: this.name, defaultJobOptions: this.defaultJobOptions } = checkQueueSetup(name, options));
    this.#deps = deps;
  }

  /**
   * Adds one job; resolves once the server has stored it. With a `jobId` that is still live,
   * nothing is written and the existing job's id and state come back (the returned object
   * carries the data sent).
   */
  async add(name: string, data: Data, opts?: JobOptions): Promise<Job<Data, Result>> {
    this.#deps.assertOpen();
    const prepared = this.#prepare(name, data, opts);
    const added = await this.#deps.http.request<Added>('POST', `/api/v1/queues/${encodeURIComponent(this.name)}/jobs`, prepared.wire, { operation: 'add' });
    return this.#job(prepared, added);
  }

  /** Adds many jobs in one request, written atomically by the server: all, or none. */
  async addBulk(jobs: ReadonlyArray<BulkJob<Data>>): Promise<Array<Job<Data, Result>>> {
    this.#deps.assertOpen();
    const prepared = prepareBulk(jobs, (name, data: Data, opts) => this.#prepare(name, data, opts));
    if (prepared.length === 0) return [];
    const answer = await this.#deps.http.request<{ jobs: Added[] }>(
      'POST',
      `/api/v1/queues/${encodeURIComponent(this.name)}/jobs/bulk`,
      `{"jobs":[${prepared.map((p) => p.wire).join(',')}]}`,
      { operation: 'addBulk' },
    );
    return prepared.map((p, i) => this.#job(p, answer.jobs[i]!));
  }

  // Administration is the server's (admin API, CLI) or a Conveyor opened on the store.
  getJob(_id: string): Promise<never> {
    return this.#unsupported('getJob');
  }
  getJobs(): Promise<never> {
    return this.#unsupported('getJobs');
  }
  getCounts(): Promise<never> {
    return this.#unsupported('getCounts');
  }
  getJobCounts(): Promise<never> {
    return this.#unsupported('getJobCounts');
  }
  getJobLogs(): Promise<never> {
    return this.#unsupported('getJobLogs');
  }
  pause(): Promise<never> {
    return this.#unsupported('pause');
  }
  resume(): Promise<never> {
    return this.#unsupported('resume');
  }
  isPaused(): Promise<never> {
    return this.#unsupported('isPaused');
  }
  retryJob(): Promise<never> {
    return this.#unsupported('retryJob');
  }
  retryFailed(): Promise<never> {
    return this.#unsupported('retryFailed');
  }
  cancel(): Promise<never> {
    return this.#unsupported('cancel');
  }
  promote(): Promise<never> {
    return this.#unsupported('promote');
  }
  removeJob(): Promise<never> {
    return this.#unsupported('removeJob');
  }
  clean(): Promise<never> {
    return this.#unsupported('clean');
  }
  drain(): Promise<never> {
    return this.#unsupported('drain');
  }
  waitForResult(): Promise<never> {
    return this.#unsupported('waitForResult');
  }
  addInTransaction(): Promise<never> {
    return this.#unsupported('addInTransaction');
  }
  addBulkInTransaction(): Promise<never> {
    return this.#unsupported('addBulkInTransaction');
  }

  #unsupported(method: string): Promise<never> {
    return Promise.reject(
      new ConveyorError(
        'NOT_SUPPORTED',
        `queue.${method}() is not available on a client from Conveyor.connect(), which adds jobs and runs workers over HTTP; use the server's admin API (docs/http-api.md), the CLI, or Conveyor.open() on the store`,
        { details: { method } },
      ),
    );
  }

  #prepare(name: string, data: Data, opts: JobOptions | undefined): Prepared {
    checkJobName(name);
    // The library's validation, so mistakes fail here with its messages and nothing is sent.
    const normalized = normalizeJobOptions(opts, this.defaultJobOptions, Date.now());
    const text = serializeJson(data, this.#deps.maxPayloadBytes);
    const merged: Record<string, unknown> = this.defaultJobOptions ? { ...this.defaultJobOptions, ...opts } : { ...opts };
    // JSON has no dates; the server takes epoch ms. `delay` stays relative (to the server's clock).
    if (merged.runAt instanceof Date) merged.runAt = merged.runAt.getTime();
    const wireOpts = JSON.stringify(merged);
    const wire = `{"name":${JSON.stringify(name)},"data":${text}${wireOpts === '{}' ? '' : `,"opts":${wireOpts}`}}`;
    return { wire, name, data: text, normalized };
  }

  #job(p: Prepared, added: Added): Job<Data, Result> {
    const now = Date.now();
    const n = p.normalized;
    const record: JobRecord = {
      id: added.id,
      queue: this.name,
      name: added.name ?? p.name,
      data: p.data,
      opts: n.opts,
      state: added.state,
      priority: n.priority,
      attemptsMade: 0,
      maxAttempts: n.opts.attempts,
      stalls: 0,
      runAt: n.runAt,
      createdAt: now,
      startedAt: null,
      finishedAt: null,
      lease: null,
      progress: null,
      result: null,
      errors: [],
    };
    const job = new Job<Data, Result>(record);
    return added.duplicate === true ? markDuplicate(job) : job;
  }
}
