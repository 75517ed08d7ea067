/**
 * Statements that address one job by its public id come in two variants: by `seq` (for
 * generated, all-digit ids) and by `key` (for caller-chosen ids). Each uses its own index
 * (the primary key or jobs_key), and `key IS NULL` on the seq variant makes sure a keyed
 * job cannot also be reached through its seq.
 */
import type { StatementSync } from 'node:sqlite';
import { prepare, type StoreContext } from './context.ts';
import { seqOf } from './rows.ts';

/** Where a template wants the id condition. */
const ID = '$ID';

export class ByIdStatement {
  readonly #ctx: StoreContext;
  readonly #template: string;
  readonly #idParam: string;
  readonly #arrays: boolean;
  #bySeq: StatementSync | undefined;
  #byKey: StatementSync | undefined;

  /**
   * @param template SQL containing `$ID` exactly where the id condition goes.
   * @param idParam the parameter the id binds to, e.g. `?3`.
   * @param arrays return rows as arrays rather than objects
   */
  constructor(ctx: StoreContext, template: string, idParam: string, arrays = false) {
    if (!template.includes(ID)) throw new Error('template lacks $ID');
    this.#ctx = ctx;
    this.#template = template;
    this.#idParam = idParam;
    this.#arrays = arrays;
  }

  /** The statement for this id and the value to bind for it. */
  for(id: string): [StatementSync, string | number] {
    const seq = seqOf(id);
    if (seq === null) {
      this.#byKey ??= prepare(this.#ctx.db, this.#template.replace(ID, `key = ${this.#idParam}`), this.#arrays);
      return [this.#byKey, id];
    }
    this.#bySeq ??= prepare(
      this.#ctx.db,
      this.#template.replace(ID, `seq = ${this.#idParam} AND key IS NULL`),
      this.#arrays,
    );
    return [this.#bySeq, seq];
  }
}

export interface LocatedJob {
  readonly seq: number;
  readonly state: number;
  readonly lease_token: string | null;
}

/**
 * Finds a job by queue name and public id. Unknown queue or id → undefined.
 * Used by the admin and job-write operations (not the lease acks, which match on token).
 */
export class JobLocator {
  readonly #ctx: StoreContext;
  readonly #find: ByIdStatement;

  constructor(ctx: StoreContext) {
    this.#ctx = ctx;
    this.#find = new ByIdStatement(ctx, 'SELECT seq, state, lease_token FROM jobs WHERE $ID AND queue = ?2', '?1');
  }

  locate(queue: string, id: string): LocatedJob | undefined {
    const queueId = this.#ctx.queues.idOf(queue);
    if (queueId === undefined) return undefined;
    const [stmt, idValue] = this.#find.for(id);
    return stmt.get(idValue, queueId) as LocatedJob | undefined;
  }
}
