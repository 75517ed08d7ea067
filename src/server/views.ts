/**
 * How jobs, workers and keys look over HTTP, and the JSON schemas shared by routes. Job
 * data, results and progress are sent as JSON values (not as JSON text inside JSON), and
 * the lease token is sent only to the worker that claimed the job.
 */
import type { JobRecord } from '../job.ts';
import type { ClaimedJob, WorkerInfo } from '../store/contract.ts';
import { JOB_STATES } from '../job.ts';

function parse(text: string | null): unknown {
  return text === null ? null : (JSON.parse(text) as unknown);
}

export function jobView(record: JobRecord): Record<string, unknown> {
  return {
    id: record.id,
    queue: record.queue,
    name: record.name,
    data: parse(record.data),
    opts: record.opts,
    state: record.state,
    priority: record.priority,
    attemptsMade: record.attemptsMade,
    maxAttempts: record.maxAttempts,
    stalls: record.stalls,
    runAt: record.runAt,
    createdAt: record.createdAt,
    startedAt: record.startedAt,
    finishedAt: record.finishedAt,
    progress: parse(record.progress),
    result: parse(record.result),
    errors: record.errors,
    lease: record.lease ? { owner: record.lease.owner, expiresAt: record.lease.expiresAt } : null,
  };
}

/** A claimed job for its worker: the job, the attempt number and the lease with its token. */
export function claimedView(job: ClaimedJob): Record<string, unknown> {
  return {
    id: job.id,
    queue: job.queue,
    name: job.name,
    data: parse(job.data),
    opts: job.opts,
    priority: job.priority,
    attempt: job.attemptsMade + 1,
    maxAttempts: job.maxAttempts,
    runAt: job.runAt,
    createdAt: job.createdAt,
    progress: parse(job.progress),
    lease: { token: job.lease.token, expiresAt: job.lease.expiresAt },
  };
}

export function workerView(w: WorkerInfo, now: number, reportEveryMs: number): Record<string, unknown> {
  return { ...w, stale: now - w.lastSeenAt > reportEveryMs * 3 };
}

// ------------------------------------------------------------------------ schemas

/** Names and ids are printable text: no control characters (PostgreSQL text cannot even hold NUL). */
export const PRINTABLE = '^[^\\u0000-\\u001f\\u007f]*$';

/** 9999-12-31: the largest time any field takes. */
export const MAX_EPOCH_MS = 253_402_300_799_999;

export const queueParam = {
  type: 'object',
  properties: { queue: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['queue'],
} as const;

export const jobParams = {
  type: 'object',
  properties: { queue: { type: 'string', minLength: 1, maxLength: 200 }, id: { type: 'string', minLength: 1, maxLength: 400, pattern: PRINTABLE } },
  required: ['queue', 'id'],
} as const;

/** Job options as the library takes them (validated again, with helpful messages, by the library). */
export const jobOptionsSchema = {
  type: 'object',
  description: 'The library\'s job options: priority, delay, runAt (epoch ms or ISO date), attempts, backoff, timeout, jobId, removeOnComplete, removeOnFail, leaseMs.',
} as const;

export const newJobSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 200 },
    data: { description: 'Any JSON value' },
    opts: jobOptionsSchema,
  },
  required: ['name'],
  additionalProperties: false,
} as const;

export const stateSchema = { type: 'string', enum: [...JOB_STATES] } as const;

export const leaseRefSchema = {
  type: 'object',
  properties: { id: { type: 'string', minLength: 1, maxLength: 400, pattern: PRINTABLE }, token: { type: 'string', minLength: 1, maxLength: 400, pattern: PRINTABLE }, queue: { type: 'string', minLength: 1, maxLength: 200 } },
  required: ['id', 'token'],
  additionalProperties: false,
} as const;

export const errorSchema = {
  type: 'object',
  properties: { message: { type: 'string', maxLength: 10_000 }, name: { type: 'string', maxLength: 200 }, stack: { type: 'string', maxLength: 100_000 } },
  required: ['message'],
  additionalProperties: false,
} as const;

export function outcomes(results: readonly { status: string }[], ids: readonly string[]): Array<Record<string, unknown>> {
  return results.map((r, i) => ({ id: ids[i], ...r }));
}
