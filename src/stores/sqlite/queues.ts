/**
 * Queue name ↔ integer id, cached in memory.
 *
 * Jobs reference their queue by the id from the `queues` table (smaller rows and index
 * entries than repeating the name). Queue rows are never deleted or renamed, so a mapping
 * read from a committed row stays true forever and can be cached without invalidation,
 * even across processes. A row this connection inserts is only cached once its
 * transaction commits: after a rollback the id might be given to another queue.
 */
import type { DatabaseSync, StatementSync } from 'node:sqlite';
import type { TxParticipant } from './connection.ts';

export class QueueRegistry implements TxParticipant {
  readonly #db: DatabaseSync;
  readonly #byName = new Map<string, number>();
  readonly #byId = new Map<number, string>();
  /** Rows inserted by the open transaction. */
  readonly #pending = new Map<string, number>();
  #select: StatementSync | undefined;
  #selectById: StatementSync | undefined;
  #insert: StatementSync | undefined;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** The id of an existing queue, or undefined if no job or pause flag ever named it. */
  idOf(name: string): number | undefined {
    const cached = this.#byName.get(name) ?? this.#pending.get(name);
    if (cached !== undefined) return cached;
    this.#select ??= this.#db.prepare('SELECT id FROM queues WHERE name = ?');
    const row = this.#select.get(name) as { id: number } | undefined;
    if (row === undefined) return undefined;
    this.#remember(name, row.id);
    return row.id;
  }

  /** The id of a queue, creating its row if needed. Only inside a write transaction. */
  ensure(name: string): number {
    const existing = this.idOf(name);
    if (existing !== undefined) return existing;
    this.#insert ??= this.#db.prepare('INSERT INTO queues (name) VALUES (?)');
    const id = Number(this.#insert.run(name).lastInsertRowid);
    this.#pending.set(name, id);
    return id;
  }

  nameOf(id: number): string {
    const cached = this.#byId.get(id);
    if (cached !== undefined) return cached;
    for (const [name, pendingId] of this.#pending) if (pendingId === id) return name;
    this.#selectById ??= this.#db.prepare('SELECT name FROM queues WHERE id = ?');
    const row = this.#selectById.get(id) as { name: string } | undefined;
    if (row === undefined) throw new Error(`job references unknown queue id ${id}`);
    this.#remember(row.name, id);
    return row.name;
  }

  committed(): void {
    if (this.#pending.size === 0) return;
    for (const [name, id] of this.#pending) this.#remember(name, id);
    this.#pending.clear();
  }

  rolledBack(): void {
    this.#pending.clear();
  }

  #remember(name: string, id: number): void {
    this.#byName.set(name, id);
    this.#byId.set(id, name);
  }
}
