/**
 * The event log of the PostgreSQL store: the SQL fragments with which every write appends
 * its events inside its own statement, and the log's readers (readEvents, lastEventSeq,
 * pruneEvents).
 *
 * Appending: each write statement gets one more data-modifying CTE,
 * `INSERT INTO events … SELECT … FROM <the rows the write changed> GROUP BY queue`, so the
 * event commits (or rolls back) with the change it describes, costs no extra round trip,
 * and one operation writes one row per queue and type, however many jobs it moved. A write
 * that changed nothing writes nothing (no rows, no groups).
 *
 * The `jobs` column is stored column-wise: one JSON object of arrays,
 * `{"id":[7,8],"key":null,"attempt":[1,2],"waitMs":[5,40]}`, built per event by
 * `json_build_object('id', array_agg(id), …)`, and turned back into the contract's items
 * (`[{"id":"7","attempt":1,"waitMs":5}, …]`) by readEvents. Building an object per item in
 * SQL (json_build_object, or text concatenation with to_json for names) cost 1.5-2.8 µs
 * per item; aggregating arrays costs about 0.8, and the text is a third the size (a
 * 200-job claim's event stays under the 2 kB TOAST threshold instead of being compressed
 * and moved out of line). On the claim and ack hot paths that is most of the log's cost.
 * The encoding:
 *   id     generated ids as numbers (public id: the decimal string) …
 *   key    … unless `key[i]` is a string (a caller-chosen id); null when no job has one.
 *   state  job state codes (rows.ts STATE), decoded to names.
 *   other  one array per item field, values as they appear in the item.
 * Items in a row follow no particular order (the arrays of one row share it, which is all
 * the decoding needs); the contract leaves item order open. A row whose `jobs` is a JSON
 * array is read as items as they stand (queue events store `[]`).
 *
 * Seq is an identity column: on PostgreSQL it increases with every appended event but may
 * have gaps (rolled-back transactions) and concurrent transactions may commit out of seq
 * order; readers (the engine's event feed) allow for both.
 */
import type { EventItem, EventType, ReadEventsParams, StoredEvent } from '../../store/contract.ts';
import type { StoreContext, Tables } from './context.ts';
import { num, stateName } from './rows.ts';

export interface AppendSpec {
  /** SQL of the event's time (epoch ms), e.g. `$6::bigint`. */
  readonly at: string;
  readonly type: EventType;
  /** The relation of changed rows (a CTE name, optionally with an alias or a WHERE clause). */
  readonly from: string;
  /** Per-row SQL of the numeric id (default `id`) and the caller-chosen id (default `key`; null: never one). */
  readonly id?: string;
  readonly key?: string | null;
  /** Item fields besides the id: per-row SQL, aggregated into one array each. */
  readonly fields?: Readonly<Record<string, string>>;
  /**
   * How the queue is found: `{ id: 'queue' }` a column of queue ids (joined to `queues`
   * once per group), `{ name: 'queue' }` a column of queue names, or `{ constant: '$1' }` one
   * queue for the whole statement (a parameter).
   */
  readonly queue: { readonly id: string } | { readonly name: string } | { readonly constant: string };
  /** `clean`/`drain`: also store how many rows there were, and list at most this many items, the first by `capOrder`. */
  readonly countAndCap?: number;
  readonly capOrder?: string;
}

/** `json_build_object(…)::text`: the `jobs` text of one event, aggregated over its rows. */
function jobsSql(spec: AppendSpec): string {
  const cap = spec.countAndCap === undefined ? '' : `[1:${spec.countAndCap}]`;
  // Every array of one row is aggregated over the same rows in the same order, so they zip;
  // only a capped list needs an explicit order (which sorts once per array: admin paths only).
  const agg = (expr: string): string =>
    cap === '' ? `array_agg(${expr})` : `(array_agg(${expr}${spec.capOrder === undefined ? '' : ` ORDER BY ${spec.capOrder}`}))${cap}`;
  const parts = [`'id', ${agg(spec.id ?? 'id')}`];
  const key = spec.key === undefined ? 'key' : spec.key;
  if (key !== null) parts.push(`'key', CASE WHEN bool_or(${key} IS NOT NULL) THEN ${agg(key)} END`);
  for (const [name, expr] of Object.entries(spec.fields ?? {})) parts.push(`'${name}', ${agg(expr)}`);
  return `json_build_object(${parts.join(', ')})::text`;
}

