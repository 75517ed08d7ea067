/**
 * The event log of the SQLite store: appending (inside the write transactions of the
 * operation modules), reading, pruning.
 *
 * Cost is what matters here, because every claim and acknowledgement appends: one
 * operation appends one row per queue and type (a 100-job claim is one row with 100
 * items), with one cached INSERT. The items are small objects that reuse strings the
 * operation has anyway (the job's id, its queue name), serialised with one
 * `JSON.stringify` per event: measured with callgrind, that costs less than building the
 * JSON text by concatenation, whose intermediate strings (and their flattening when
 * bound to the statement) made most of the event log's overhead.
 *
 * Runs: the `jobs` column is a JSON array of items, except that consecutive items whose
 * ids are consecutive generated ids and whose other fields are all equal are stored once,
 * as the first item plus `"+": n` (n more items, ids + 1 … + n). A bulk add, a claim of
 * jobs added together, and the completion of a claim's jobs are mostly one run each, so
 * the log adds a few dozen bytes per operation rather than ~45 per job (measured: the
 * bytes the process writes per job in the drain, 64-in-flight and bulk scenarios rose
 * 24-28 % with one item per job, 2-8 % with runs). readEvents expands runs, so readers
 * always see one item per job, in the order the operation wrote them.
 *
 * seq is the table's rowid, without AUTOINCREMENT: a new row gets the largest seq + 1.
 * Appends are serialised by the write lock, so seq is consecutive in commit order, and a
 * rolled-back append leaves no trace. Pruning therefore always keeps the newest row (were
 * the table emptied, seq would start again from 1; see migrations.ts version 2).
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { EventItem, EventType, ReadEventsParams, StoredEvent } from '../../store/contract.ts';

/** `clean` and `drain` list at most this many ids in their `removed` event (and the full `count`). */
export const REMOVED_IDS_CAP = 1000;

/** A stored item: an EventItem, or the first of a run of `"+"` more (see the header). */
type StoredItem = EventItem & { '+'?: number };

/** Every field of EventItem but `id`; a run needs all of them equal. */
const RUN_FIELDS = ['name', 'state', 'attempt', 'waitMs', 'durationMs', 'error', 'progress'] as const;
// Fails to compile when EventItem gains a field that RUN_FIELDS (and sameFields) lack.
const allFieldsCompared: Exclude<keyof EventItem, 'id' | (typeof RUN_FIELDS)[number]> extends never ? true : never = true;
void allFieldsCompared;

function sameFields(a: EventItem, b: EventItem): boolean {
  return (
    a.attempt === b.attempt &&
    a.waitMs === b.waitMs &&
    a.durationMs === b.durationMs &&
    a.state === b.state &&
    a.name === b.name &&
    a.error === b.error &&
    a.progress === b.progress
  );
}

/** One queue's items in order, consecutive ones folded into runs. */
class ItemList {
  readonly items: EventItem[] = [];
  /** How many more ids follow items[i] in its run. */
  readonly runs: number[] = [];
  #runs = false;
  /** The seq that would extend the last run; -1: none (the last id was caller-chosen). */
  #next = -1;

  /** @param seq the job's generated id as a number, or -1 for a caller-chosen id */
  add(item: EventItem, seq: number): void {
    const last = this.items.length - 1;
    if (seq === this.#next && seq >= 0 && sameFields(this.items[last]!, item)) {
      this.runs[last]!++;
      this.#runs = true;
    } else {
      this.items.push(item);
      this.runs.push(0);
    }
    this.#next = seq >= 0 ? seq + 1 : -1;
  }

  json(): string {
    if (!this.#runs) return JSON.stringify(this.items);
    const { items, runs } = this;
    const stored = new Array<StoredItem>(items.length);
    for (let i = 0; i < items.length; i++) stored[i] = runs[i] === 0 ? items[i]! : { ...items[i]!, '+': runs[i]! };
    return JSON.stringify(stored);
  }
}

/**
 * Items of one operation, grouped by queue, appended as one event per queue by `flush`.
 * The first queue is kept in fields: almost every operation touches one queue only.
 */
export class EventBatch {
  readonly #type: EventType;
  #queue: string | null = null;
  #items: ItemList | null = null;
  #others: Map<string, ItemList> | null = null;

  constructor(type: EventType) {
    this.#type = type;
  }

  /** @param seq the job's generated id as a number, or -1 for a caller-chosen id (see ItemList) */
  add(queue: string, item: EventItem, seq: number): void {
    if (queue === this.#queue) {
      this.#items!.add(item, seq);
    } else if (this.#queue === null) {
      this.#queue = queue;
      this.#items = new ItemList();
      this.#items.add(item, seq);
    } else {
      this.#others ??= new Map();
      let other = this.#others.get(queue);
      if (other === undefined) {
        other = new ItemList();
        this.#others.set(queue, other);
      }
      other.add(item, seq);
    }
  }

