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
 * coalesced into as few payloads as fit in NOTIFY's 8000-byte limit, one statement;
 * notifications follow each other by at least 5 ms (NOTIFY_INTERVAL_MS), and one of
 * nothing but `finished` signals by at least 50 ms (FINISHED_ONLY_INTERVAL_MS), so a busy
 * process sends a few hundred notifications a second at most, not one per write.
 *
 * Jobs added inside the caller's own transaction (`enqueueInTransaction`) are the
 * exception: their NOTIFY is sent in that transaction, so it is delivered only if it
 * commits, and it carries no origin, so this store's own LISTEN connection delivers it to
 * local subscribers too (nothing is delivered locally before the commit).
 *
 * Remote, receiving: a dedicated connection (not from the pool; `listenUrl` when the pool
 * goes through a transaction-pooling PgBouncer) runs LISTEN while anyone subscribes. It is
 * opened lazily by the first subscriber and closed a few seconds after the last one leaves
 * (so a burst of short subscriptions, e.g. `waitForResult` calls, reuses it). If it drops,
 * it reconnects with jittered exponential backoff, and after every (re)connect emits
 * `changed`, so receivers re-check whatever they may have missed while not listening.
 * Payloads carry the sending store's random origin id, so a store ignores the echo of its
 * own notifications (its local listeners already heard them).
 *
 * Every (re)connect is verified: after LISTEN, a probe notification is sent through the
 * pool, and only once it arrives on the LISTEN connection does the store count as
 * listening. Through a transaction-pooling PgBouncer, LISTEN "succeeds" but its session
 * is handed to other clients, so the probe never arrives; the same happens when
 * `listenUrl` names another database than the pool. Then the store stops listening, warns
 * once (`CONVEYOR_NO_LISTEN`), and falls back to polling: while anyone subscribes, it
 * delivers `changed` every `signalPollMs` (default 1 s), which costs each idle worker one
 * claim statement and each `waitForResult` one read per interval. `listen: false` starts
 * in that mode without the warning.
 *
 * `reliable` says whether signals are complete right now (LISTEN mode, connection up and
 * verified); the store reports it to workers (`signalsReliable()` in the contract), which
 * then keep only a long safety-net poll, and poll more often while it is false
 * (connecting, reconnecting, polling mode). Every change of it is delivered as `changed`.
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
/** How long a probe notification may take to arrive on a fresh LISTEN connection. */
const PROBE_TIMEOUT_MS = 2000;
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

/** How other processes' writes reach this store's subscribers. */
export type SignalMode = 'listen' | 'poll';

export interface SignalsOptions {
  /** The LISTEN connection's settings (its url is `listenUrl` when one is given). */
  readonly listenConnection: ConnectionOptions;
  /** False: never LISTEN, poll from the start (no warning). */
  readonly listen: boolean;
  /** How often subscribers get `changed` while polling. */
  readonly pollMs: number;
}

export class Signals {
  readonly #listeners = new Set<Listener>();
  readonly #origin = randomBytes(9).toString('base64url');
  readonly #echoPrefix = `{"o":${JSON.stringify(this.#origin)},`;
  readonly #channel: string;
  readonly #pollMs: number;
  readonly #notifier: Notifier;
  readonly #listen: ListenConnection;
  #mode: SignalMode;
  #lingerTimer: ReturnType<typeof setTimeout> | undefined;
  #pollTimer: ReturnType<typeof setInterval> | undefined;
  #closed = false;

