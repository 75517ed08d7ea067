/**
 * Queue name ↔ integer id, cached in memory.
 *
 * Jobs reference their queue by the id from the `queues` table. Queue rows are never
 * deleted or renamed, so a mapping read from a committed row stays true forever and can
 * be cached without invalidation, even across processes. Rows are created by their own
 * autocommit statement before the jobs that need them are written: if that job write then
 * fails, an empty queue row remains, which is harmless (listQueues skips queues with
 * neither jobs nor a pause flag), and every id in the cache is committed.
 *
 * Single-job operations do not use the cache; they look the id up inside their statement
 * (`queueIdSql`), which costs an index probe but no round trip.
 */
import type { Database } from './connection.ts';
import type { Tables } from './context.ts';

export class QueueRegistry {
  readonly #db: Database;
  readonly #t: Tables;
  readonly #byName = new Map<string, number>();
  readonly #byId = new Map<number, string>();

  constructor(db: Database, t: Tables) {
    this.#db = db;
    this.#t = t;
  }

  /** Cached id of a queue, if this store has seen it. */
  cached(name: string): number | undefined {
    return this.#byName.get(name);
  }

  nameOf(id: number): string | undefined {
    return this.#byId.get(id);
  }

  remember(name: string, id: number): void {
    this.#byName.set(name, id);
    this.#byId.set(id, name);
  }

  /** Ids of these queues, creating the rows that do not exist yet. */
  async ensure(names: Iterable<string>): Promise<Map<string, number>> {
    const out = new Map<string, number>();
    let missing: string[] = [];
    for (const name of names) {
      if (out.has(name)) continue;
      const id = this.#byName.get(name);
      if (id === undefined) {
        if (!missing.includes(name)) missing.push(name);
      } else out.set(name, id);
    }
    // A row another transaction inserts concurrently is invisible to this statement's
    // snapshot (our INSERT waits for it, then does nothing), so loop until all are seen.
    for (let round = 0; missing.length > 0; round++) {
      if (round >= 5) throw new Error(`could not create queue rows for ${missing.join(', ')}`);
      const rows = await this.#db.rows<{ id: number; name: string }>(
        `WITH wanted AS (SELECT unnest($1::text[]) AS name),
         created AS (
           INSERT INTO ${this.#t.queues} (name) SELECT name FROM wanted ON CONFLICT (name) DO NOTHING RETURNING id, name
         )
         SELECT id, name FROM created
         UNION ALL
         SELECT q.id, q.name FROM ${this.#t.queues} q JOIN wanted w ON w.name = q.name`,
        [missing],
      );
      for (const row of rows) {
        this.remember(row.name, row.id);
        out.set(row.name, row.id);
      }
      missing = missing.filter((name) => !out.has(name));
    }
    return out;
  }

  /** Learns the names of queue ids this store has not seen (jobs written by other processes). */
  async names(ids: Iterable<number>): Promise<void> {
    const unknown = [...new Set(ids)].filter((id) => !this.#byId.has(id));
    if (unknown.length === 0) return;
    const rows = await this.#db.rows<{ id: number; name: string }>(`SELECT id, name FROM ${this.#t.queues} WHERE id = ANY($1::int[])`, [unknown]);
    for (const row of rows) this.remember(row.name, row.id);
  }
}
