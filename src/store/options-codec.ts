/**
 * How stores keep a job's options: `attempts` and `leaseMs` go into their own columns
 * (queries read them), the remaining keys into one JSON text column. Shared by every store
 * so jobs read back the same everywhere; no SQL here, only the encoding.
 */
import type { StoredJobOptions } from '../job.ts';

/**
 * Options are stored split: `attempts` in a max-attempts column and `leaseMs` in a lease
 * column (the SQL reads both), and only the remaining keys are kept as JSON in `opts`, which is
 * NULL in the common case of no other options. This saves ~15-25 bytes per job.
 *
 * Not cached: a WeakMap keyed by the options object measured ~1 µs per job in bulk
 * enqueues (engines build a fresh object per job), far more than this loop costs.
 */
export function encodeOpts(opts: StoredJobOptions): string | null {
  let rest: Record<string, unknown> | null = null;
  for (const k in opts) {
    if (k === 'attempts' || k === 'leaseMs') continue;
    const v = (opts as unknown as Record<string, unknown>)[k];
    if (v === undefined) continue;
    (rest ??= {})[k] = v;
  }
  return rest === null ? null : JSON.stringify(rest);
}

export function decodeOpts(text: string | null, maxAttempts: number, leaseMs: number | null): StoredJobOptions {
  const opts: Record<string, unknown> = { attempts: maxAttempts };
  if (text !== null) Object.assign(opts, JSON.parse(text) as Record<string, unknown>);
  if (leaseMs !== null) opts['leaseMs'] = leaseMs;
  return opts as unknown as StoredJobOptions;
}
