/**
 * `Conveyor`: the entry point. Owns one Store, hands out queues and workers bound to it,
 * and closes them all in order (workers first, so their acknowledgements land, then the store).
 */
import { ConveyorError, ValidationError } from '../errors.ts';
import type { RetentionOption } from '../job.ts';
import { checkDuration, checkInteger, rejectUnknownKeys, DEFAULT_MAX_PAYLOAD_BYTES } from '../options.ts';
import type { Store } from '../store/contract.ts';
import { openStore } from '../store/open.ts';
import { EnqueueBatcher } from './enqueue-batcher.ts';
import { Queue, type QueueOptions } from './queue.ts';
import { Worker, type Handler, type WorkerOptions } from './worker.ts';
import { closeOnSignals, type CloseOnSignalsOptions } from './signals-close.ts';
import { RemoteConveyor, type ConnectOptions } from '../client/remote.ts';

export interface ConveyorOptions {
  /** Where jobs live. Default: `CONVEYOR_URL`, else the embedded SQLite file `.conveyor/conveyor.db`. */
  readonly url?: string;
  /** Use this store instead of opening one from `url` (custom stores, tests). */
  readonly store?: Store;
  /** `normal` (default): an acknowledged add survives a crash of any process. `full`: also a power loss (fsync per commit). */
  readonly durability?: 'normal' | 'full';
  /** How long to wait for other processes' locks before failing with STORE_BUSY. Default 30,000 ms. */
  readonly busyTimeoutMs?: number;
  /** Largest job data, result or progress value, as JSON bytes. Default 1 MiB. */
  readonly maxPayloadBytes?: number;
  /**
   * Create or upgrade the store's schema on open (default true). With false, the schema
   * must already be current (run `conveyor migrate`), else open fails with STORE_SCHEMA.
   * The embedded SQLite store always migrates its own file.
   */
  readonly migrate?: boolean;
  /**
   * When concurrent `add`s are written together (group commit). `microtask` (default): as
   * soon as the adding code yields, so a lone add waits for nothing, and adds made in one
   * go (a loop, a `Promise.all`) share one write. `tick`: once per turn of the event loop,
   * so adds from separate I/O callbacks share the write as well: use it in a web server
   * that adds a job per request (`conveyor serve` does), where each request would
   * otherwise commit alone. Costs at most one event-loop turn of latency per add.
   */
  readonly groupCommit?: 'microtask' | 'tick';
}

const OPTION_KEYS: Record<keyof ConveyorOptions, true> = { url: true, store: true, durability: true, busyTimeoutMs: true, maxPayloadBytes: true, migrate: true, groupCommit: true };

/** Retention (count/age) runs at most this often per queue and state. */
const RETENTION_INTERVAL_MS = 1000;

export class Conveyor {
  readonly store: Store;
  readonly maxPayloadBytes: number;
  readonly #batcher: EnqueueBatcher;
  readonly #queues = new Map<string, Queue<any, any>>();
  readonly #workers = new Set<Worker<any, any>>();
  readonly #retentionRuns = new Map<string, number>();
  #closing: Promise<void> | undefined;

  private constructor(store: Store, maxPayloadBytes: number, groupCommit: 'microtask' | 'tick') {
    this.store = store;
    this.maxPayloadBytes = maxPayloadBytes;
    this.#batcher = new EnqueueBatcher(store, { flushOn: groupCommit });
  }

  /** Opens (and migrates) the store and returns a ready Conveyor. */
  static async open(options: ConveyorOptions = {}): Promise<Conveyor> {
    if (typeof options !== 'object' || options === null) throw new ValidationError('INVALID_ARGUMENT', 'Conveyor.open takes an options object');
    rejectUnknownKeys(options, OPTION_KEYS, 'Conveyor.open options');
    if (options.durability !== undefined && options.durability !== 'normal' && options.durability !== 'full') {
      throw new ValidationError('INVALID_ARGUMENT', `durability must be 'normal' or 'full', got ${JSON.stringify(options.durability)}`);
    }
    const maxPayloadBytes = options.maxPayloadBytes === undefined ? DEFAULT_MAX_PAYLOAD_BYTES : checkInteger(options.maxPayloadBytes, 'maxPayloadBytes', 1, 512 * 1024 * 1024);
    const busyTimeoutMs = options.busyTimeoutMs === undefined ? undefined : checkDuration(options.busyTimeoutMs, 'busyTimeoutMs');
    const groupCommit = options.groupCommit ?? 'microtask';
    if (groupCommit !== 'microtask' && groupCommit !== 'tick') throw new ValidationError('INVALID_ARGUMENT', `groupCommit must be 'microtask' or 'tick', got ${JSON.stringify(options.groupCommit)}`);
    const store = options.store ?? openStore({ url: options.url, durability: options.durability, busyTimeoutMs });
    try {
      if (options.migrate === false) await store.checkSchema?.();
      else await store.migrate();
    } catch (err) {
      // A failed open must not leave a connection pool or file handle behind.
      if (!options.store) await Promise.resolve(store.close()).catch(() => undefined);
      throw err;
    }
    return new Conveyor(store, maxPayloadBytes, groupCommit);
  }