  /**
   * Appends one event per queue (nothing if no item was added). In the operation's transaction.
   * @param count stored with every event of the batch (`clean`/`drain`)
   */
  flush(log: EventLog, at: number, count: number | null = null): void {
    if (this.#queue === null) return;
    log.appendJson(at, this.#queue, this.#type, this.#items!.json(), count);
    if (this.#others !== null) for (const [queue, items] of this.#others) log.appendJson(at, queue, this.#type, items.json(), count);
  }
}

/** Claim-time facts of one attempt, for the items of its completion or failure. */
export interface AttemptStart {
  readonly queue: string;
  /** 1-based. */
  readonly attempt: number;
  readonly startedAt: number;
}

/**
 * What this store's claims handed out, by lease token, so that a completion or failure
 * can write its `attempt` and `durationMs` without reading the job row again (that read
 * measured as much as the acknowledgement's own UPDATE). Sound because of fencing: an ack
 * applies only while the job still holds the token, and while it does, its attempt count
 * and start time are the ones the claim wrote. Acks of tokens this store did not hand out
 * (another process claimed, or the entry was evicted) read the row instead.
 *
 * Tokens whose jobs are never acknowledged here (recovered, cancelled, acknowledged by
 * another process) are evicted oldest first once the map holds MAX_ENTRIES.
 */
export class AttemptStarts {
  static readonly MAX_ENTRIES = 20_000;
  readonly #byToken = new Map<string, AttemptStart>();

  remember(token: string, start: AttemptStart): void {
    const map = this.#byToken;
    map.set(token, start);
    if (map.size > AttemptStarts.MAX_ENTRIES) map.delete(map.keys().next().value!);
  }

  /** The entry for this token, removed (an ack ends the attempt whether it applies or is stale). */
  take(token: string): AttemptStart | undefined {
    const start = this.#byToken.get(token);
    if (start !== undefined) this.#byToken.delete(token);
    return start;
  }

  get size(): number {
    return this.#byToken.size;
  }
}

type EventRow = [seq: number, at: number, queue: string, type: EventType, jobs: string, count: number | null];

/** Stored items → one item per job (see Runs in the header). */
function expandRuns(stored: StoredItem[]): EventItem[] {
  let i = 0;
  while (i < stored.length && stored[i]!['+'] === undefined) i++;
  if (i === stored.length) return stored;
  const out: EventItem[] = stored.slice(0, i);
  for (; i < stored.length; i++) {
    const { '+': more, ...item } = stored[i]!;
    out.push(item);
    if (more === undefined) continue;
    const first = Number(item.id);
    for (let k = 1; k <= more; k++) out.push({ ...item, id: String(first + k) });
  }
  return out;
}

export class EventLog {
  readonly #db: DatabaseSync;
  readonly #insert: StatementSync;
  #read: StatementSync | undefined;
  #last: StatementSync | undefined;
  #oldest: StatementSync | undefined;
  #deleteUpTo: StatementSync | undefined;

  constructor(db: DatabaseSync) {
    this.#db = db;
    this.#insert = db.prepare('INSERT INTO events (at, queue, type, jobs, count) VALUES (?, ?, ?, ?, ?)');
  }

  /** Appends one event. Only inside a write transaction, together with the change it describes. */
  append(at: number, queue: string, type: EventType, items: readonly EventItem[]): void {
    this.#insert.run(at, queue, type, items.length === 0 ? '[]' : JSON.stringify(items), null);
  }

  /** `append` with the items already serialised (EventBatch). */
  appendJson(at: number, queue: string, type: EventType, json: string, count: number | null): void {
    this.#insert.run(at, queue, type, json, count);
  }

  read(params: ReadEventsParams): StoredEvent[] {
    const limit = Math.floor(params.limit);
    if (!(limit > 0)) return [];
    if (this.#read === undefined) {
      this.#read = this.#db.prepare('SELECT seq, at, queue, type, jobs, count FROM events WHERE seq > ? ORDER BY seq LIMIT ?');
      this.#read.setReturnArrays(true);
    }
    const rows = this.#read.all(params.after, limit) as unknown as EventRow[];
    const out = new Array<StoredEvent>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [seq, at, queue, type, jobs, count] = rows[i]!;
      const items = expandRuns(JSON.parse(jobs) as StoredItem[]);
      out[i] = count === null ? { seq, at, queue, type, jobs: items } : { seq, at, queue, type, jobs: items, count };
    }
    return out;
  }

  lastSeq(): number {
    this.#last ??= this.#db.prepare('SELECT max(seq) AS m FROM events');
    return (this.#last.get() as { m: number | null }).m ?? 0;
  }

  /**
   * Deletes the oldest events while they were appended before `before`, at most `limit`,
   * never the newest. It walks from the oldest and stops at the first event that is not
   * older than `before`: events are appended in time order (one source of time per
   * operation, through the write lock), so that is every event before `before` short of
   * clock skew between processes, and it costs O(limit) rows however long the log is,
   * where a filter on `at` would scan the whole table (there is no index on `at`: it
   * would cost every append). Runs inside a write transaction.
   */
  prune(before: number, limit: number): number {
    const max = Math.floor(limit);
    if (!(max > 0)) return 0;
    const newest = this.lastSeq();
    if (newest === 0) return 0;
    if (this.#oldest === undefined) {
      this.#oldest = this.#db.prepare('SELECT seq, at FROM events WHERE seq < ? ORDER BY seq LIMIT ?');
      this.#oldest.setReturnArrays(true);
    }
    const rows = this.#oldest.all(newest, max) as unknown as Array<[seq: number, at: number]>;
    let upTo = -1;
    let n = 0;
    for (const [seq, at] of rows) {
      if (!(at < before)) break;
      upTo = seq;
      n++;
    }
    if (n === 0) return 0;
    this.#deleteUpTo ??= this.#db.prepare('DELETE FROM events WHERE seq <= ?');
    return Number(this.#deleteUpTo.run(upTo).changes);
  }
}
