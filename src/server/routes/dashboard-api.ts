/**
 * API endpoints added for the dashboard (issue 7), public and documented like the rest:
 *
 * - `GET /api/v1/whoami`: who the presented key is and what it may do, so a client (the
 *   dashboard) can hide actions a read-only key cannot take. Answers without a key when
 *   the server needs none.
 * - `GET /api/v1/stats`: throughput per minute (completed, failed, retried, stalled,
 *   added) and wait/processing-time percentiles per queue over the last hour, aggregated
 *   in memory from the store's event log: on start the server reads back what the log still
 *   holds (one hour by default), then counts the live feed. Cheap to ask for (no store
 *   read), so a dashboard may refresh it whenever events arrive.
 * - `GET /api/v1/queues/:queue/search`: jobs whose data contains a text, scanning a bounded
 *   number of jobs per request (newest first) and answering with a cursor to scan on. No
 *   store has an index on payloads, so this is a scan by design: it never holds a lock or
 *   reads more than `scan` jobs per call.
 */
import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../../errors.ts';
import { JOB_STATES, type JobState } from '../../job.ts';
import { checkQueueName } from '../../options.ts';
import { API_SCOPES, type StoredEvent } from '../../store/contract.ts';
import type { ServerContext } from '../server.ts';
import { jobView, queueParam } from '../views.ts';

const MINUTE = 60_000;
/** Minutes kept per queue (the chart shows the last hour). */
const WINDOW_MINUTES = 60;
/** Histogram bucket upper bounds in ms: 1 ms to ~2.3 h, each 1.5 × the last (percentiles within ±25 %). */
const BOUNDS: readonly number[] = (() => {
  const b: number[] = [];
  for (let v = 1; v < 8_640_000; v *= 1.5) b.push(Math.round(v * 1000) / 1000);
  b.push(Number.POSITIVE_INFINITY);
  return b;
})();

