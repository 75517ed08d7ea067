/**
 * Batches a worker's acknowledgements. Completions and failures that happen in the same
 * turn of the event loop are written by one `completeMany` and one `failMany`, so a worker
 * finishing 50 jobs at once costs two store calls, not 100.
 *
 * A failed flush (store down, busy past its limit) keeps the items and tries again with
 * backoff: an acknowledgement is never dropped while the worker lives. If the worker dies
 * first, the leases expire and the jobs run again (at-least-once).
 */
import type { CompleteItem, FailItem, FailOutcome, LeaseOutcome, WorkerBackend } from '../store/contract.ts';
import { isPromiseLike } from './enqueue-batcher.ts';

/** `Meta` travels beside each item (the job object, the thrown error) for the callbacks; stores never see it. */
export interface AckCallbacks<Meta> {
  onCompleted(item: CompleteItem, meta: Meta, outcome: LeaseOutcome): void;
  onFailed(item: FailItem, meta: Meta, outcome: FailOutcome): void;
  onError(err: unknown): void;
}

const MAX_RETRY_DELAY_MS = 5000;

export class AckBatcher<Meta> {
  private completes: CompleteItem[] = [];
  private completeMeta: Meta[] = [];
  private fails: FailItem[] = [];
  private failMeta: Meta[] = [];
  private scheduled: ReturnType<typeof setImmediate> | ReturnType<typeof setTimeout> | undefined;
  private flushing: Promise<void> | undefined;
  private failures = 0;
  private idleWaiters: Array<() => void> = [];
  private readonly backend: WorkerBackend;
  private readonly callbacks: AckCallbacks<Meta>;

  constructor(backend: WorkerBackend, callbacks: AckCallbacks<Meta>) {
    this.backend = backend;
    this.callbacks = callbacks;
  }

  get size(): number {
    return this.completes.length + this.fails.length;
  }

  complete(item: CompleteItem, meta: Meta): void {
    this.completes.push(item);
    this.completeMeta.push(meta);
    this.schedule();
  }

  fail(item: FailItem, meta: Meta): void {
    this.fails.push(item);
    this.failMeta.push(meta);
    this.schedule();
  }

  /** Resolves once everything queued so far has been written (or the worker gives up on it). */
  async drain(): Promise<void> {
    while (this.size > 0 || this.flushing) {
      if (this.scheduled === undefined && !this.flushing) this.flushNow();
      await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    }
  }

  private schedule(): void {
    if (this.scheduled !== undefined || this.flushing) return;
    this.scheduled = setImmediate(() => this.flushNow());
  }

  /** Writes what is queued now instead of at the end of this turn of the event loop. */
  flushNow(): void {
    if (this.scheduled !== undefined) {
      clearImmediate(this.scheduled as ReturnType<typeof setImmediate>);
      clearTimeout(this.scheduled as ReturnType<typeof setTimeout>);
    }
    this.scheduled = undefined;
    if (this.flushing || this.size === 0) {
      this.wakeIdle();
      return;
    }
    const completes = this.completes;
    const completeMeta = this.completeMeta;
    const fails = this.fails;
    const failMeta = this.failMeta;
    this.completes = [];
    this.completeMeta = [];
    this.fails = [];
    this.failMeta = [];
    this.flushing = this.write(completes, completeMeta, fails, failMeta).then(
      () => {
        this.failures = 0;
        this.afterFlush();
      },
      (err: unknown) => {
        // Put them back in front, in order, and try again later.
        this.completes = completes.concat(this.completes);
        this.completeMeta = completeMeta.concat(this.completeMeta);
        this.fails = fails.concat(this.fails);
        this.failMeta = failMeta.concat(this.failMeta);
        this.failures++;
        this.callbacks.onError(err);
        this.afterFlush(Math.min(MAX_RETRY_DELAY_MS, 50 * 2 ** this.failures));
      },
    );
  }

  private afterFlush(retryDelayMs?: number): void {
    this.flushing = undefined;
    if (this.size > 0) {
      this.scheduled = retryDelayMs ? setTimeout(() => this.flushNow(), retryDelayMs) : setImmediate(() => this.flushNow());
    }
    this.wakeIdle();
  }

  private wakeIdle(): void {
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private async write(completes: CompleteItem[], completeMeta: Meta[], fails: FailItem[], failMeta: Meta[]): Promise<void> {
    const now = Date.now();
    if (completes.length > 0) {
      const r = this.backend.completeMany({ items: completes, now });
      const outcomes = isPromiseLike(r) ? await r : r;
      for (let i = 0; i < completes.length; i++) this.callbacks.onCompleted(completes[i]!, completeMeta[i]!, outcomes[i]!);
    }
    if (fails.length > 0) {
      try {
        const r = this.backend.failMany({ items: fails, now });
        const outcomes = isPromiseLike(r) ? await r : r;
        for (let i = 0; i < fails.length; i++) this.callbacks.onFailed(fails[i]!, failMeta[i]!, outcomes[i]!);
      } catch (err) {
        // The completions above are written; only the failures go back for another try.
        completes.length = 0;
        completeMeta.length = 0;
        throw err;
      }
    }
  }
}
