/**
 * Prometheus metrics for `/metrics`, built with prom-client on a registry of the server's
 * own. Counters and histograms come from the store's event log through the event feed,
 * so they count every worker's jobs (direct workers in other processes too), not only
 * the ones that passed through this server. Job-count gauges are read from the store
 * when scraped, at most once a second however many scrapers there are.
 *
 * Labels are bounded: queue names, states, event kinds, HTTP route templates. Never job
 * ids, key ids or raw URLs.
 */
import client from 'prom-client';
import { JOB_STATES } from '../job.ts';
import type { EventFeed } from '../engine/event-feed.ts';
import type { QueueInfo, Store, StoredEvent } from '../store/contract.ts';

const DURATION_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];
const WAIT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

export class ServerMetrics {
  readonly registry = new client.Registry();
  readonly contentType = client.Registry.PROMETHEUS_CONTENT_TYPE;
  readonly #store: Store;
  #queues: { at: number; value: Promise<readonly QueueInfo[]> } | undefined;
  #unsubscribe: (() => void) | undefined;

  readonly #jobs: client.Gauge<'queue' | 'state'>;
  readonly #paused: client.Gauge<'queue'>;
  readonly #added: client.Counter<'queue'>;
  readonly #completed: client.Counter<'queue'>;
  readonly #failed: client.Counter<'queue'>;
  readonly #retried: client.Counter<'queue'>;
  readonly #stalled: client.Counter<'queue'>;
  readonly #duration: client.Histogram<'queue' | 'outcome'>;
  readonly #wait: client.Histogram<'queue'>;
  readonly #http: client.Histogram<'route' | 'method' | 'status'>;
  readonly #storeLatency: client.Histogram<'operation'>;

  constructor(store: Store) {
    this.#store = store;
    const registers = [this.registry];
    const self = this;
    client.collectDefaultMetrics({ register: this.registry, prefix: 'conveyor_' });
    this.#jobs = new client.Gauge({
      name: 'conveyor_jobs',
      help: 'Jobs by queue and state, read from the store at scrape time',
      labelNames: ['queue', 'state'],
      registers,
      collect: async () => {
        const queues = await this.#readQueues();
        this.#jobs.reset();
        for (const q of queues) {
          for (const state of JOB_STATES) this.#jobs.set({ queue: q.name, state }, q.counts[state]);
        }
      },
    });
    // Its own collect (reading the same cached answer): gauges are collected concurrently,
    // so one may not fill in another's values in time for the same scrape.
    this.#paused = new client.Gauge({
      name: 'conveyor_queue_paused',
      help: '1 when the queue is paused',
      labelNames: ['queue'],
      registers,
      collect: async () => {
        const queues = await this.#readQueues();
        this.#paused.reset();
        for (const q of queues) this.#paused.set({ queue: q.name }, q.paused ? 1 : 0);
      },
    });
    new client.Gauge({
      name: 'conveyor_active_leases',
      help: 'Jobs currently leased by a worker (state active), all queues',
      registers,
      collect: async function (this: client.Gauge) {
        const queues = await self.#readQueues();
        this.set(queues.reduce((n, q) => n + q.counts.active, 0));
      },
    });
    this.#added = new client.Counter({ name: 'conveyor_jobs_added_total', help: 'Jobs added', labelNames: ['queue'], registers });
    this.#completed = new client.Counter({ name: 'conveyor_jobs_completed_total', help: 'Jobs completed', labelNames: ['queue'], registers });
    this.#failed = new client.Counter({ name: 'conveyor_jobs_failed_total', help: 'Jobs that failed for good (no attempts left, or unrecoverable)', labelNames: ['queue'], registers });
    this.#retried = new client.Counter({ name: 'conveyor_jobs_retried_total', help: 'Failed attempts that will be retried', labelNames: ['queue'], registers });
    this.#stalled = new client.Counter({ name: 'conveyor_jobs_stalled_total', help: 'Expired leases recovered (a worker died or hung)', labelNames: ['queue'], registers });
    this.#duration = new client.Histogram({ name: 'conveyor_job_duration_seconds', help: 'Processing time of finished attempts', labelNames: ['queue', 'outcome'], buckets: DURATION_BUCKETS, registers });
    this.#wait = new client.Histogram({ name: 'conveyor_job_wait_seconds', help: 'Time from due (added, or delay elapsed) to start', labelNames: ['queue'], buckets: WAIT_BUCKETS, registers });
    this.#http = new client.Histogram({ name: 'conveyor_http_request_duration_seconds', help: 'HTTP requests by route template', labelNames: ['route', 'method', 'status'], buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30], registers });
    this.#storeLatency = new client.Histogram({ name: 'conveyor_store_ping_seconds', help: 'Store round trip measured at each scrape', labelNames: ['operation'], buckets: [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 1], registers });
  }

  attach(feed: EventFeed): void {
    this.#unsubscribe?.();
    this.#unsubscribe = feed.subscribe((events) => this.#count(events));
  }

  observeRequest(route: string, method: string, status: number, seconds: number): void {
    this.#http.observe({ route, method, status: String(status) }, seconds);
  }

  async render(): Promise<string> {
    const t0 = performance.now();
    try {
      await this.#store.ping();
      this.#storeLatency.observe({ operation: 'ping' }, (performance.now() - t0) / 1000);
    } catch {
      // The jobs gauges below fail too and say so; the scrape still answers.
    }
    return this.registry.metrics();
  }

  #readQueues(): Promise<readonly QueueInfo[]> {
    const now = Date.now();
    if (!this.#queues || now - this.#queues.at > 1000) {
      this.#queues = { at: now, value: Promise.resolve(this.#store.listQueues()) };
      this.#queues.value.catch(() => {
        this.#queues = undefined;
      });
    }
    return this.#queues.value;
  }

  #count(events: readonly StoredEvent[]): void {
    for (const e of events) {
      const queue = e.queue;
      switch (e.type) {
        case 'added':
          this.#added.inc({ queue }, e.jobs.length);
          break;
        case 'active':
          for (const j of e.jobs) if (j.waitMs !== undefined) this.#wait.observe({ queue }, j.waitMs / 1000);
          break;
        case 'completed':
          this.#completed.inc({ queue }, e.jobs.length);
          for (const j of e.jobs) if (j.durationMs !== undefined) this.#duration.observe({ queue, outcome: 'completed' }, j.durationMs / 1000);
          break;
        case 'failed':
          for (const j of e.jobs) {
            if (j.state === 'failed') this.#failed.inc({ queue });
            else this.#retried.inc({ queue });
            if (j.durationMs !== undefined) this.#duration.observe({ queue, outcome: 'failed' }, j.durationMs / 1000);
          }
          break;
        case 'stalled':
          this.#stalled.inc({ queue }, e.jobs.length);
          for (const j of e.jobs) if (j.state === 'failed') this.#failed.inc({ queue });
          break;
        default:
          break;
      }
    }
  }
}
