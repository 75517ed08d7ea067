/**
 * Row ↔ JobRecord mapping for the PostgreSQL store: state codes, the compact encoding of
 * job options, public ids, lease tokens, and the column lists every job query selects.
 *
 * Nothing here talks to the database; these are pure functions shared by every module.
 */
import type { AttemptError, JobRecord, JobState } from '../../job.ts';
import { decodeOpts, encodeOpts } from '../../store/options-codec.ts';

/**
 * States are stored as smallints, the same numbering as the SQLite store. Live states
 * (0-2) only ever appear in the `jobs` table and finished states (3-5) only in
 * `jobs_done`; CHECK constraints in the schema hold both tables to that.
 */
export const STATE = {
  waiting: 0,
  active: 1,
  delayed: 2,
  completed: 3,
  failed: 4,
  cancelled: 5,
} as const satisfies Record<JobState, number>;

const STATE_NAMES: readonly JobState[] = ['waiting', 'active', 'delayed', 'completed', 'failed', 'cancelled'];

export function stateName(code: number): JobState {
  const name = STATE_NAMES[code];
  if (name === undefined) throw new Error(`unknown job state code ${code}`);
  return name;
}

export function isFinishedCode(code: number): boolean {
  return code >= STATE.completed;
}

// ----------------------------------------------------------------------------- ids

/**
 * Public ids: a caller-chosen id is stored in `key` and is its own public id; a job without
 * one is known by its `id` (a bigint from the job id sequence) in decimal. The engine never
 * lets a caller choose an all-digit id, so the two spaces cannot collide.
 *
 * Returns the numeric id an id denotes, or null when the id is a key. Only the canonical
 * decimal form counts ('007' is not job 7): an all-digit id that is not canonical (or too
 * large) yields -1, an id no row has, so lookups answer "not found" rather than falling
 * back to a key lookup.
 */
export function seqOf(id: string): number | null {
  const c = id.charCodeAt(0);
  if (!(c >= 48 && c <= 57)) return null;
  if (!/^[0-9]+$/.test(id)) return null;
  const n = Number(id);
  return Number.isSafeInteger(n) && String(n) === id ? n : -1;
}

/**
 * The SQL condition that selects the job with this public id (by `key`, or by `id` for
 * generated ids, where `key IS NULL` keeps a keyed job from also answering to its number),
 * and the value to bind to `param`.
 */
export function idCondition(id: string, param: string, alias = ''): { readonly sql: string; readonly value: string | number } {
  const seq = seqOf(id);
  const p = alias === '' ? '' : `${alias}.`;
  if (seq === null) return { sql: `${p}key = ${param}`, value: id };
  return { sql: `${p}id = ${param}::bigint AND ${p}key IS NULL`, value: seq };
}

// -------------------------------------------------------------------------- leases

/**
 * Lease tokens are made by the claim statement as `<random>.<id>`: one random base64url
 * value (no dots) per claim call, then the job's numeric id. That makes every token unique
 * per job and claim, and lets an acknowledgement, which carries only the public id and the
 * token, address the row by its primary key. To callers the token stays opaque.
 *
 * Returns the numeric id a token names, or null for anything a claim cannot have made
 * (such an item is simply stale).
 */
export function tokenSeq(token: string): number | null {
  const dot = token.lastIndexOf('.');
  if (dot <= 0 || dot === token.length - 1) return null;
  const tail = token.slice(dot + 1);
  if (!/^[0-9]{1,16}$/.test(tail)) return null;
  const n = Number(tail);
  return Number.isSafeInteger(n) && String(n) === tail ? n : null;
}

// ------------------------------------------------------------------------- options


// Options encoding is shared by all stores (src/store/options-codec.ts).
export { encodeOpts, decodeOpts };

/**
 * Attempt errors are kept as the text of a JSON array and appended to by string surgery in
 * SQL (see APPEND_ERROR), not as jsonb: text round-trips exactly and never fails on content
 * jsonb refuses (a `\u0000` escape in an error message).
 */
export function appendErrorSql(column: string, errorJson: string): string {
  return `CASE WHEN ${column} IS NULL THEN '[' || ${errorJson} || ']' ELSE left(${column}, -1) || ',' || ${errorJson} || ']' END`;
}

// ---------------------------------------------------------------------------- rows

/**
 * The columns every JobRecord-producing query selects from the live table, in JobRow
 * order. Live jobs have no `finished_at` or `result` (both are reset when a job goes back
 * to live), so those come out as NULL.
 */
export function liveColumns(alias = ''): string {
  const p = alias === '' ? '' : `${alias}.`;
  return (
    `${p}id, ${p}key, ${p}name, ${p}data, ${p}opts, ${p}state, ${p}priority, ${p}attempts_made, ${p}max_attempts, ` +
    `${p}stalls, ${p}run_at, ${p}created_at, ${p}lease_ms, ${p}started_at, NULL::bigint, ${p}lease_owner, ` +
    `${p}lease_token, ${p}lease_until, ${p}progress, NULL::text, ${p}errors`
  );
}

