/**
 * The job model, shared by the engine, every store, the server and the CLI.
 *
 * Glossary
 * - queue: a named stream of jobs. Workers subscribe to queues; pause/resume is per queue.
 * - job: one unit of work: a `name` (what to do) and JSON `data` (with what), plus options.
 * - attempt: one run of a job's handler. A job is tried up to `maxAttempts` times.
 * - lease: the right to run one attempt, held by one worker (`owner`) and proven by a
 *   `token`. It expires unless renewed; a store rejects acknowledgements whose token is
 *   not the job's current one (fencing), so a worker that lost a job can never finish it.
 * - stall: a lease that expired because its worker died or stopped renewing. The job goes
 *   back to `waiting`, or to `failed` after `maxStalls` stalls.
 * - dead letter: the `failed` state: attempts exhausted, unrecoverable, or stalled too often.
 */

/**
 * The states a job moves through (diagram in docs/architecture.md):
 *
 *   add ──▶ waiting ◀──────── promote / due ──── delayed ◀── add with delay
 *              │  ▲                                 ▲
 *        claim │  │ stall (lease expired)           │ attempt failed, retry with backoff
 *              ▼  │                                 │
 *            active ────────────────────────────────┘
 *              │ └──── attempt failed, no attempts left / unrecoverable / stalled too often ──▶ failed
 *              └──── handler returned ──▶ completed
 *   waiting | delayed | active ── cancel ──▶ cancelled;   failed | completed | cancelled ── retry ──▶ waiting
 */
export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'cancelled';

export const JOB_STATES: readonly JobState[] = ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'];

/** States in which a job still has work ahead of it; a custom `jobId` deduplicates against these. */
export const LIVE_STATES: readonly JobState[] = ['waiting', 'delayed', 'active'];

/** States a job ends in; retention (`removeOnComplete`, `removeOnFail`, `clean`) applies to these. */
export const FINISHED_STATES: readonly JobState[] = ['completed', 'failed', 'cancelled'];

/** Why an attempt (or the whole job) failed. One entry per failed attempt, oldest first. */
export interface AttemptError {
  readonly message: string;
  readonly name?: string;
  readonly stack?: string;
  /** Epoch milliseconds. */
  readonly at: number;
  /** The attempt number this error ended (1-based). */
  readonly attempt: number;
  /** Set when the failure was not thrown by the handler: `stalled`, `timeout`, `cancelled`. */
  readonly reason?: 'stalled' | 'timeout' | 'unrecoverable';
}

export interface JobLogEntry {
  readonly at: number;
  readonly message: string;
}

export interface Lease {
  /** The worker holding the lease (its id, unique per worker instance). */
  readonly owner: string;
  /** Opaque proof of the lease; changes on every claim. */
  readonly token: string;
  /** Epoch milliseconds. */
  readonly expiresAt: number;
}

/** How long to wait before the next attempt. `delay` is in milliseconds. */
export type BackoffOptions =
  | { readonly type: 'fixed'; readonly delay: number; readonly jitter?: number }
  | { readonly type: 'exponential'; readonly delay: number; readonly jitter?: number; readonly maxDelay?: number }
  /** Resolved by the worker's `backoffStrategies[type]`: functions cannot be stored with a job. */
  | { readonly type: string; readonly delay?: number };

/** Retention for a finished job: `true` removes it at once, a number keeps that many, or by age/count. */
export type RetentionOption = boolean | number | { readonly age?: number; readonly count?: number };

/**
 * The options stored with a job, after validation and defaults. They travel with the job
 * to whichever worker claims it (also over HTTP), so they are plain JSON.
 */
export interface StoredJobOptions {
  readonly attempts: number;
  readonly backoff?: BackoffOptions;
  /** Milliseconds a single attempt may run. */
  readonly timeout?: number;
  /** Milliseconds a claim's lease lasts before it must be renewed (overrides the worker's). */
  readonly leaseMs?: number;
  readonly removeOnComplete?: RetentionOption;
  readonly removeOnFail?: RetentionOption;
}

/** A job as the store keeps it. JSON fields stay serialized text until someone reads them. */
export interface JobRecord {
  readonly id: string;
  readonly queue: string;
  readonly name: string;
  /** JSON text of the job's data. */
  readonly data: string;
  readonly opts: StoredJobOptions;
  readonly state: JobState;
  /** Higher runs first. */
  readonly priority: number;
  /** Finished attempts (failed or completed); a stalled attempt does not count. */
  readonly attemptsMade: number;
  readonly maxAttempts: number;
  /** How many times the job's lease expired while it ran. */
  readonly stalls: number;
  /** Epoch ms before which the job is not run. */
  readonly runAt: number;
  readonly createdAt: number;
  /** When the current or last attempt started. */
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly lease: Lease | null;
  /** JSON text of the last progress value, or null. */
  readonly progress: string | null;
  /** JSON text of the handler's return value, or null. */
  readonly result: string | null;
  readonly errors: readonly AttemptError[];
}
