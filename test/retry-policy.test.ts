/** The retry decision and option normalization: pure engine logic, no store needed. */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { nextAttemptAt } from '../src/engine/retry-policy.ts';
import { didYouMean, normalizeJobOptions } from '../src/options.ts';
import { UnrecoverableError } from '../src/errors.ts';

const job = { id: '1', name: 'n' };
const base = { now: 1000, job, strategies: undefined, error: new Error('x') };

describe('retry policy', () => {
  it('retries at once without backoff and stops when attempts run out', () => {
    assert.equal(nextAttemptAt({ ...base, opts: { attempts: 3 }, attemptsMade: 1 }), 1000);
    assert.equal(nextAttemptAt({ ...base, opts: { attempts: 3 }, attemptsMade: 3 }), null);
  });
  it('fixed and exponential backoff, with maxDelay', () => {
    const fixed = { attempts: 9, backoff: { type: 'fixed', delay: 500 } } as const;
    assert.equal(nextAttemptAt({ ...base, opts: fixed, attemptsMade: 4 }), 1500);
    const exp = { attempts: 9, backoff: { type: 'exponential', delay: 100, maxDelay: 500 } } as const;
    assert.deepEqual([1, 2, 3, 4].map((a) => nextAttemptAt({ ...base, opts: exp, attemptsMade: a })! - 1000), [100, 200, 400, 500]);
  });
  it('jitter shortens the delay by up to the given fraction', () => {
    const opts = { attempts: 9, backoff: { type: 'exponential', delay: 1000, jitter: 0.5 } } as const;
    assert.equal(nextAttemptAt({ ...base, opts, attemptsMade: 1, random: () => 0 }), 2000);
    assert.equal(nextAttemptAt({ ...base, opts, attemptsMade: 1, random: () => 0.5 }), 1000 + 750);
  });
  it('custom strategies by name; null stops retrying; a missing one is an error', () => {
    const opts = { attempts: 9, backoff: { type: 'linear' } };
    const strategies = { linear: (n: number) => n * 10, never: () => null };
    assert.equal(nextAttemptAt({ ...base, opts, attemptsMade: 3, strategies }), 1030);
    assert.equal(nextAttemptAt({ ...base, opts: { attempts: 9, backoff: { type: 'never' } }, attemptsMade: 1, strategies }), null);
    assert.throws(() => nextAttemptAt({ ...base, opts: { attempts: 9, backoff: { type: 'nope' } }, attemptsMade: 1, strategies }), /backoffStrategies/);
  });
  it('UnrecoverableError never retries', () => {
    assert.equal(nextAttemptAt({ ...base, error: new UnrecoverableError('no'), opts: { attempts: 9 }, attemptsMade: 1 }), null);
  });
});

describe('job options', () => {
  it('normalizes units and defaults', () => {
    const n = normalizeJobOptions({ delay: 250, attempts: 3, backoff: 1000, priority: 7 }, undefined, 10_000);
    assert.deepEqual(n, { id: undefined, priority: 7, runAt: 10_250, opts: { attempts: 3, backoff: { type: 'fixed', delay: 1000 } } });
  });
  it('merges queue defaults under job options', () => {
    const n = normalizeJobOptions({ attempts: 2 }, { attempts: 5, timeout: 100 }, 0);
    assert.deepEqual(n.opts, { attempts: 2, timeout: 100 });
  });
  it('runAt in the past runs now', () => {
    assert.equal(normalizeJobOptions({ runAt: new Date(5) }, undefined, 100).runAt, 100);
  });
  it('suggests the closest option name', () => {
    assert.equal(didYouMean('atempts', ['attempts', 'backoff']), 'attempts');
    assert.equal(didYouMean('zzzzzz', ['attempts', 'backoff']), undefined);
  });
});
