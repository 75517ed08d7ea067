/**
 * Change signals for `subscribe`, within this process and across processes.
 *
 * Local: every write returns the signals it caused; the store hands them to `emit` once
 * the write's statement has committed (each write is one autocommit statement, so "the
 * statement answered" means "committed"). A failed write emits nothing.
 *
 * Remote, sending: the same signals are published with `pg_notify` on a channel named
 * after the schema, by the Notifier, AFTER the write committed, in a statement of its own.
 * Why not inside the write's transaction? A transaction that has sent NOTIFY holds a
 * database-wide lock from its pre-commit until its commit is flushed, which serialises
 * the commits of every notifying transaction in the database behind each other's WAL
 * flush. The notify-only statement instead runs with `synchronous_commit = off`, so that
 * lock is held for microseconds, and it is off the caller's critical path (the write's
 * promise resolves first). Listeners still only hear committed work; a crash between the
 * commit and the notify loses a hint, which the workers' safety-net poll covers (signals
 * are hints, never the source of truth). Signals of one turn of the event loop are
 * coalesced into as few payloads as fit in NOTIFY's 8000-byte limit, one statement.
 *
 * Remote, receiving: a dedicated connection (not from the pool) runs LISTEN while anyone
 * subscribes. It is opened lazily by the first subscriber and closed a few seconds after
 * the last one leaves (so a burst of short subscriptions, e.g. `waitForResult` calls,
 * reuses it). If it drops, it reconnects with jittered exponential backoff, and after
 * every (re)connect emits `changed`, so receivers re-check whatever they may have missed
 * while not listening. Payloads carry the sending store's random origin id, so a store
 * ignores the echo of its own notifications (its local listeners already heard them).
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import type { JobState } from '../../job.ts';
import type { StoreSignal } from '../../store/contract.ts';
import { clientConfig, type ConnectionOptions, type Database } from './connection.ts';
import { quoteIdent } from './context.ts';

type Listener = (signal: StoreSignal) => void;

/** NOTIFY payloads must be shorter than 8000 bytes; stay well below. */
const MAX_PAYLOAD_BYTES = 7000;
/** How long the LISTEN connection outlives its last subscriber. */
const LISTEN_LINGER_MS = 5000;
const RECONNECT_START_MS = 100;
const RECONNECT_MAX_MS = 5000;
const JOB_STATES: ReadonlySet<string> = new Set<JobState>(['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled']);

/** Compact wire form of a signal: ['e', queue, runAt] | ['f', queue, id, state] | ['p'|'r', queue] | ['c']. */
type WireSignal = readonly [string, ...(string | number)[]];

function toWire(s: StoreSignal): WireSignal {
  switch (s.type) {
    case 'enqueued':
      return ['e', s.queue, s.runAt];
    case 'finished':
      return ['f', s.queue, s.id, s.state];
    case 'paused':
      return ['p', s.queue];
    case 'resumed':
      return ['r', s.queue];
    case 'changed':
      return ['c'];
  }
}

function fromWire(w: unknown): StoreSignal | null {
  if (!Array.isArray(w) || typeof w[0] !== 'string') return null;
  switch (w[0]) {
    case 'e':
      return typeof w[1] === 'string' && typeof w[2] === 'number' ? { type: 'enqueued', queue: w[1], runAt: w[2] } : null;
    case 'f':
      return typeof w[1] === 'string' && typeof w[2] === 'string' && typeof w[3] === 'string' && JOB_STATES.has(w[3])
        ? { type: 'finished', queue: w[1], id: w[2], state: w[3] as JobState }
        : null;
    case 'p':
      return typeof w[1] === 'string' ? { type: 'paused', queue: w[1] } : null;
    case 'r':
      return typeof w[1] === 'string' ? { type: 'resumed', queue: w[1] } : null;
    case 'c':
      return { type: 'changed' };
    default:
      return null;
  }
}

