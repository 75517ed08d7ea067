/**
 * Row ↔ JobRecord mapping for the SQLite store: state codes, the compact encoding of job
 * options, and how public job ids map to rows.
 *
 * Nothing here touches the database; these are pure functions shared by every module.
 */
import type { AttemptError, JobRecord, JobState } from '../../job.ts';
import { decodeOpts, encodeOpts } from '../../store/options-codec.ts';

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
 * form counts ('007' is not job 7), so every job has exactly one id: an all-digit id that
 * is not canonical (or too large) yields -1, a seq no row has, so lookups answer "not
 * found" rather than falling back to a key lookup.
 */
export function seqOf(id: string): number | null {
  const c = id.charCodeAt(0);
  // Quick reject: almost every key starts with a non-digit.
  if (!(c >= 48 && c <= 57)) return null;
  if (!/^[0-9]+$/.test(id)) return null;
  const n = Number(id);
  return Number.isSafeInteger(n) && String(n) === id ? n : -1;
}

export function publicId(key: string | null, seq: number): string {
  return key ?? String(seq);
}

// -------------------------------------------------------------------------- leases

/**
 * Lease tokens are made by the claim statement as `<random>.<queue id>.<seq>`: a random
 * part per claim call (base64url, so without dots), then the job's queue id and seq. That makes every token unique per
 * job and claim with one randomUUID per call, and lets an acknowledgement whose token
 * matched (so was written by a claim) know the job's queue and seq without another query.
 * To callers the token stays opaque.
 */
export const LEASE_TOKEN_SQL = "?2 || '.' || queue || '.' || seq";

export function leaseRef(token: string): { readonly queue: number; readonly seq: number } {
  const ref = parseLeaseToken(token);
  if (ref === null) throw new Error(`malformed lease token in the database: ${token}`);
  return ref;
}

/** leaseRef for a token from a caller, which may be anything: null when it is not one of ours. */
export function parseLeaseToken(token: string): { readonly queue: number; readonly seq: number } | null {
  const b = token.lastIndexOf('.');
  const a = b <= 0 ? -1 : token.lastIndexOf('.', b - 1);
  if (a < 0) return null;
  const queue = Number(token.slice(a + 1, b));
  const seq = Number(token.slice(b + 1));
  if (!Number.isSafeInteger(queue) || !Number.isSafeInteger(seq)) return null;
  return { queue, seq };
}

// ------------------------------------------------------------------------- options


// Options encoding is shared by all stores (src/store/options-codec.ts).
export { encodeOpts, decodeOpts };

// ---------------------------------------------------------------------------- rows

/** The columns every JobRecord-producing query selects (or RETURNs), in this order. */
export const JOB_COLUMNS =
  'seq, key, queue, name, data, opts, state, priority, attempts_made, max_attempts, stalls, run_at, created_at, ' +
  'lease_ms, started_at, finished_at, lease_owner, lease_token, lease_until, progress, result, errors';

/**
 * A row of JOB_COLUMNS as an array. Job rows are read with `setReturnArrays(true)`:
 * node:sqlite builds an object per row with one property per column, which measured
 * several microseconds per 22-column row, a large share of a claim.
 */
export type JobRow = [
  seq: number,
  key: string | null,
  queue: number,
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

/** Positions in JobRow (the order of JOB_COLUMNS). */
export const COL = {
  seq: 0,
  key: 1,
  queue: 2,
  name: 3,
  data: 4,
  opts: 5,
  state: 6,
  priority: 7,
  attemptsMade: 8,
  maxAttempts: 9,
  stalls: 10,
  runAt: 11,
  createdAt: 12,
  leaseMs: 13,
  startedAt: 14,
  finishedAt: 15,
  leaseOwner: 16,
  leaseToken: 17,
  leaseUntil: 18,
  progress: 19,
  result: 20,
  errors: 21,
} as const;

export function toJobRecord(row: JobRow, queueName: string): JobRecord {
  const token = row[COL.leaseToken];
  const errors = row[COL.errors];
  return {
    id: row[COL.key] ?? String(row[COL.seq]),
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
    lease:
      token === null ? null : { owner: row[COL.leaseOwner] ?? '', token, expiresAt: row[COL.leaseUntil] ?? 0 },
    progress: row[COL.progress],
    result: row[COL.result],
    errors: errors === null ? [] : (JSON.parse(errors) as AttemptError[]),
  };
}

/** Claim order: higher priority first, then earlier runAt, then insertion order. */
export function compareClaimOrder(a: JobRow, b: JobRow): number {
  return b[COL.priority] - a[COL.priority] || a[COL.runAt] - b[COL.runAt] || a[COL.seq] - b[COL.seq];
}