  /**
   * Connects to a conveyor server (`conveyor serve`) instead of opening a store: workers
   * (`.worker(...)`, unchanged) claim and acknowledge over HTTP, `.queue(name).add/addBulk`
   * go through the producer endpoints, and no database credentials are needed. See
   * docs/guide.md, "Workers over HTTP".
   */
  static connect(options: ConnectOptions): Promise<RemoteConveyor> {
    return RemoteConveyor.connect(options);
  }

  /** The queue with this name (one object per name and Conveyor). */
  queue<Data = unknown, Result = unknown>(name: string, options?: QueueOptions): Queue<Data, Result> {
    this.#assertOpen();
    let q = this.#queues.get(name);
    if (!q || options !== undefined) {
      q = new Queue<Data, Result>(name, options, {
        store: this.store,
        batcher: this.#batcher,
        maxPayloadBytes: this.maxPayloadBytes,
        assertOpen: () => this.#assertOpen(),
      });
      this.#queues.set(name, q);
    }
    return q as Queue<Data, Result>;
  }

  /** Starts a worker on one or more queues. It runs until `worker.close()` or `conveyor.close()`. */
  worker<Data = unknown, Result = unknown>(queues: string | readonly string[], handler: Handler<Data, Result>, options?: WorkerOptions): Worker<Data, Result> {
    this.#assertOpen();
    const worker: Worker<Data, Result> = new Worker<Data, Result>(queues, handler, options, {
      backend: this.store,
      maxPayloadBytes: this.maxPayloadBytes,
      onClosed: () => this.#workers.delete(worker),
      retention: (queue, state, policy) => this.#applyRetention(queue, state, policy),
    });
    this.#workers.add(worker);
    return worker;
  }

  /** Workers started from this Conveyor and not yet closed. */
  get workers(): ReadonlySet<Worker<any, any>> {
    return this.#workers;
  }

  /** Closes every worker gracefully (waiting up to `timeoutMs` for running jobs), then the store. */
  close(options: { timeoutMs?: number } = {}): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#workers].map((w) => w.close(options)));
      await this.store.close();
    })();
    return this.#closing;
  }

  /**
   * Wires SIGTERM and SIGINT to a graceful `close()`, then exits with code 0 (or 1 if closing
   * failed). A second signal exits at once. Returns a function that removes the handlers.
   */
  closeOnSignals(options: CloseOnSignalsOptions = {}): () => void {
    return closeOnSignals((o) => this.close(o), options);
  }

  /**
   * @internal The retention hook in-process workers use, for workers served over HTTP by
   * the server (src/engine/lease-service.ts): one throttle for both.
   */
  get retentionHook(): (queue: string, state: 'completed' | 'failed', policy: Exclude<RetentionOption, boolean>) => void {
    return (queue, state, policy) => this.#applyRetention(queue, state, policy);
  }

  #assertOpen(): void {
    if (this.#closing) throw new ConveyorError('CLOSED', 'this Conveyor is closed; open a new one with Conveyor.open()');
  }

  #applyRetention(queue: string, state: 'completed' | 'failed', policy: Exclude<RetentionOption, boolean>): void {
    const key = `${state}\u0000${queue}`;
    const now = Date.now();
    if ((this.#retentionRuns.get(key) ?? 0) > now - RETENTION_INTERVAL_MS || this.#closing) return;
    this.#retentionRuns.set(key, now);
    const keep = typeof policy === 'number' ? policy : policy.count;
    const age = typeof policy === 'number' ? undefined : policy.age;
    Promise.resolve(
      this.store.clean({
        queue,
        state,
        limit: 10_000,
        ...(keep === undefined ? {} : { keep }),
        ...(age === undefined ? {} : { olderThan: now - age * 1000 }),
      }),
    ).catch(() => {
      // Retention is best effort; the next completion tries again.
      this.#retentionRuns.delete(key);
    });
  }
}
