/**
 * Row ↔ JobRecord mapping for the SQLite store: state codes, the compact encoding of job
 * options, and how public job ids map to rows.
 *
 * Nothing here touches the database; these are pure functions shared by every module.
 */
import type { AttemptError, JobRecord, JobState, StoredJobOptions } from '../../job.ts';

/**
 * States are stored as small integers: one byte per row (zero bytes for `waiting`, since
 * SQLite encodes the integers 0 and 1 in the record header alone) and integer comparisons
 * in the partial indexes. The numbering is part of the on-disk format: live states are
 * below 3 and finished states 3 and up, which the `jobs_finished` index relies on.
 */
export const STATE = {
  waiting: 0,
  active: 1,
  delayed: 2,
  completed: 3,
  failed: 4,
  cancelled: 5,
} as const satisfies Record<JobState, number>;

export type StateCode = (typeof STATE)[JobState];

const STATE_NAMES: readonly JobState[] = ['waiting', 'active', 'delayed', 'completed', 'failed', 'cancelled'];

export function stateName(code: number): JobState {
  const name = STATE_NAMES[code];
  if (name === undefined) throw new Error(`unknown job state code ${code}`);
  return name;
}

/** Codes of finished states start here (see STATE). */
export const FIRST_FINISHED_CODE = 3;

// ----------------------------------------------------------------------------- ids

/**
 * Public ids: a caller-chosen id is stored in `key` and is its own public id; a job without
 * one is known by its row's `seq` in decimal. The engine never lets a caller choose an
 * all-digit id, so the two spaces cannot collide.
 *
 * Returns the seq an id denotes, or null when the id is a key. Only the canonical decimal
 * form counts ('007' is not job 7), so every job has exactly one id.
 */
export function seqOf(id: string): number | null {
  const c = id.charCodeAt(0);
  // Quick reject: almost every key starts with a non-digit.
  if (!(c >= 48 && c <= 57)) return null;
  if (!/^[0-9]+$/.test(id)) return null;
  const n = Number(id);
  return Number.isSafeInteger(n) && String(n) === id ? n : -1;
}
// Note: an all-digit id that is not canonical (or too large) yields -1, a seq no row has,
// so lookups answer "not found" instead of falling back to a key lookup.

export function publicId(key: string | null, seq: number): string {
  return key ?? String(seq);
}

// ------------------------------------------------------------------------- options

/**
 * Options are stored split: `attempts` lives in `max_attempts` and `leaseMs` in `lease_ms`
 * (the SQL reads both), and only the remaining keys are kept as JSON in `opts`, which is
 * NULL in the common case of no other options. This saves ~15-25 bytes per job.
 *
 * Engines usually pass the same defaults object for many jobs, so the encoding is cached
 * per object identity.
 */
const encodedOpts = new WeakMap<StoredJobOptions, string | null>();

export function encodeOpts(opts: StoredJobOptions): string | null {
  const cached = encodedOpts.get(opts);
  if (cached !== undefined) return cached;
  let rest: Record<string, unknown> | null = null;
  for (const k in opts) {
    if (k === 'attempts' || k === 'leaseMs') continue;
    const v = (opts as unknown as Record<string, unknown>)[k];
    if (v === undefined) continue;
    (rest ??= {})[k] = v;
  }
  const text = rest === null ? null : JSON.stringify(rest);
  encodedOpts.set(opts, text);
  return text;
}

export function decodeOpts(text: string | null, maxAttempts: number, leaseMs: number | null): StoredJobOptions {
  const opts: Record<string, unknown> = { attempts: maxAttempts };
  if (text !== null) Object.assign(opts, JSON.parse(text) as Record<string, unknown>);
  if (leaseMs !== null) opts['leaseMs'] = leaseMs;
  return opts as unknown as StoredJobOptions;
}

// ---------------------------------------------------------------------------- rows

/** The columns every JobRecord-producing query selects (or RETURNs), in this order. */
export const JOB_COLUMNS =
  'seq, key, queue, name, data, opts, state, priority, attempts_made, max_attempts, stalls, run_at, created_at, ' +
  'lease_ms, started_at, finished_at, lease_owner, lease_token, lease_until, progress, result, errors';

/** A row as node:sqlite returns it for JOB_COLUMNS. */
export interface JobRow {
  readonly seq: number;
  readonly key: string | null;
  readonly queue: number;
  readonly name: string;
  readonly data: string;
  readonly opts: string | null;
  readonly state: number;
  readonly priority: number;
  readonly attempts_made: number;
  readonly max_attempts: number;
  readonly stalls: number;
  readonly run_at: number;
  readonly created_at: number;
  readonly lease_ms: number | null;
  readonly started_at: number | null;
  readonly finished_at: number | null;
  readonly lease_owner: string | null;
  readonly lease_token: string | null;
  readonly lease_until: number | null;
  readonly progress: string | null;
  readonly result: string | null;
  readonly errors: string | null;
}

export function toJobRecord(row: JobRow, queueName: string): JobRecord {
  return {
    id: row.key ?? String(row.seq),
    queue: queueName,
    name: row.name,
    data: row.data,
    opts: decodeOpts(row.opts, row.max_attempts, row.lease_ms),
    state: stateName(row.state),
    priority: row.priority,
    attemptsMade: row.attempts_made,
    maxAttempts: row.max_attempts,
    stalls: row.stalls,
    runAt: row.run_at,
    createdAt: row.created_at,
    startedAt: row.started_at,
    finishedAt: row.finished_at,
    lease:
      row.lease_token === null
        ? null
        : { owner: row.lease_owner ?? '', token: row.lease_token, expiresAt: row.lease_until ?? 0 },
    progress: row.progress,
    result: row.result,
    errors: row.errors === null ? [] : (JSON.parse(row.errors) as AttemptError[]),
  };
}

/** Claim order: higher priority first, then earlier runAt, then insertion order. */
export function compareClaimOrder(a: JobRow, b: JobRow): number {
  return b.priority - a.priority || a.run_at - b.run_at || a.seq - b.seq;
}
