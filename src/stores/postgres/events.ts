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
 * The `jobs` column (a JSON array of items) is built by plain text concatenation with
 * `string_agg` rather than `json_agg(json_build_object(…))`: the items are small and their
 * keys fixed, and concatenation measured about 0.85 µs per item against 2 µs (json_build_object
 * looks up every argument's type on every call), on the claim and ack hot paths. Only
 * values that can hold arbitrary text (caller-chosen ids, names, messages, progress) go
 * through `to_json(…)::text`, which quotes and escapes them; generated ids are digits and
 * numbers are numbers. Every fragment is NULL-free (a NULL would make `||` drop the whole
 * item silently).
 *
 * Seq is an identity column: on PostgreSQL it increases with every appended event but may
 * have gaps (rolled-back transactions) and concurrent transactions may commit out of seq
 * order; readers (the engine's event feed) allow for both.
 */
import type { EventItem, EventType, ReadEventsParams, StoredEvent } from '../../store/contract.ts';
import type { StoreContext, Tables } from './context.ts';
import { num } from './rows.ts';

/** `"<id>"`: a job's public id as JSON text, from the `id` and `key` columns of `alias`. */
export function idJsonSql(alias = ''): string {
  const p = alias === '' ? '' : `${alias}.`;
  return `CASE WHEN ${p}key IS NULL THEN '"' || ${p}id || '"' ELSE to_json(${p}key)::text END`;
}

/** JSON text of a text expression (a quoted, escaped JSON string). */
export function jsonTextSql(expr: string): string {
  return `to_json(${expr})::text`;
}

/** JSON text of a state-code expression: `"waiting"` or `"delayed"` (live states only). */
export function liveStateJsonSql(expr: string): string {
  return `CASE ${expr} WHEN 2 THEN '"delayed"' WHEN 1 THEN '"active"' ELSE '"waiting"' END`;
}

/**
 * One item as JSON text: `{"k1":v1,"k2":v2}`. Each value is an SQL expression that yields
 * valid JSON text (or a number), never NULL.
 */
export function itemSql(fields: Readonly<Record<string, string>>): string {
  const parts = Object.entries(fields).map(([key, expr], i) => `'${i === 0 ? '{' : ','}"${key}":' || (${expr})`);
  return `${parts.join(' || ')} || '}'`;
}

export interface AppendSpec {
  /** SQL of the event's time (epoch ms), e.g. `$6::bigint`. */
  readonly at: string;
  readonly type: EventType;
  /** The relation of changed rows (a CTE name, optionally with an alias). */
  readonly from: string;
  /** The item of one row (itemSql). */
  readonly item: string;
  /** Order of the items (of the `from` rows). */
  readonly order: string;
  /**
   * How the queue is found: `{ id: 'queue' }` a column of queue ids (joined to `queues`
   * once per group), `{ name: 'queue' }` a column of queue names, or `{ constant: '$1' }` one
   * queue for the whole statement (a parameter).
   */
  readonly queue: { readonly id: string } | { readonly name: string } | { readonly constant: string };
  /** `clean`/`drain`: also store how many rows there were, and list at most this many items. */
  readonly countAndCap?: number;
}

/** `INSERT INTO events …`: the body of a data-modifying CTE that appends one event per queue of `from`. */
export function appendEventsSql(t: Tables, spec: AppendSpec): string {
  const items = `'[' || string_agg(${spec.item}, ',' ORDER BY ${spec.order}) || ']'`;
  const into = `INSERT INTO ${t.events} (at, queue, type, jobs${spec.countAndCap === undefined ? '' : ', count'})`;
  const type = `'${spec.type}'`;
  const q = spec.queue;
  if ('id' in q) {
    return `${into}
      SELECT ${spec.at}, eq.name, ${type}, eg.items FROM (
        SELECT ${q.id} AS queue_id, ${items} AS items FROM ${spec.from} GROUP BY ${q.id}
      ) eg JOIN ${t.queues} eq ON eq.id = eg.queue_id`;
  }
  if ('name' in q) {
    return `${into} SELECT ${spec.at}, ${q.name}, ${type}, ${items} FROM ${spec.from} GROUP BY ${q.name}`;
  }
  if (spec.countAndCap !== undefined) {
    // The first `cap` items by `order`, and the count of all.
    return `${into}
      SELECT ${spec.at}, ${q.constant}, ${type},
             '[' || coalesce(string_agg(ec.item, ',' ORDER BY ec.n) FILTER (WHERE ec.n <= ${spec.countAndCap}), '') || ']', count(*)
      FROM (SELECT ${spec.item} AS item, row_number() OVER (ORDER BY ${spec.order}) AS n FROM ${spec.from}) ec
      HAVING count(*) > 0`;
  }
  return `${into} SELECT ${spec.at}, ${q.constant}, ${type}, ${items} FROM ${spec.from} HAVING count(*) > 0`;
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
        jobs: JSON.parse(jobs) as EventItem[],
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
