/**
 * What every operation module of the PostgreSQL store shares: the database, the qualified
 * table names of the store's schema, the queue id cache and the signal hub.
 */
import type { Database } from './connection.ts';
import type { QueueRegistry } from './queues.ts';
import type { Signals } from './signals.ts';

/** Double-quotes an identifier (the schema name is validated too; quoting is belt and braces). */
export function quoteIdent(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Schema-qualified, quoted names. Every statement names its tables through these (no search_path). */
export class Tables {
  readonly schemaName: string;
  readonly schema: string;
  readonly queues: string;
  readonly jobs: string;
  readonly done: string;
  readonly logs: string;
  readonly events: string;
  readonly apiKeys: string;
  readonly workers: string;
  readonly migrations: string;
  /** For nextval(): a string literal naming the job id sequence. */
  readonly jobIdSeq: string;

  constructor(schema: string) {
    this.schemaName = schema;
    this.schema = quoteIdent(schema);
    this.queues = `${this.schema}.queues`;
    this.jobs = `${this.schema}.jobs`;
    this.done = `${this.schema}.jobs_done`;
    this.logs = `${this.schema}.job_logs`;
    this.events = `${this.schema}.events`;
    this.apiKeys = `${this.schema}.api_keys`;
    this.workers = `${this.schema}.workers`;
    this.migrations = `${this.schema}.schema_migrations`;
    this.jobIdSeq = `'${this.schema.replace(/'/g, "''")}.job_ids'`;
  }
}

export interface StoreContext {
  readonly db: Database;
  readonly t: Tables;
  readonly queues: QueueRegistry;
  readonly signals: Signals;
}

/** `(SELECT id FROM queues WHERE name = $n)`: a queue's id inside a statement, for single-job operations. */
export function queueIdSql(t: Tables, param: string): string {
  return `(SELECT id FROM ${t.queues} WHERE name = ${param})`;
}