export class Signals {
  readonly #listeners = new Set<Listener>();
  readonly #origin = randomBytes(9).toString('base64url');
  readonly #notifier: Notifier;
  readonly #listen: ListenConnection;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  constructor(db: Database, options: ConnectionOptions, channel: string) {
    this.#notifier = new Notifier(db, channel, this.#origin);
    this.#listen = new ListenConnection(options, channel, (payload) => this.#remote(payload), () => this.#deliver({ type: 'changed' }));
  }

  /** Whether anyone in this process listens. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** True while the LISTEN connection is up (for tests and health checks). */
  get listening(): boolean {
    return this.#listen.listening;
  }

  /** The LISTEN connection's server process id, or null (for tests). */
  get listenPid(): number | null {
    return this.#listen.pid;
  }

  /** Signals of a write that has committed: delivered here at once, published to other processes shortly. */
  emit(signals: readonly StoreSignal[]): void {
    if (signals.length === 0 || this.#closed) return;
    for (const s of signals) this.#deliver(s);
    this.#notifier.push(signals);
  }

  subscribe(listener: Listener): () => void {
    // A wrapper per subscription, so the same function subscribed twice is two listeners.
    const entry: Listener = (signal) => listener(signal);
    this.#listeners.add(entry);
    if (this.#lingerTimer !== undefined) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
    }
    if (!this.#closed) this.#listen.start();
    return () => {
      if (!this.#listeners.delete(entry)) return;
      if (this.#listeners.size === 0 && !this.#closed) {
        this.#lingerTimer = setTimeout(() => {
          this.#lingerTimer = undefined;
          if (this.#listeners.size === 0) this.#listen.stop();
        }, LISTEN_LINGER_MS);
        this.#lingerTimer.unref();
      }
    };
  }

  /** Stops listening and sends what is still pending. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    await Promise.all([this.#listen.stop(), this.#notifier.drain()]);
  }

  #remote(payload: string): void {
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      this.#deliver({ type: 'changed' });
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const { o, s } = parsed as { o?: unknown; s?: unknown };
    if (o === this.#origin) return; // our own echo
    if (!Array.isArray(s)) {
      this.#deliver({ type: 'changed' });
      return;
    }
    for (const w of s) {
      const signal = fromWire(w);
      if (signal !== null) this.#deliver(signal);
    }
  }

  #deliver(signal: StoreSignal): void {
    for (const listener of this.#listeners) {
      try {
        listener(signal);
      } catch (err) {
        // A broken listener must not break the write that already committed, nor the
        // other listeners; surface it as a process warning instead of swallowing it.
        process.emitWarning(`conveyor: a store signal listener threw: ${err instanceof Error ? err.message : String(err)}`, {
          code: 'CONVEYOR_SIGNAL_LISTENER',
        });
      }
    }
  }
}

// --------------------------------------------------------------------------- sending

/** Publishes committed signals to other processes, coalesced, one statement at a time. */
class Notifier {
  readonly #db: Database;
  readonly #channel: string;
  readonly #origin: string;
  /** Earliest runAt per queue of pending `enqueued` signals. */
  readonly #enqueued = new Map<string, number>();
  #others: WireSignal[] = [];
  #scheduled = false;
  #inflight: Promise<void> | null = null;

  constructor(db: Database, channel: string, origin: string) {
    this.#db = db;
    this.#channel = channel;
    this.#origin = origin;
  }

  push(signals: readonly StoreSignal[]): void {
    for (const s of signals) {
      if (s.type === 'enqueued') {
        const prev = this.#enqueued.get(s.queue);
        if (prev === undefined || s.runAt < prev) this.#enqueued.set(s.queue, s.runAt);
      } else {
        this.#others.push(toWire(s));
      }
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#scheduled || this.#inflight !== null) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#inflight = this.#flush().finally(() => {
        this.#inflight = null;
        if (this.#enqueued.size > 0 || this.#others.length > 0) this.#schedule();
      });
    });
  }

  #take(): string[] {
    const wire: WireSignal[] = [];
    for (const [queue, runAt] of this.#enqueued) wire.push(['e', queue, runAt]);
    this.#enqueued.clear();
    wire.push(...this.#others);
    this.#others = [];
    const payloads: string[] = [];
    const head = `{"o":${JSON.stringify(this.#origin)},"s":[`;
    let parts: string[] = [];
    let size = head.length + 2;
    for (const w of wire) {
      const text = JSON.stringify(w);
      const bytes = Buffer.byteLength(text) + 1;
      if (parts.length > 0 && size + bytes > MAX_PAYLOAD_BYTES) {
        payloads.push(`${head}${parts.join(',')}]}`);
        parts = [];
        size = head.length + 2;
      }
      if (bytes + head.length + 2 > MAX_PAYLOAD_BYTES) {
        // A single absurdly long queue name or id: say "something changed" instead.
        parts.push('["c"]');
        size += 6;
        continue;
      }
      parts.push(text);
      size += bytes;
    }
    if (parts.length > 0) payloads.push(`${head}${parts.join(',')}]}`);
    return payloads;
  }

  async #flush(): Promise<void> {
    const payloads = this.#take();
    if (payloads.length === 0) return;
    try {
      // set_config(…, true) applies to this statement's own transaction: its commit does
      // not wait for the WAL flush, so the notify lock is released at once.
      await this.#db.rows(
        `SELECT set_config('synchronous_commit', 'off', true), pg_notify($1, p) FROM unnest($2::text[]) AS p`,
        [this.#channel, payloads],
      );
    } catch {
      // Hints only: a lost notification costs other processes latency (their poll), never correctness.
    }
  }

  /** Waits for the statement in flight and sends what is still pending (best effort, for close). */
  async drain(): Promise<void> {
    await this.#inflight;
    await this.#flush();
  }
}

