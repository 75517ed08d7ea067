/**
 * Group commit for adds. Concurrent `add` calls from one process are written by one
 * `enqueueMany`, so 64 adds in flight cost about one transaction instead of 64.
 *
 * A lone add is not delayed: the flush runs in a microtask, i.e. as soon as the code that
 * called `add` yields. Adds made in the same turn of the event loop (a `Promise.all`, a
 * loop of un-awaited adds, 64 concurrent requests resuming together) share the flush.
 * While an asynchronous store is still writing one batch, new adds collect for the next,
 * so slow round trips batch more, not less.
 */
import type { EnqueueResult, NewJob, Store } from '../store/contract.ts';

interface Pending {
  readonly job: NewJob;
  readonly resolve: (r: EnqueueResult) => void;
  readonly reject: (e: unknown) => void;
}

export class EnqueueBatcher {
  private pending: Pending[] = [];
  private scheduled = false;
  private inFlight = false;
  private readonly store: Store;
  private readonly maxBatch: number;

  constructor(store: Store, maxBatch = 1000) {
    this.store = store;
    this.maxBatch = maxBatch;
  }

  add(job: NewJob): Promise<EnqueueResult> {
    return new Promise<EnqueueResult>((resolve, reject) => {
      this.pending.push({ job, resolve, reject });
      if (!this.scheduled && !this.inFlight) {
        this.scheduled = true;
        queueMicrotask(() => this.flush());
      }
    });
  }

  private flush(): void {
    this.scheduled = false;
    if (this.pending.length === 0) return;
    const batch = this.pending.length <= this.maxBatch ? this.pending : this.pending.slice(0, this.maxBatch);
    this.pending = batch === this.pending ? [] : this.pending.slice(this.maxBatch);
    let out;
    try {
      out = this.store.enqueueMany({ jobs: batch.map((p) => p.job), now: Date.now() });
    } catch (err) {
      this.settle(batch, err, undefined);
      return;
    }
    if (isPromiseLike(out)) {
      this.inFlight = true;
      out.then(
        (results) => this.settle(batch, undefined, results),
        (err: unknown) => this.settle(batch, err, undefined),
      );
    } else {
      this.settle(batch, undefined, out);
    }
  }

  private settle(batch: readonly Pending[], err: unknown, results: readonly EnqueueResult[] | undefined): void {
    this.inFlight = false;
    for (let i = 0; i < batch.length; i++) {
      const p = batch[i]!;
      if (results) p.resolve(results[i]!);
      else p.reject(err);
    }
    if (this.pending.length > 0 && !this.scheduled) {
      this.scheduled = true;
      queueMicrotask(() => this.flush());
    }
  }
}

export function isPromiseLike<T>(value: T | PromiseLike<T>): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