  constructor(db: Database, channel: string, options: SignalsOptions) {
    this.#channel = channel;
    this.#pollMs = options.pollMs;
    this.#mode = options.listen ? 'listen' : 'poll';
    this.#notifier = new Notifier(db, channel, this.#origin);
    this.#listen = new ListenConnection(options.listenConnection, channel, {
      onPayload: (payload) => this.#remote(payload),
      onListening: () => this.#deliver({ type: 'changed' }),
      // Not listening any more: signals may be missed until the reconnect. Subscribers
      // re-check now and, seeing `reliable` false, poll more often meanwhile.
      onLost: () => this.#deliver({ type: 'changed' }),
      sendProbe: async (nonce) => {
        await db.rows('SELECT pg_notify($1, $2)', [channel, encodePayloads(this.#origin, [], nonce)[0]!]);
      },
      onSilent: (pooled) => this.#fallBackToPolling(pooled),
    });
  }

  /** Whether anyone in this process listens. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** True while the LISTEN connection is up and verified (for tests and health checks). */
  get listening(): boolean {
    return this.#listen.listening;
  }

  /**
   * Whether every committed write of any process reaches subscribers as a signal right now:
   * LISTEN mode with the connection up and verified. False while connecting or
   * reconnecting, and in poll mode. Subscribers get `changed` whenever it changes (after
   * the verification of every (re)connect, on every loss, and on the fall back to polling).
   */
  get reliable(): boolean {
    return this.#mode === 'listen' && this.#listen.listening;
  }

  /** `listen` (LISTEN/NOTIFY) or `poll` (LISTEN disabled, or found not to work). */
  get mode(): SignalMode {
    return this.#mode;
  }

  /** The LISTEN connection's server process id, or null (for tests). */
  get listenPid(): number | null {
    return this.#listen.pid;
  }

  /** The NOTIFY channel (the schema's name). */
  get channel(): string {
    return this.#channel;
  }

  /** Signals of a write that has committed: delivered here at once, published to other processes shortly. */
  emit(signals: readonly StoreSignal[]): void {
    if (signals.length === 0 || this.#closed) return;
    for (const s of signals) this.#deliver(s);
    this.#notifier.push(signals);
  }

  /**
   * NOTIFY payloads for signals of a write in the caller's own transaction, to be sent in
   * that transaction. No origin: this store's own LISTEN connection delivers them too.
   */
  transactionPayloads(signals: readonly StoreSignal[]): string[] {
    return encodePayloads('', signals.map(toWire));
  }

  subscribe(listener: Listener): () => void {
    // A wrapper per subscription, so the same function subscribed twice is two listeners.
    const entry: Listener = (signal) => listener(signal);
    this.#listeners.add(entry);
    if (this.#lingerTimer !== undefined) {
      clearTimeout(this.#lingerTimer);
      this.#lingerTimer = undefined;
    }
    if (!this.#closed) {
      if (this.#mode === 'listen') this.#listen.start();
      else this.#startPolling();
    }
    return () => {
      if (!this.#listeners.delete(entry)) return;
      if (this.#listeners.size === 0 && !this.#closed) {
        this.#stopPolling();
        if (this.#mode !== 'listen') return;
        this.#lingerTimer = setTimeout(() => {
          this.#lingerTimer = undefined;
          if (this.#listeners.size === 0) void this.#listen.stop();
        }, LISTEN_LINGER_MS);
        this.#lingerTimer.unref();
      }
    };
  }

  /** Stops listening and polling, and sends what is still pending. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#listeners.clear();
    if (this.#lingerTimer !== undefined) clearTimeout(this.#lingerTimer);
    this.#stopPolling();
    await Promise.all([this.#listen.stop(), this.#notifier.drain()]);
  }

  #fallBackToPolling(pooled: boolean): void {
    if (this.#mode === 'poll' || this.#closed) return;
    this.#mode = 'poll';
    const why = pooled
      ? 'goes through a connection pooler (a transaction-pooling PgBouncer?)'
      : 'may reach another database than the pool (check listenUrl)';
    process.emitWarning(
      `conveyor: PostgreSQL LISTEN does not work for schema "${this.#channel}": a probe notification sent through the pool ` +
        `never arrived on the LISTEN connection, which ${why}. ` +
        `Falling back to polling: subscribers are woken every ${this.#pollMs} ms. Give a direct connection for LISTEN with ` +
        `?listenUrl=<url-encoded postgres:// url>, or choose polling with ?listen=false to silence this warning.`,
      { code: 'CONVEYOR_NO_LISTEN' },
    );
    void this.#listen.stop();
    if (this.#listeners.size > 0) {
      this.#startPolling();
      this.#deliver({ type: 'changed' });
    }
  }

  #startPolling(): void {
    if (this.#pollTimer !== undefined || this.#closed) return;
    this.#pollTimer = setInterval(() => this.#deliver({ type: 'changed' }), this.#pollMs);
    // Like the LISTEN socket, polling never keeps the process alive by itself.
    this.#pollTimer.unref();
  }

  #stopPolling(): void {
    if (this.#pollTimer === undefined) return;
    clearInterval(this.#pollTimer);
    this.#pollTimer = undefined;
  }

  #remote(payload: string): void {
    // Our own echo (every payload this store sends starts so; see encodePayloads): its
    // signals were delivered locally already. Skipped before parsing, because a busy
    // worker's own completions come back as payloads of up to 7 kB each.
    if (payload.startsWith(this.#echoPrefix)) return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(payload);
    } catch {
      this.#deliver({ type: 'changed' });
      return;
    }
    if (typeof parsed !== 'object' || parsed === null) return;
    const { o, s, p } = parsed as { o?: unknown; s?: unknown; p?: unknown };
    if (o === this.#origin || p !== undefined) return; // our own echo, or a store's LISTEN probe
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

/**
 * Packs wire signals into as few NOTIFY payloads as fit in the size limit:
 * `{"o":origin,"s":[…]}`, plus `"p":nonce` for a LISTEN probe (which carries no signals).
 */
function encodePayloads(origin: string, wire: readonly WireSignal[], probe?: string): string[] {
  const payloads: string[] = [];
  const head = `{"o":${JSON.stringify(origin)},${probe === undefined ? '' : `"p":${JSON.stringify(probe)},`}"s":[`;
  if (probe !== undefined) return [`${head}]}`];
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

// --------------------------------------------------------------------------- sending

/**
 * A notification carrying nothing but `finished` signals is sent at most this often. Only
 * `waitForResult` in other processes listens for them, while every notification costs a
 * statement, a wake-up of every listening backend and of every listening process. Sent
 * after every acknowledgement batch, they cost a 50,000-job drain (concurrency 50, 2-core
 * VM, interleaved rounds in one process) about a tenth of its throughput: not sending them
 * at all drained 0.98-1.22 × as fast (median 1.11, 5 rounds); one compact item per queue
 * instead of one per job saved nothing, so the cost is per notification, not per byte.
 * With this interval: 1.01-1.18 × (median 1.04, 5 of 5 rounds), about half the
 * notifications. At low rates nothing waits (the interval has long passed); under load
 * another process's `waitForResult` hears of its job up to this much later. `enqueued`,
 * `paused`, `resumed` and `changed` are never held back, and take held `finished` along.
 */
const FINISHED_ONLY_INTERVAL_MS = 50;

/**
 * Any other notification follows the previous one by at least this much. The first
 * signal after a quiet spell goes out at once; a busy producer's `enqueued` signals are
 * coalesced into one notification per interval instead of one per write. Serial awaited
 * adds paid a notification statement each: on the 2-core VM they ran at 0.63 × the same
 * INSERT through plain node `pg`, and at 0.95 × without notifications (medians of 6
 * interleaved rounds of 1,000 adds). With this interval they ran 1.17-1.58 × as fast as
 * with a notification per add (6 of 6 rounds, median 1.31; another run won 5 of 6). Other
 * processes' workers hear of a busy producer's jobs up to this much later, never later.
 */
const NOTIFY_INTERVAL_MS = 5;

/** Publishes committed signals to other processes, coalesced, one statement at a time. */
class Notifier {
  readonly #db: Database;
  readonly #channel: string;
  readonly #origin: string;
  /** Earliest runAt per queue of pending `enqueued` signals. */
  readonly #enqueued = new Map<string, number>();
  #others: WireSignal[] = [];
  /** Pending signals other than `finished` among #others (which must not wait). */
  #urgentOthers = 0;
  #scheduled: 'now' | 'later' | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #timerAt = 0;
  #inflight: Promise<void> | null = null;
  /** When the last notification statement was sent (Date.now()). */
  #lastSentAt = 0;

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
        if (s.type !== 'finished') this.#urgentOthers++;
        this.#others.push(toWire(s));
      }
    }
    this.#schedule();
  }

  /** Sends pending signals on the next turn, or once the interval since the last notification has passed (see NOTIFY_INTERVAL_MS). */
  #schedule(): void {
    if (this.#inflight !== null || (this.#enqueued.size === 0 && this.#others.length === 0)) return;
    const urgent = this.#enqueued.size > 0 || this.#urgentOthers > 0;
    const wait = this.#lastSentAt + (urgent ? NOTIFY_INTERVAL_MS : FINISHED_ONLY_INTERVAL_MS) - Date.now();
    if (wait <= 0) {
      if (this.#scheduled === 'now') return;
      if (this.#scheduled === 'later') clearTimeout(this.#timer);
      this.#scheduled = 'now';
      setImmediate(() => this.#run());
      return;
    }
    // A timer already set for a later moment than this wait (a finished-only one) is brought forward.
    if (this.#scheduled === 'now' || (this.#scheduled === 'later' && this.#timerAt <= Date.now() + wait)) return;
    if (this.#scheduled === 'later') clearTimeout(this.#timer);
    this.#scheduled = 'later';
    this.#timerAt = Date.now() + wait;
    this.#timer = setTimeout(() => this.#run(), wait);
    // Hints only: a pending one never keeps the process alive (close() sends it).
    this.#timer.unref();
  }

  #run(): void {
    if (this.#scheduled === null) return; // drained meanwhile
    this.#scheduled = null;
    this.#timer = undefined;
    this.#inflight = this.#flush().finally(() => {
      this.#inflight = null;
      this.#schedule();
    });
  }

  #take(): string[] {
    const wire: WireSignal[] = [];
    for (const [queue, runAt] of this.#enqueued) wire.push(['e', queue, runAt]);
    this.#enqueued.clear();
    wire.push(...this.#others);
    this.#others = [];
    this.#urgentOthers = 0;
    return encodePayloads(this.#origin, wire);
  }

  async #flush(): Promise<void> {
    const payloads = this.#take();
    if (payloads.length === 0) return;
    this.#lastSentAt = Date.now();
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
    if (this.#scheduled === 'later') clearTimeout(this.#timer);
    this.#scheduled = null;
    await this.#inflight;
    await this.#flush();
  }
}

// ------------------------------------------------------------------------- receiving

interface ListenHooks {
  /** A notification on our channel, once the connection is verified. */
  readonly onPayload: (payload: string) => void;
  /** The connection is verified (after every reconnect too). */
  readonly onListening: () => void;
  /** The verified connection was lost (a reconnect follows). */
  readonly onLost: () => void;
  /** Sends the probe notification with this nonce through the pool. */
  readonly sendProbe: (nonce: string) => Promise<void>;
  /**
   * The probe never arrived: LISTEN does not work on this connection. Nothing is retried.
   * `pooled`: the connection's backend key is not the server's process id, i.e. a pooler
   * such as PgBouncer sits in between.
   */
  readonly onSilent: (pooled: boolean) => void;
}

/** What became of a probe: it arrived, it did not (LISTEN is useless here), or the connection or pool failed first. */
type ProbeOutcome = 'heard' | 'silent' | 'lost';

/** The dedicated LISTEN connection: verified by a probe, reconnected with backoff. */
class ListenConnection {
  readonly #options: ConnectionOptions;
  readonly #channel: string;
  readonly #hooks: ListenHooks;
  /** Listening and verified. */
  #client: pg.Client | null = null;
  /** Connecting, or waiting for its probe. */
  #candidate: pg.Client | null = null;
  #probe: { readonly nonce: string; readonly settle: (outcome: ProbeOutcome) => void } | null = null;
  #wanted = false;
  #gaveUp = false;
  #attempt = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #pid: number | null = null;
  #pooled = false;

  constructor(options: ConnectionOptions, channel: string, hooks: ListenHooks) {
    this.#options = options;
    this.#channel = channel;
    this.#hooks = hooks;
  }

  get listening(): boolean {
    return this.#client !== null;
  }

  get pid(): number | null {
    return this.#client === null ? null : this.#pid;
  }

  start(): void {
    this.#wanted = true;
    if (this.#gaveUp || this.#client !== null || this.#candidate !== null || this.#timer !== undefined) return;
    void this.#connect();
  }

  async stop(): Promise<void> {
    this.#wanted = false;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const clients = [this.#client, this.#candidate];
    this.#client = null;
    this.#candidate = null;
    this.#probe?.settle('lost');
    await Promise.all(clients.map((c) => c?.end().catch(() => undefined)));
  }

  async #connect(): Promise<void> {
    const client = new pg.Client(clientConfig(this.#options, 'conveyor:listen'));
    this.#candidate = client;
    // Attached before connecting: an error event without a listener would crash the process.
    client.on('error', () => this.#lost(client));
    client.on('end', () => this.#lost(client));
    client.on('notification', (msg) => {
      if (msg.channel !== this.#channel || msg.payload === undefined) return;
      const probe = this.#probe;
      if (probe !== null && this.#candidate === client) {
        if (msg.payload.includes(`"p":${JSON.stringify(probe.nonce)}`)) probe.settle('heard');
        return; // not verified yet: the `changed` after verification covers whatever this was
      }
      if (this.#client === client) this.#hooks.onPayload(msg.payload);
    });
    let outcome: ProbeOutcome;
    try {
      await client.connect();
      await client.query(`LISTEN ${quoteIdent(this.#channel)}`);
      const pid = await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
      this.#pid = pid.rows[0]?.pid ?? null;
      // A pooler answers the startup with a backend key of its own, not the server's pid.
      this.#pooled = (client as unknown as { processID?: unknown }).processID !== this.#pid;
      outcome = this.#candidate === client ? await this.#runProbe() : 'lost';
    } catch {
      outcome = 'lost';
    }
    if (this.#candidate !== client || !this.#wanted) {
      // Stopped (or lost) meanwhile.
      if (this.#candidate === client) this.#candidate = null;
      await client.end().catch(() => undefined);
      if (this.#wanted && outcome !== 'silent') this.#retry();
      return;
    }
    this.#candidate = null;
    if (outcome === 'heard') {
      // Like the pool, the LISTEN socket never keeps the process alive by itself.
      (client as unknown as { connection?: { stream?: { unref?: () => void } } }).connection?.stream?.unref?.();
      this.#client = client;
      this.#attempt = 0;
      // Anything may have happened while we were not listening: let receivers re-check.
      this.#hooks.onListening();
      return;
    }
    if (outcome === 'silent') {
      // Best effort: behind PgBouncer this may reach another server connection than LISTEN did.
      await client.query('UNLISTEN *').catch(() => undefined);
      await client.end().catch(() => undefined);
      this.#gaveUp = true;
      this.#hooks.onSilent(this.#pooled);
      return;
    }
    await client.end().catch(() => undefined);
    this.#retry();
  }

  /**
   * Sends a probe through the pool and waits for it to come back on the candidate
   * connection. The wait is timed from the moment the probe's statement has committed, so
   * a busy pool cannot make a working LISTEN look broken.
   */
  #runProbe(): Promise<ProbeOutcome> {
    const nonce = randomBytes(9).toString('base64url');
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = new Promise<ProbeOutcome>((resolve) => {
      this.#probe = {
        nonce,
        settle: (result) => {
          clearTimeout(timer);
          if (this.#probe?.nonce === nonce) this.#probe = null;
          resolve(result);
        },
      };
    });
    this.#hooks.sendProbe(nonce).then(
      () => {
        if (this.#probe?.nonce !== nonce) return; // already heard, or lost
        timer = setTimeout(() => this.#probe?.nonce === nonce && this.#probe.settle('silent'), PROBE_TIMEOUT_MS);
        timer.unref();
      },
      // The pool could not send it (the server is down): try the whole connection again later.
      () => {
        if (this.#probe?.nonce === nonce) this.#probe.settle('lost');
      },
    );
    return outcome;
  }

  #lost(client: pg.Client): void {
    if (this.#candidate === client) {
      this.#candidate = null;
      this.#probe?.settle('lost');
      client.end().catch(() => undefined);
      return; // #connect sees it and retries
    }
    if (this.#client !== client) return;
    this.#client = null;
    client.end().catch(() => undefined);
    this.#retry();
    this.#hooks.onLost();
  }

  #retry(): void {
    if (!this.#wanted || this.#gaveUp || this.#timer !== undefined) return;
    const base = Math.min(RECONNECT_MAX_MS, RECONNECT_START_MS * 2 ** this.#attempt);
    this.#attempt++;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#wanted && this.#client === null && this.#candidate === null) void this.#connect();
    }, base * (0.5 + Math.random()));
    this.#timer.unref();
  }
}