/** The same list from `jobs_done`, where a finished job never holds a lease. */
export function doneColumns(alias = ''): string {
  const p = alias === '' ? '' : `${alias}.`;
  return (
    `${p}id, ${p}key, ${p}name, ${p}data, ${p}opts, ${p}state, ${p}priority, ${p}attempts_made, ${p}max_attempts, ` +
    `${p}stalls, ${p}run_at, ${p}created_at, ${p}lease_ms, ${p}started_at, ${p}finished_at, NULL::text, ` +
    `NULL::text, NULL::bigint, ${p}progress, ${p}result, ${p}errors`
  );
}

/** Columns shared by both tables, for moving rows between them. */
export const MOVED_COLUMNS =
  'id, queue, key, name, data, opts, priority, attempts_made, max_attempts, stalls, run_at, created_at, lease_ms, started_at, progress, errors';

/** A row of liveColumns/doneColumns as an array (queries use rowMode 'array'). */
export type JobRow = [
  id: number,
  key: string | null,
  name: string,
  data: string,
  opts: string | null,
  state: number,
  priority: number,
  attemptsMade: number,
  maxAttempts: number,
  stalls: number,
  runAt: number,
  createdAt: number,
  leaseMs: number | null,
  startedAt: number | null,
  finishedAt: number | null,
  leaseOwner: string | null,
  leaseToken: string | null,
  leaseUntil: number | null,
  progress: string | null,
  result: string | null,
  errors: string | null,
];

export const JOB_ROW_LENGTH = 21;

/** Positions in JobRow. */
export const COL = {
  id: 0,
  key: 1,
  name: 2,
  data: 3,
  opts: 4,
  state: 5,
  priority: 6,
  attemptsMade: 7,
  maxAttempts: 8,
  stalls: 9,
  runAt: 10,
  createdAt: 11,
  leaseMs: 12,
  startedAt: 13,
  finishedAt: 14,
  leaseOwner: 15,
  leaseToken: 16,
  leaseUntil: 17,
  progress: 18,
  result: 19,
  errors: 20,
} as const;

/** Maps a row (starting at `offset` in a wider array row) to a JobRecord. */
export function toJobRecord(raw: readonly unknown[], queueName: string, offset = 0): JobRecord {
  const row = (offset === 0 ? raw : raw.slice(offset, offset + JOB_ROW_LENGTH)) as unknown as JobRow;
  const token = row[COL.leaseToken];
  const errors = row[COL.errors];
  return {
    id: row[COL.key] ?? String(row[COL.id]),
    queue: queueName,
    name: row[COL.name],
    data: row[COL.data],
    opts: decodeOpts(row[COL.opts], row[COL.maxAttempts], row[COL.leaseMs]),
    state: stateName(row[COL.state]),
    priority: row[COL.priority],
    attemptsMade: row[COL.attemptsMade],
    maxAttempts: row[COL.maxAttempts],
    stalls: row[COL.stalls],
    runAt: row[COL.runAt],
    createdAt: row[COL.createdAt],
    startedAt: row[COL.startedAt],
    finishedAt: row[COL.finishedAt],
    lease: token === null ? null : { owner: row[COL.leaseOwner] ?? '', token, expiresAt: row[COL.leaseUntil] ?? 0 },
    progress: row[COL.progress],
    result: row[COL.result],
    errors: errors === null ? [] : (JSON.parse(errors) as AttemptError[]),
  };
}

// -------------------------------------------------------------------- array literals

/*
 * Batch statements take their columns as arrays. `pg` turns a JS array into an array
 * literal by quoting and escaping every element with two regular expressions; these build
 * the same literal in one pass, quoting only elements that need it (ids, tokens and most
 * names need none), which measured about a third of the driver's time per array. The SQL
 * casts every such parameter (`$1::bigint[]`), so the literal is parsed as the right type.
 */

/** Elements that may stand unquoted in an array literal (and are not the word NULL). */
const BARE = /^[A-Za-z0-9_.:-]+$/;

/** `{a,"b c",NULL}`: an array literal of texts, null elements as NULL. */
export function textArray(values: readonly (string | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (i > 0) out += ',';
    if (v === null) out += 'NULL';
    else if (BARE.test(v) && !(v.length === 4 && v.toUpperCase() === 'NULL')) out += v;
    else out += `"${v.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
  }
  return `${out}}`;
}

/** `{1,2,NULL}`: an array literal of integers (safe integers; null as NULL). */
export function intArray(values: readonly (number | null)[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (i > 0) out += ',';
    out += v === null ? 'NULL' : String(v);
  }
  return `${out}}`;
}

/** `{t,f}`: an array literal of booleans. */
export function boolArray(values: readonly boolean[]): string {
  let out = '{';
  for (let i = 0; i < values.length; i++) out += i > 0 ? (values[i] ? ',t' : ',f') : values[i] ? 't' : 'f';
  return `${out}}`;
}

/** Numbers from int8 columns arrive as numbers (see the pool's type parser); arrays of them may arrive as strings. */
export function num(value: unknown): number {
  return typeof value === 'number' ? value : Number(value);
}
