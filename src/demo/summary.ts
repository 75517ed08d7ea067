/**
 * The demo's live summary: per queue, jobs done (counted from the workers' events, since
 * the demo's retention deletes old finished jobs) and what is waiting, delayed or failed
 * (from the store's counts), plus the completion rate since the previous line.
 */
import type { QueueInfo } from '../store/contract.ts';

export const DEMO_QUEUES = ['orders', 'payments', 'notifications'] as const;

export interface QueueTally {
  completed: number;
  /** Attempts that failed and will be retried. */
  retried: number;
  /** Jobs that failed for good. */
  failed: number;
}

export class Tally {
  readonly byQueue = new Map<string, QueueTally>(DEMO_QUEUES.map((q) => [q, { completed: 0, retried: 0, failed: 0 }]));
  #lastCompleted = 0;
  #lastAt: number;
  /** When the first job completed (ms since the epoch), or null. */
  firstCompletedAt: number | null = null;

  constructor(now = Date.now()) {
    this.#lastAt = now;
  }

  #of(queue: string): QueueTally {
    let t = this.byQueue.get(queue);
    if (t === undefined) {
      t = { completed: 0, retried: 0, failed: 0 };
      this.byQueue.set(queue, t);
    }
    return t;
  }

  completed(queue: string): void {
    this.#of(queue).completed++;
    this.firstCompletedAt ??= Date.now();
  }

  failed(queue: string, willRetry: boolean): void {
    if (willRetry) this.#of(queue).retried++;
    else this.#of(queue).failed++;
  }

  get totalCompleted(): number {
    let n = 0;
    for (const t of this.byQueue.values()) n += t.completed;
    return n;
  }

  /** Completions per second since the previous call. */
  rate(now = Date.now()): number {
    const total = this.totalCompleted;
    const r = ((total - this.#lastCompleted) * 1000) / Math.max(1, now - this.#lastAt);
    this.#lastCompleted = total;
    this.#lastAt = now;
    return r;
  }
}

function n(value: number): string {
  return value.toLocaleString('en-US');
}

/**
 * `orders 240 done · payments 231 done, 4 delayed, 3 failed · notifications 410 done, 38 delayed · 61.2 completed/s`
 */
export function summaryLine(tally: Tally, counts: readonly QueueInfo[], perSecond: number): string {
  const byName = new Map(counts.map((q) => [q.name, q.counts]));
  const parts: string[] = [];
  for (const [queue, t] of tally.byQueue) {
    const c = byName.get(queue);
    const bits = [`${n(t.completed)} done`];
    if (c !== undefined) {
      const queued = c.waiting + c.active;
      if (queued > 0) bits.push(`${n(queued)} queued`);
      if (c.delayed > 0) bits.push(`${n(c.delayed)} delayed`);
    }
    if (t.retried > 0) bits.push(`${n(t.retried)} retried`);
    if (t.failed > 0) bits.push(`${n(t.failed)} failed`);
    parts.push(`${queue} ${bits.join(', ')}`);
  }
  const r = !Number.isFinite(perSecond) || perSecond <= 0 ? '0' : perSecond < 100 ? perSecond.toFixed(1) : n(Math.round(perSecond));
  return `${parts.join(' │ ')} │ ${r} completed/s`;
}
