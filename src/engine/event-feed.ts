/**
 * The live event feed: reads the store's event log in order and hands each new event to
 * subscribers (the server's event stream and its metrics), once, in seq order.
 *
 * Reading is driven by store signals (a job added, finished, a queue paused) with a poll
 * behind them that backs off from `minPollMs` to `maxPollMs` while nothing happens, so
 * an idle server costs a few statements a minute, and a busy one reads in batches.
 *
 * Gaps: in a store with concurrent writers (PostgreSQL) an event may commit after one with
 * a higher seq, and a rolled-back transaction leaves a seq that never appears. The feed
 * delivers only the contiguous prefix; when it meets a gap it waits up to `gapWaitMs` for
 * it to fill, then moves past it. So a live reader skips an event only when its
 * transaction committed more than `gapWaitMs` after a later one (a job added inside a
 * user's long transaction); the event itself stays in the log, and job state, not
 * events, stays the source of truth.
 */
import type { Store, StoredEvent } from '../store/contract.ts';

export interface EventFeedOptions {
  readonly minPollMs?: number;
  readonly maxPollMs?: number;
  readonly gapWaitMs?: number;
  readonly batch?: number;
  /** Called with read errors (the feed retries with backoff). */
  readonly onError?: (err: unknown) => void;
}

export type EventListener = (events: readonly StoredEvent[]) => void;

export class EventFeed {
  readonly #store: Store;
  readonly #minPollMs: number;
  readonly #maxPollMs: number;
  readonly #gapWaitMs: number;
  readonly #batch: number;
  readonly #onError: ((err: unknown) => void) | undefined;
  readonly #listeners = new Set<EventListener>();
  /** Every event with seq ≤ this has been delivered or skipped. */
  #mark = 0;
  #started: Promise<void> | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pollMs: number;
  #reading = false;
  #again = false;
  #closed = false;
  #gapSince: number | undefined;
  #unsubscribe: (() => void) | undefined;
  /** Epoch ms of the last successful read, for health. */
  lastReadAt: number | null = null;

  constructor(store: Store, options: EventFeedOptions = {}) {
    this.#store = store;
    this.#minPollMs = options.minPollMs ?? 100;
    this.#maxPollMs = options.maxPollMs ?? 5000;
    this.#gapWaitMs = options.gapWaitMs ?? 3000;
    this.#batch = options.batch ?? 1000;
    this.#onError = options.onError;
    this.#pollMs = this.#minPollMs;
  }

  /** Starts at the log's current end: only events appended from now on are delivered live. */
  start(): Promise<void> {
    this.#started ??= (async () => {
      this.#mark = await this.#store.lastEventSeq();
      this.#unsubscribe = this.#store.subscribe(() => this.poke());
      this.#schedule(0);
    })();
    return this.#started;
  }

  /** The seq up to which events have been delivered: a new reader catches up to here. */
  get mark(): number {
    return this.#mark;
  }

  subscribe(listener: EventListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Something changed: read soon, and poll fast for a while. */
  poke(): void {
    this.#pollMs = this.#minPollMs;
    if (this.#reading) this.#again = true;
    else this.#schedule(0);
  }

  /** Events after `after` up to the feed's mark (what a reconnecting reader missed), oldest first. */
  async history(after: number, limit: number): Promise<readonly StoredEvent[]> {
    const mark = this.#mark;
    if (after >= mark) return [];
    const events = await this.#store.readEvents({ after, limit });
    return events.filter((e) => e.seq <= mark);
  }

  close(): void {
    this.#closed = true;
    this.#unsubscribe?.();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#listeners.clear();
  }

  #schedule(ms: number): void {
    if (this.#closed) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#read();
    }, ms);
    this.#timer.unref?.();
  }

  async #read(): Promise<void> {
    if (this.#closed || this.#reading) return;
    this.#reading = true;
    let delivered = 0;
    try {
      for (;;) {
        const events = await this.#store.readEvents({ after: this.#mark, limit: this.#batch });
        this.lastReadAt = Date.now();
        const ready = this.#contiguous(events);
        if (ready.length > 0) {
          this.#mark = ready[ready.length - 1]!.seq;
          delivered += ready.length;
          for (const l of this.#listeners) {
            try {
              l(ready);
            } catch (err) {
              this.#onError?.(err);
            }
          }
        }
        if (ready.length < this.#batch || this.#closed) break;
      }
      this.#pollMs = delivered > 0 || this.#again ? this.#minPollMs : Math.min(this.#maxPollMs, this.#pollMs * 2);
    } catch (err) {
      this.#onError?.(err);
      this.#pollMs = Math.min(this.#maxPollMs, Math.max(this.#pollMs * 2, 1000));
    } finally {
      this.#reading = false;
    }
    const again = this.#again;
    this.#again = false;
    // While a gap is open, look again soon: it fills (or times out) within gapWaitMs.
    this.#schedule(again ? 0 : this.#gapSince !== undefined ? Math.min(this.#pollMs, 50) : this.#pollMs);
  }

  /** The events that can be delivered now: up to the first gap, or past it once it has waited long enough. */
  #contiguous(events: readonly StoredEvent[]): readonly StoredEvent[] {
    let expected = this.#mark + 1;
    let i = 0;
    for (; i < events.length; i++) {
      const e = events[i]!;
      if (e.seq !== expected) {
        const now = Date.now();
        this.#gapSince ??= now;
        if (now - this.#gapSince < this.#gapWaitMs) break;
        // Waited long enough: the missing seq was rolled back, or commits too late for live readers.
        this.#gapSince = now;
      }
      expected = e.seq + 1;
    }
    if (i === events.length) this.#gapSince = undefined;
    return i === events.length ? events : events.slice(0, i);
  }
}
