/**
 * The retry decision for a failed attempt: retry when, or give up. Pure engine logic,
 * above the Store, so every store behaves the same.
 */
import { UnrecoverableError } from '../errors.ts';
import type { BackoffOptions, StoredJobOptions } from '../job.ts';

/**
 * A named backoff strategy given to a worker. Returns the delay in ms before the next
 * attempt, or `null` (or a negative number) to stop retrying and fail the job now.
 */
export type BackoffStrategy = (attemptsMade: number, error: unknown, job: { readonly id: string; readonly name: string }) => number | null;

export interface RetryInput {
  readonly opts: StoredJobOptions;
  /** Finished attempts including the one that just failed. */
  readonly attemptsMade: number;
  readonly error: unknown;
  readonly now: number;
  readonly job: { readonly id: string; readonly name: string };
  readonly strategies: Readonly<Record<string, BackoffStrategy>> | undefined;
  /** Random source in [0, 1), replaceable in tests. */
  readonly random?: () => number;
}

/** Epoch ms of the next attempt, or null when the job should go to `failed`. */
export function nextAttemptAt(input: RetryInput): number | null {
  if (input.error instanceof UnrecoverableError) return null;
  if (input.attemptsMade >= input.opts.attempts) return null;
  const delay = backoffDelay(input.opts.backoff, input.attemptsMade, input);
  return delay === null ? null : input.now + delay;
}

function backoffDelay(backoff: BackoffOptions | undefined, attemptsMade: number, input: RetryInput): number | null {
  if (backoff === undefined) return 0;
  const random = input.random ?? Math.random;
  const withJitter = (delay: number, jitter: number | undefined) =>
    jitter ? Math.round(delay * (1 - jitter * random())) : delay;
  switch (backoff.type) {
    case 'fixed':
      return withJitter(backoff.delay ?? 0, 'jitter' in backoff ? backoff.jitter : undefined);
    case 'exponential': {
      const b = backoff as Extract<BackoffOptions, { type: 'exponential' }>;
      const raw = b.delay * 2 ** Math.max(0, attemptsMade - 1);
      return withJitter(Math.min(raw, b.maxDelay ?? Number.MAX_SAFE_INTEGER), b.jitter);
    }
    default: {
      const strategy = input.strategies?.[backoff.type];
      if (!strategy) {
        // Failing loudly beats retrying on a guessed schedule; the message names the fix.
        throw new Error(`no backoff strategy named '${backoff.type}': pass backoffStrategies: { '${backoff.type}': fn } to the worker`);
      }
      const d = strategy(attemptsMade, input.error, input.job);
      return d === null || d < 0 || !Number.isFinite(d) ? null : Math.round(d);
    }
  }
}