// ------------------------------------------------------------------------- receiving

/** The dedicated LISTEN connection, with reconnection. */
class ListenConnection {
  readonly #options: ConnectionOptions;
  readonly #channel: string;
  readonly #onPayload: (payload: string) => void;
  readonly #onListening: () => void;
  #client: pg.Client | null = null;
  #wanted = false;
  #connecting = false;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pid: number | null = null;

  constructor(options: ConnectionOptions, channel: string, onPayload: (payload: string) => void, onListening: () => void) {
    this.#options = options;
    this.#channel = channel;
    this.#onPayload = onPayload;
    this.#onListening = onListening;
  }

  get listening(): boolean {
    return this.#client !== null;
  }

  get pid(): number | null {
    return this.#client === null ? null : this.#pid;
  }

  start(): void {
    this.#wanted = true;
    if (this.#client !== null || this.#connecting || this.#timer !== undefined) return;
    void this.#connect();
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const client = this.#client;
    this.#client = null;
    if (client !== null) await client.end().catch(() => undefined);
  }

  async #connect(): Promise<void> {
    this.#connecting = true;
    const client = new pg.Client(clientConfig(this.#options, 'conveyor:listen'));
    // Attached before connecting: an error event without a listener would crash the process.
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (msg) => {
      if (msg.channel === this.#channel && msg.payload !== undefined) this.#onPayload(msg.payload);
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
      const pid = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this.#pid = pid.rows[0]?.pid ?? null;
    } catch {
      this.#connecting = false;
      await client.end().catch(() => undefined);
      this.#retry();
      return;
    }
    this.#connecting = false;
    if (!this.#wanted) {
      await client.end().catch(() => undefined);
      return;
    }
    // Like the pool, the LISTEN socket never keeps the process alive by itself.
    (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
    this.#client = client;
    this.#attempt = 0;
    // Anything may have happened while we were not listening: let receivers re-check.
    this.#onListening();
  }

  #lost(client: pg.Client): void {
    if (this.#client !== client) return;
    this.#client = null;
    client.end().catch(() => undefined);
    this.#retry();
  }

  #retry(): void {
    if (!this.#wanted || this.#timer !== undefined) return;
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_START_MS * 2 ** this.#attempt);
    this.#attempt++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#wanted && this.#client === null && !this.#connecting) void this.#connect();
    }, base * (0.5 + Math.random()));
    this.#timer.unref();
  }
}