/** `INSERT INTO events …`: the body of a data-modifying CTE that appends one event per queue of `from`. */
export function appendEventsSql(t: Tables, spec: AppendSpec): string {
  const jobs = jobsSql(spec);
  const counted = spec.countAndCap !== undefined;
  const into = `INSERT INTO ${t.events} (at, queue, type, jobs${counted ? ', count' : ''})`;
  const type = `'${spec.type}'`;
  const count = counted ? ', count(*)' : '';
  const q = spec.queue;
  if ('id' in q) {
    return `${into}
      SELECT ${spec.at}, eq.name, ${type}, eg.jobs${counted ? ', eg.n' : ''} FROM (
        SELECT ${q.id} AS queue_id, ${jobs} AS jobs${counted ? ', count(*) AS n' : ''} FROM ${spec.from} GROUP BY ${q.id}
      ) eg JOIN ${t.queues} eq ON eq.id = eg.queue_id`;
  }
  if ('name' in q) return `${into} SELECT ${spec.at}, ${q.name}, ${type}, ${jobs}${count} FROM ${spec.from} GROUP BY ${q.name}`;
  return `${into} SELECT ${spec.at}, ${q.constant}, ${type}, ${jobs}${count} FROM ${spec.from} HAVING count(*) > 0`;
}

/** The `jobs` text of one item made in JS (progress, a lone job's add): the same column-wise form. */
export function oneItemJobs(id: string | number, fields: Readonly<Record<string, unknown>>): string {
  const out: Record<string, unknown[]> = { id: [id] };
  for (const [name, value] of Object.entries(fields)) out[name] = [value];
  return JSON.stringify(out);
}

/** Items from a stored `jobs` text (see the encoding above). */
export function decodeItems(text: string): EventItem[] {
  const stored = JSON.parse(text) as unknown;
  if (Array.isArray(stored)) return stored as EventItem[];
  const cols = stored as Record<string, unknown[] | null>;
  const ids = cols['id'] ?? [];
  const keys = cols['key'] ?? null;
  const fields = Object.keys(cols).filter((k) => k !== 'id' && k !== 'key');
  const items = new Array<EventItem>(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const item: Record<string, unknown> = { id: (keys?.[i] as string | null | undefined) ?? String(ids[i]) };
    for (const f of fields) {
      const v = cols[f]![i];
      item[f] = f === 'state' && typeof v === 'number' ? stateName(v) : v;
    }
    items[i] = item as unknown as EventItem;
  }
  return items;
}

/** Rows per DELETE of pruneEvents: each batch is its own short transaction. */
const PRUNE_BATCH = 5000;

/** A row of readEvents, as an array. */
type EventRow = [seq: number, at: number, queue: string, type: EventType, jobs: string, count: number | null];

export class EventLog {
  readonly #ctx: StoreContext;
  readonly #read: string;
  readonly #last: string;
  readonly #prune: string;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    const { t } = ctx;
    // $1 after, $2 limit
    this.#read = `SELECT seq, at, queue, type, jobs, count FROM ${t.events} WHERE seq > $1::bigint ORDER BY seq LIMIT $2::int`;
    this.#last = `SELECT coalesce(max(seq), 0) AS seq FROM ${t.events}`;
    // $1 before, $2 batch size. Walks the oldest `batch` events by seq and deletes the run
    // of them appended before the cut-off, stopping at the first one that was not (seq and
    // `at` grow together, so the walk never reads past the events it keeps), and never the
    // newest event: seq values are never reused here, but the contract keeps the newest so
    // that lastEventSeq() never goes back, whatever the store.
    this.#prune = `
      WITH head AS (
        SELECT seq, at FROM ${t.events} ORDER BY seq LIMIT $2::int
      ),
      stop AS (
        SELECT least(
          coalesce((SELECT min(seq) FROM head WHERE at >= $1::bigint), 9223372036854775807),
          (SELECT max(seq) FROM ${t.events})) AS seq
      )
      DELETE FROM ${t.events} WHERE seq IN (SELECT seq FROM head WHERE seq < (SELECT seq FROM stop))`;
  }

  async read(params: ReadEventsParams): Promise<StoredEvent[]> {
    if (params.limit <= 0) return [];
    const rows = (await this.#ctx.db.arrays(this.#read, [params.after, params.limit])) as EventRow[];
    const events = new Array<StoredEvent>(rows.length);
    for (let i = 0; i < rows.length; i++) {
      const [seq, at, queue, type, jobs, count] = rows[i]!;
      const event: { seq: number; at: number; queue: string; type: EventType; jobs: EventItem[]; count?: number } = {
        seq: num(seq),
        at: num(at),
        queue,
        type,
        jobs: decodeItems(jobs),
      };
      if (count !== null) event.count = num(count);
      events[i] = event;
    }
    return events;
  }

  async lastSeq(): Promise<number> {
    const rows = await this.#ctx.db.rows<{ seq: number | string | null }>(this.#last);
    return num(rows[0]?.seq ?? 0);
  }

  /** Deletes up to `limit` of the oldest events appended before `before`, in batches; returns how many went. */
  async prune(params: { readonly before: number; readonly limit: number }): Promise<number> {
    let removed = 0;
    while (removed < params.limit) {
      const batch = Math.min(PRUNE_BATCH, params.limit - removed);
      const n = await this.#ctx.db.count(this.#prune, [params.before, batch]);
      removed += n;
      if (n < batch) break;
    }
    return removed;
  }
}