function bucketOf(ms: number): number {
  // Binary search: the first bound ≥ ms.
  let lo = 0;
  let hi = BOUNDS.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (BOUNDS[mid]! >= ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

interface Minute {
  readonly start: number;
  completed: number;
  failed: number;
  retried: number;
  stalled: number;
  added: number;
  readonly wait: Uint32Array;
  readonly duration: Uint32Array;
}

export interface Percentiles {
  readonly count: number;
  readonly p50: number | null;
  readonly p90: number | null;
  readonly p99: number | null;
  readonly max: number | null;
}

function percentiles(hist: Uint32Array, maxSeen: number | null): Percentiles {
  let count = 0;
  for (const n of hist) count += n;
  if (count === 0) return { count, p50: null, p90: null, p99: null, max: null };
  const at = (q: number): number => {
    const rank = Math.ceil(q * count);
    let seen = 0;
    for (let i = 0; i < hist.length; i++) {
      seen += hist[i]!;
      if (seen >= rank) {
        const bound = BOUNDS[i]!;
        return Number.isFinite(bound) ? Math.min(bound, maxSeen ?? bound) : (maxSeen ?? BOUNDS[i - 1]!);
      }
    }
    return maxSeen ?? 0;
  };
  return { count, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: maxSeen };
}

class QueueStats {
  readonly minutes = new Map<number, Minute>();
  /** Largest wait and duration per minute, for an honest `max`. */
  readonly maxWait = new Map<number, number>();
  readonly maxDuration = new Map<number, number>();

  minute(at: number): Minute {
    const start = at - (at % MINUTE);
    let m = this.minutes.get(start);
    if (m === undefined) {
      m = { start, completed: 0, failed: 0, retried: 0, stalled: 0, added: 0, wait: new Uint32Array(BOUNDS.length), duration: new Uint32Array(BOUNDS.length) };
      this.minutes.set(start, m);
    }
    return m;
  }

  prune(oldest: number): void {
    for (const start of this.minutes.keys()) {
      if (start < oldest) {
        this.minutes.delete(start);
        this.maxWait.delete(start);
        this.maxDuration.delete(start);
      }
    }
  }
}

/**
 * Per-minute counters and latency histograms per queue, from the event log. Every event is
 * counted once: the read-back of the log stops where the live feed began, and the live
 * feed skips what the read-back already counted.
 */
export class ThroughputStats {
  readonly #queues = new Map<string, QueueStats>();
  /** Highest seq counted by the read-back. */
  #backfilledTo = 0;
  /** First seq counted live. */
  #firstLive: number | undefined;
  #backfill: Promise<void> | undefined;
  #complete = false;
  #closed = false;
  /** Oldest event time seen by the read-back (what the numbers cover). */
  #coveredFrom: number | null = null;

  /** Counts live events from the feed. */
  onLive(events: readonly StoredEvent[]): void {
    for (const e of events) {
      if (e.seq <= this.#backfilledTo) continue;
      this.#firstLive ??= e.seq;
      this.#count(e);
    }
  }

  /** Reads back the log (at most the last hour of it), once, in pages, without blocking requests. */
  backfill(read: (after: number, limit: number) => Promise<readonly StoredEvent[]>, now = Date.now()): Promise<void> {
    this.#backfill ??= (async () => {
      const oldest = now - WINDOW_MINUTES * MINUTE - MINUTE;
      let after = 0;
      try {
        for (;;) {
          if (this.#closed) return;
          const page = await read(after, 1000);
          for (const e of page) {
            if (this.#firstLive !== undefined && e.seq >= this.#firstLive) {
              this.#complete = true;
              return;
            }
            after = e.seq;
            this.#backfilledTo = e.seq;
            if (e.at < oldest) continue;
            this.#coveredFrom ??= e.at;
            this.#count(e);
          }
          if (page.length < 1000) break;
          // Let requests in between pages of a long log.
          await new Promise((resolve) => setImmediate(resolve));
        }
        this.#complete = true;
      } catch {
        // The store closed or failed: the live numbers still count; `complete` stays false.
      }
    })();
    return this.#backfill;
  }

  close(): void {
    this.#closed = true;
  }

  #queue(name: string): QueueStats {
    let q = this.#queues.get(name);
    if (q === undefined) {
      q = new QueueStats();
      this.#queues.set(name, q);
    }
    return q;
  }

  #count(e: StoredEvent): void {
    const q = this.#queue(e.queue);
    switch (e.type) {
      case 'added': {
        q.minute(e.at).added += e.jobs.length;
        break;
      }
      case 'active': {
        const m = q.minute(e.at);
        let max = q.maxWait.get(m.start) ?? 0;
        for (const j of e.jobs) {
          if (j.waitMs === undefined) continue;
          const w = Math.max(0, j.waitMs);
          m.wait[bucketOf(w)]!++;
          if (w > max) max = w;
        }
        q.maxWait.set(m.start, max);
        break;
      }
      case 'completed':
      case 'failed': {
        const m = q.minute(e.at);
        let max = q.maxDuration.get(m.start) ?? 0;
        for (const j of e.jobs) {
          if (e.type === 'completed') m.completed++;
          else if (j.state === 'failed') m.failed++;
          else m.retried++;
          if (j.durationMs !== undefined) {
            const d = Math.max(0, j.durationMs);
            m.duration[bucketOf(d)]!++;
            if (d > max) max = d;
          }
        }
        q.maxDuration.set(m.start, max);
        break;
      }
      case 'stalled': {
        const m = q.minute(e.at);
        m.stalled += e.jobs.length;
        for (const j of e.jobs) if (j.state === 'failed') m.failed++;
        break;
      }
      default:
        break;
    }
  }

  /** The last `minutes` minutes (the current one last), per queue and for all queues together. */
  snapshot(params: { minutes: number; recentMinutes: number; queues: ReadonlySet<string> | null; now?: number }): Record<string, unknown> {
    const now = params.now ?? Date.now();
    const current = now - (now % MINUTE);
    const first = current - (params.minutes - 1) * MINUTE;
    const recentFrom = current - (params.recentMinutes - 1) * MINUTE;
    for (const q of this.#queues.values()) q.prune(current - WINDOW_MINUTES * MINUTE);
    const starts = Array.from({ length: params.minutes }, (_, i) => first + i * MINUTE);
    const series = () => ({ completed: new Array<number>(params.minutes).fill(0), failed: new Array<number>(params.minutes).fill(0), retried: new Array<number>(params.minutes).fill(0), stalled: new Array<number>(params.minutes).fill(0), added: new Array<number>(params.minutes).fill(0) });
    const allSeries = series();
    const allHists = { wait: new Uint32Array(BOUNDS.length), duration: new Uint32Array(BOUNDS.length), recentWait: new Uint32Array(BOUNDS.length) };
    const allMax = { wait: null as number | null, duration: null as number | null, recentWait: null as number | null };
    const queues: Record<string, unknown>[] = [];
    const names = [...this.#queues.keys()].filter((n) => params.queues === null || params.queues.has(n)).sort();
    for (const name of names) {
      const q = this.#queues.get(name)!;
      const s = series();
      const wait = new Uint32Array(BOUNDS.length);
      const duration = new Uint32Array(BOUNDS.length);
      const recentWait = new Uint32Array(BOUNDS.length);
      let maxWait: number | null = null;
      let maxDuration: number | null = null;
      let maxRecentWait: number | null = null;
      for (const m of q.minutes.values()) {
        if (m.start < first || m.start > current) continue;
        const i = (m.start - first) / MINUTE;
        for (const k of ['completed', 'failed', 'retried', 'stalled', 'added'] as const) {
          s[k][i] = m[k];
          allSeries[k][i]! += m[k];
        }
        for (let b = 0; b < BOUNDS.length; b++) {
          wait[b]! += m.wait[b]!;
          duration[b]! += m.duration[b]!;
          allHists.wait[b]! += m.wait[b]!;
          allHists.duration[b]! += m.duration[b]!;
          if (m.start >= recentFrom) {
            recentWait[b]! += m.wait[b]!;
            allHists.recentWait[b]! += m.wait[b]!;
          }
        }
        const mw = q.maxWait.get(m.start);
        if (mw !== undefined) {
          maxWait = Math.max(maxWait ?? 0, mw);
          allMax.wait = Math.max(allMax.wait ?? 0, mw);
          if (m.start >= recentFrom) {
            maxRecentWait = Math.max(maxRecentWait ?? 0, mw);
            allMax.recentWait = Math.max(allMax.recentWait ?? 0, mw);
          }
        }
        const md = q.maxDuration.get(m.start);
        if (md !== undefined) {
          maxDuration = Math.max(maxDuration ?? 0, md);
          allMax.duration = Math.max(allMax.duration ?? 0, md);
        }
      }
      queues.push({
        queue: name,
        ...s,
        waitMs: percentiles(wait, maxWait),
        recentWaitMs: percentiles(recentWait, maxRecentWait),
        durationMs: percentiles(duration, maxDuration),
      });
    }
    return {
      now,
      minuteMs: MINUTE,
      minutes: starts,
      recentMinutes: params.recentMinutes,
      complete: this.#complete,
      coveredFrom: this.#coveredFrom,
      all: {
        ...allSeries,
        waitMs: percentiles(allHists.wait, allMax.wait),
        recentWaitMs: percentiles(allHists.recentWait, allMax.recentWait),
        durationMs: percentiles(allHists.duration, allMax.duration),
      },
      queues,
    };
  }
}

const DEFAULT_SCAN = 2000;
const MAX_SCAN = 20_000;

export function registerDashboardApiRoutes(app: FastifyInstance, ctx: ServerContext): void {
  // ---- whoami

  app.get(
    '/api/v1/whoami',
    {
      config: { scope: 'public' },
      schema: {
        tags: ['auth'],
        summary: 'The presented API key and its scopes',
        description:
          'Answers `{ authRequired, keyId, name, scopes }`. When the server needs no key, `keyId` is null and `scopes` lists every scope (anything is allowed). When it does, a missing or invalid key is a 401 like on any other route.',
      },
    },
    async (request, reply) => {
      const authRequired = await ctx.authRequired();
      const header = request.headers.authorization;
      const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
      // Without auth every request may do anything, whatever key it carries.
      if (!authRequired) return { authRequired, keyId: null, name: null, scopes: [...API_SCOPES] };
      if (match === null) {
        reply.header('www-authenticate', 'Bearer');
        throw new ConveyorError('UNAUTHORIZED', 'this server needs an API key: send `Authorization: Bearer <key>` (create one with `conveyor keys create`)');
      }
      const record = await ctx.keys.verify(match[1]!);
      const scopes = record.scopes.includes('admin') ? [...API_SCOPES] : [...record.scopes];
      return { authRequired, keyId: record.id, name: record.name, scopes };
    },
  );

  // ---- stats

  const stats = new ThroughputStats();
  const unsubscribe = ctx.feed.subscribe((events) => stats.onLive(events));
  app.addHook('onReady', async () => {
    // In the background: a server with a long log answers requests while it reads back.
    void stats.backfill(async (after, limit) => ctx.conveyor.store.readEvents({ after, limit }));
  });
  app.addHook('onClose', async () => {
    stats.close();
    unsubscribe();
  });

  app.get<{ Querystring: { minutes?: number; recentMinutes?: number; queues?: string } }>(
    '/api/v1/stats',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['admin'],
        summary: 'Throughput per minute and wait/processing-time percentiles per queue, over the last hour',
        description:
          'Counted from the event log (every worker, direct or remote), kept in memory for 60 minutes. `minutes` lists the start of each minute (the current one last); each queue has per-minute `completed`, `failed` (for good), `retried` (failed attempts that will run again), `stalled` and `added`, and `waitMs` (due to start), `recentWaitMs` (the last `recentMinutes`) and `durationMs` (processing) percentiles in ms, approximate within ±25 %. `complete` is false while the server is still reading back the log after a start, or when the log could not be read.',
        querystring: {
          type: 'object',
          properties: {
            minutes: { type: 'integer', minimum: 1, maximum: WINDOW_MINUTES, default: WINDOW_MINUTES },
            recentMinutes: { type: 'integer', minimum: 1, maximum: WINDOW_MINUTES, default: 5 },
            queues: { type: 'string', maxLength: 10_000 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const q = request.query;
      const filter = q.queues ? new Set(q.queues.split(',').map((s) => s.trim()).filter((s) => s !== '')) : null;
      return stats.snapshot({ minutes: q.minutes ?? WINDOW_MINUTES, recentMinutes: q.recentMinutes ?? 5, queues: filter });
    },
  );

  // ---- search by data

  app.get<{ Params: { queue: string }; Querystring: { q: string; state?: string; cursor?: string; scan?: number; limit?: number } }>(
    '/api/v1/queues/:queue/search',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['admin'],
        summary: 'Jobs whose data, name or id contains a text (case-insensitive), scanning at most `scan` jobs per call',
        description:
          'Scans jobs newest first (of `state`, one or comma-separated, default all) and answers the matches among them with `scanned` and `nextCursor`: pass the cursor back to scan on. A call stops at `limit` matches or `scan` scanned jobs, whichever comes first, so it costs a bounded read however large the queue. The text is matched against the job\'s data as stored JSON text.',
        params: queueParam,
        querystring: {
          type: 'object',
          properties: {
            q: { type: 'string', minLength: 1, maxLength: 500 },
            state: { type: 'string' },
            cursor: { type: 'string', maxLength: 200 },
            scan: { type: 'integer', minimum: 1, maximum: MAX_SCAN, default: DEFAULT_SCAN },
            limit: { type: 'integer', minimum: 1, maximum: 200, default: 50 },
          },
          required: ['q'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { queue } = request.params;
      checkQueueName(queue);
      const query = request.query;
      const states = (query.state ?? JOB_STATES.join(',')).split(',').map((s) => s.trim()) as JobState[];
      for (const s of states) {
        if (!JOB_STATES.includes(s)) throw new ConveyorError('INVALID_ARGUMENT', `unknown state '${s}'; states are ${JOB_STATES.join(', ')}`);
      }
      const known = await ctx.conveyor.store.listQueues();
      if (!known.some((k) => k.name === queue)) throw new ConveyorError('NOT_FOUND', `no queue named '${queue}'`, { details: { queue } });
      const needle = query.q.toLowerCase();
      const scanLimit = query.scan ?? DEFAULT_SCAN;
      const want = query.limit ?? 50;
      const matches: Record<string, unknown>[] = [];
      let scanned = 0;
      let cursor: string | null = query.cursor ?? null;
      let first = true;
      while (scanned < scanLimit && matches.length < want && (first || cursor !== null)) {
        first = false;
        const page = await ctx.conveyor.store.listJobs({ queue, states, limit: Math.min(500, scanLimit - scanned), order: 'desc', ...(cursor === null ? {} : { cursor }) });
        // A page may hold more matches than wanted: stop inside it, and resume after the last job looked at.
        let stoppedAt = -1;
        for (let i = 0; i < page.jobs.length; i++) {
          const job = page.jobs[i]!;
          scanned++;
          if ((job.data ?? '').toLowerCase().includes(needle) || job.name.toLowerCase().includes(needle) || job.id.toLowerCase() === needle) {
            matches.push(jobView(job));
            if (matches.length >= want && i < page.jobs.length - 1) {
              stoppedAt = i;
              break;
            }
          }
        }
        if (stoppedAt >= 0) {
          // Re-page from the start of this page, up to the match: the next call continues after it.
          const upTo = await ctx.conveyor.store.listJobs({ queue, states, limit: stoppedAt + 1, order: 'desc', ...(cursor === null ? {} : { cursor }) });
          cursor = upTo.nextCursor;
          break;
        }
        cursor = page.nextCursor;
      }
      return { jobs: matches, scanned, nextCursor: cursor };
    },
  );
}
