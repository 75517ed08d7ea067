/**
 * The server's housekeeping loop, independent of any worker being alive: expired leases of
 * every queue go back to `waiting` (remote workers that vanished leave their jobs leased),
 * old events and vanished workers' registry rows are pruned. Each tick is a handful of
 * statements; `lastRunAt` and `lastError` feed the readiness check.
 */
import type { Store } from '../store/contract.ts';

export interface MaintenanceOptions {
  /** Time between ticks. Default 5,000 ms. */
  readonly intervalMs?: number;
  /** Stalls a job may have before it fails (as the worker option `maxStalls`). Default 1. */
  readonly maxStalls?: number;
  /** Events older than this are deleted. Default one hour. */
  readonly eventRetentionMs?: number;
  /** Registry rows of workers silent for this long are deleted. Default 5 minutes. */
  readonly workerTimeoutMs?: number;
  readonly onError?: (err: unknown) => void;
  /** Called with each recovered job batch (for logs). */
  readonly onRecovered?: (count: number) => void;
}

export class Maintenance {
  readonly #store: Store;
  readonly intervalMs: number;
  readonly #maxStalls: number;
  readonly eventRetentionMs: number;
  readonly workerTimeoutMs: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #onRecovered: ((count: number) => void) | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #running: Promise<void> | undefined;
  #closed = false;
  lastRunAt: number | null = null;
  lastError: string | null = null;

  constructor(store: Store, options: MaintenanceOptions = {}) {
    this.#store = store;
    this.intervalMs = options.intervalMs ?? 5000;
    this.#maxStalls = options.maxStalls ?? 1;
    this.eventRetentionMs = options.eventRetentionMs ?? 3600_000;
    this.workerTimeoutMs = options.workerTimeoutMs ?? 300_000;
    this.#onError = options.onError;
    this.#onRecovered = options.onRecovered;
  }

  start(): void {
    this.#schedule(0);
  }

  /** Alive when the last tick succeeded within three intervals. */
  healthy(now = Date.now()): boolean {
    return this.lastRunAt !== null && now - this.lastRunAt < this.intervalMs * 3 + 1000 && this.lastError === null;
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    await this.#running;
  }

  /** One tick: recover, prune. Public for tests and `conveyor clean`-like commands. */
  async tick(now = Date.now()): Promise<void> {
    try {
      for (;;) {
        const recovered = await this.#store.recoverStalled({ maxStalls: this.#maxStalls, limit: 1000, now });
        if (recovered.length > 0) this.#onRecovered?.(recovered.length);
        if (recovered.length < 1000) break;
      }
      while ((await this.#store.pruneEvents({ before: now - this.eventRetentionMs, limit: 10_000 })) === 10_000) {
        if (this.#closed) break;
      }
      await this.#store.pruneWorkers({ before: now - this.workerTimeoutMs });
      this.lastRunAt = Date.now();
      this.lastError = null;
    } catch (err) {
      this.lastError = err instanceof Error ? err.message : String(err);
      this.#onError?.(err);
    }
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#running = this.tick().finally(() => {
        this.#running = undefined;
        this.#schedule(this.intervalMs);
      });
    }, ms);
    this.#timer.unref?.();
  }
}
