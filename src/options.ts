/**
 * Validation at the door. Every public option object passes through here once, is checked
 * against a key table the compiler keeps exhaustive, and comes out normalized (defaults
 * applied, one unit per quantity: milliseconds). Nothing reaches a store until it passed.
 *
 * Units: durations are milliseconds (`delay`, `timeout`, `leaseMs`, backoff `delay`),
 * except retention `age`, which is seconds as in BullMQ, where most users come from.
 */
import { ValidationError } from './errors.ts';
import type { BackoffOptions, RetentionOption, StoredJobOptions } from './job.ts';

/** Priorities are integers in this range; higher runs first (BullMQ: lower runs first). */
export const PRIORITY_MIN = -1_000_000;
export const PRIORITY_MAX = 1_000_000;
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;
const MAX_DURATION_MS = 365 * 24 * 3600 * 1000;
const MAX_ATTEMPTS = 1_000_000;
const QUEUE_NAME = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Options accepted by `queue.add` / `addBulk`, named as in BullMQ where BullMQ has the concept. */
export interface JobOptions {
  /** Integer from -1,000,000 to 1,000,000; higher runs first. Default 0. */
  readonly priority?: number;
  /** Milliseconds to wait before the job may run. Exclusive with `runAt`. */
  readonly delay?: number;
  /** When the job may run (Date or epoch ms). Exclusive with `delay`. */
  readonly runAt?: Date | number;
  /** Total tries, the first included. Default 1. */
  readonly attempts?: number;
  /** Wait between attempts: a number (fixed ms) or `{ type, delay, jitter?, maxDelay? }`. */
  readonly backoff?: number | BackoffOptions;
  /** Milliseconds one attempt may run; the handler's `signal` aborts and the attempt fails. */
  readonly timeout?: number;
  /** Your own id: adding a job whose id is still live returns that job and writes nothing. */
  readonly jobId?: string;
  readonly removeOnComplete?: RetentionOption;
  readonly removeOnFail?: RetentionOption;
  /** Lease length for this job, overriding the worker's `leaseMs`. */
  readonly leaseMs?: number;
}

const JOB_OPTION_KEYS: Record<keyof JobOptions, true> = {
  priority: true,
  delay: true,
  runAt: true,
  attempts: true,
  backoff: true,
  timeout: true,
  jobId: true,
  removeOnComplete: true,
  removeOnFail: true,
  leaseMs: true,
};

/** BullMQ options a migrating user may pass, with what to do instead. */
const NOT_YET_SUPPORTED: Readonly<Record<string, string>> = {
  repeat: 'repeatable jobs (cron schedules) are not available yet; see docs/migrating-from-bullmq.md',
  parent: 'parent/child flows are not available yet',
  lifo: 'LIFO ordering is not supported; use priority to run a job ahead of others',
  deduplication: 'use jobId: adding a job whose jobId is still live returns the existing job',
  debounce: 'use jobId: adding a job whose jobId is still live returns the existing job',
  keepLogs: 'logs are kept with the job and removed with it',
  stackTraceLimit: 'conveyor keeps the full stack of every failed attempt',
  sizeLimit: 'set maxPayloadBytes on Conveyor.open instead',
  failParentOnFailure: 'parent/child flows are not available yet',
  ignoreDependencyOnFailure: 'parent/child flows are not available yet',
  removeDependencyOnFailure: 'parent/child flows are not available yet',
  telemetry: 'not supported',
};

function levenshtein(a: string, b: string): number {
  const dp = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let prev = dp[0]!;
    dp[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = dp[j]!;
      dp[j] = Math.min(dp[j]! + 1, dp[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return dp[b.length]!;
}

/** The known name closest to `name`, if it is close enough to be a likely typo. */
export function didYouMean(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = levenshtein(name, k);
    if (d < bestDistance) {
      bestDistance = d;
      best = k;
    }
  }
  return best !== undefined && bestDistance <= Math.max(2, Math.floor(name.length / 3)) ? best : undefined;
}

/**
 * Rejects keys not in `known`, naming the closest valid key. `what` names the object in
 * the message ("job options", "worker options").
 */
export function rejectUnknownKeys(
  value: object,
  known: Readonly<Record<string, true>>,
  what: string,
  hints: Readonly<Record<string, string>> = {},
): void {
  for (const key of Object.keys(value)) {
    if (known[key]) continue;
    const hint = hints[key];
    if (hint !== undefined) {
      throw new ValidationError('UNKNOWN_OPTION', `${what}: '${key}' is not supported: ${hint}`, { details: { option: key } });
    }
    const suggestion = didYouMean(key, Object.keys(known));
    throw new ValidationError(
      'UNKNOWN_OPTION',
      `${what}: unknown option '${key}'${suggestion ? ` (did you mean '${suggestion}'?)` : ''}`,
      { details: { option: key, ...(suggestion ? { suggestion } : {}) } },
    );
  }
}

function invalid(message: string, details?: Record<string, unknown>): never {
  throw new ValidationError('INVALID_ARGUMENT', message, details ? { details } : undefined);
}

export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    invalid(`${name} must be an integer from ${min} to ${max}, got ${describe(value)}`, { option: name });
  }
  return value;
}

export function checkDuration(value: unknown, name: string, min = 0): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_DURATION_MS) {
    invalid(`${name} must be a number of milliseconds from ${min} to ${MAX_DURATION_MS}, got ${describe(value)}`, { option: name });
  }
  return Math.round(value);
}

function describe(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value);
  if (typeof value === 'object') return value === null ? 'null' : Array.isArray(value) ? 'an array' : 'an object';
  return `${typeof value === 'function' ? 'a function' : String(value)}`;
}

/** 9999-12-31T23:59:59.999Z: later run times are mistakes (seconds passed as ms twice, 1e300). */
const MAX_RUN_AT = 253_402_300_799_999;

export function checkQueueName(name: unknown): string {
  if (typeof name !== 'string' || !QUEUE_NAME.test(name)) {
    invalid(
      `invalid queue name ${describe(name)}: use 1-128 characters from letters, digits, '.', '_', ':' and '-', starting with a letter or digit`,
      { queue: typeof name === 'string' ? name : undefined },
    );
  }
  return name;
}

/** Control characters (NUL above all: PostgreSQL text cannot hold it) have no place in names and ids. */
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

export function checkJobName(name: unknown): string {
  if (typeof name !== 'string' || name.length === 0 || name.length > 256) {
    invalid(`job name must be a string of 1-256 characters, got ${describe(name)}`);
  }
  if (CONTROL_CHARS.test(name)) invalid(`job name ${JSON.stringify(name)} contains control characters; use printable text`);
  return name;
}

/** Caller-chosen ids may not be all digits: those are reserved for generated ids (as in BullMQ). */
export function checkJobId(id: unknown): string {
  if (typeof id !== 'string' || id.length === 0 || id.length > 256) {
    invalid(`jobId must be a string of 1-256 characters, got ${describe(id)}`, { option: 'jobId' });
  }
  if (CONTROL_CHARS.test(id)) invalid(`jobId ${JSON.stringify(id)} contains control characters; use printable text`, { option: 'jobId' });
  if (/^\d+$/.test(id)) {
    invalid(`jobId ${describe(id)} is all digits, which is reserved for generated ids; add a prefix such as 'order-${id}'`, {
      option: 'jobId',
    });
  }
  return id;
}

function checkRetention(value: unknown, name: string): RetentionOption {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return checkInteger(value, name, 0, Number.MAX_SAFE_INTEGER);
  if (typeof value === 'object' && value !== null && !Array.isArray(value)) {
    rejectUnknownKeys(value, { age: true, count: true }, name);
    const v = value as { age?: unknown; count?: unknown };
    const out: { age?: number; count?: number } = {};
    if (v.age !== undefined) out.age = checkInteger(v.age, `${name}.age (seconds)`, 0, Number.MAX_SAFE_INTEGER);
    if (v.count !== undefined) out.count = checkInteger(v.count, `${name}.count`, 0, Number.MAX_SAFE_INTEGER);
    return out;
  }
  return invalid(`${name} must be a boolean, a count, or { age?: seconds, count? }, got ${describe(value)}`, { option: name });
}

function checkBackoff(value: unknown): BackoffOptions {
  if (typeof value === 'number') return { type: 'fixed', delay: checkDuration(value, 'backoff') };
  if (typeof value === 'function') {
    invalid(
      "backoff functions cannot be stored with a job: give it a name, e.g. backoff: { type: 'myStrategy' }, and pass backoffStrategies: { myStrategy: fn } to the worker",
      { option: 'backoff' },
    );
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    invalid(`backoff must be a number of ms or { type, delay }, got ${describe(value)}`, { option: 'backoff' });
  }
  const v = value as Record<string, unknown>;
  rejectUnknownKeys(v, { type: true, delay: true, jitter: true, maxDelay: true }, 'backoff');
  if (typeof v.type !== 'string' || v.type.length === 0) invalid("backoff.type must be 'fixed', 'exponential' or a custom strategy name");
  const jitter = v.jitter === undefined ? undefined : checkFraction(v.jitter, 'backoff.jitter');
  if (v.type === 'fixed' || v.type === 'exponential') {
    const delay = checkDuration(v.delay ?? 0, 'backoff.delay');
    if (v.type === 'fixed') {
      if (v.maxDelay !== undefined) invalid("backoff.maxDelay applies to type 'exponential' only");
      return jitter === undefined ? { type: 'fixed', delay } : { type: 'fixed', delay, jitter };
    }
    const out: { type: 'exponential'; delay: number; jitter?: number; maxDelay?: number } = { type: 'exponential', delay };
    if (jitter !== undefined) out.jitter = jitter;
    if (v.maxDelay !== undefined) out.maxDelay = checkDuration(v.maxDelay, 'backoff.maxDelay');
    return out;
  }
  return v.delay === undefined ? { type: v.type } : { type: v.type, delay: checkDuration(v.delay, 'backoff.delay') };
}

function checkFraction(value: unknown, name: string): number {
  if (typeof value !== 'number' || !(value >= 0 && value <= 1)) invalid(`${name} must be a number from 0 to 1, got ${describe(value)}`);
  return value;
}

/** What `add` hands to a store, minus the queue, name and data. */
export interface NormalizedJobOptions {
  readonly id: string | undefined;
  readonly priority: number;
  readonly runAt: number;
  readonly opts: StoredJobOptions;
}

/** Validates and normalizes job options, merged over a queue's defaults. */
export function normalizeJobOptions(input: JobOptions | undefined, defaults: JobOptions | undefined, now: number): NormalizedJobOptions {
  if (input !== undefined && (typeof input !== 'object' || input === null || Array.isArray(input))) {
    invalid(`job options must be an object, got ${describe(input)}`);
  }
  if (input) rejectUnknownKeys(input, JOB_OPTION_KEYS, 'job options', NOT_YET_SUPPORTED);
  const o: JobOptions = defaults ? { ...defaults, ...input } : (input ?? {});

  const priority = o.priority === undefined ? 0 : checkInteger(o.priority, 'priority', PRIORITY_MIN, PRIORITY_MAX);
  if (o.delay !== undefined && o.runAt !== undefined) invalid('give either delay or runAt, not both');
  let runAt = now;
  if (o.runAt !== undefined) {
    const ms = o.runAt instanceof Date ? o.runAt.getTime() : o.runAt;
    if (typeof ms !== 'number' || !Number.isFinite(ms)) invalid(`runAt must be a Date or epoch milliseconds, got ${describe(o.runAt)}`);
    if (ms > MAX_RUN_AT) invalid(`runAt ${describe(o.runAt)} is after the year 9999; give a real date`);
    runAt = Math.max(now, Math.round(ms));
  } else if (o.delay !== undefined) {
    runAt = now + checkDuration(o.delay, 'delay');
  }

  const opts: {
    attempts: number;
    backoff?: BackoffOptions;
    timeout?: number;
    leaseMs?: number;
    removeOnComplete?: RetentionOption;
    removeOnFail?: RetentionOption;
  } = { attempts: o.attempts === undefined ? 1 : checkInteger(o.attempts, 'attempts', 1, MAX_ATTEMPTS) };
  if (o.backoff !== undefined) opts.backoff = checkBackoff(o.backoff);
  if (o.timeout !== undefined) opts.timeout = checkDuration(o.timeout, 'timeout', 1);
  if (o.leaseMs !== undefined) opts.leaseMs = checkDuration(o.leaseMs, 'leaseMs', 100);
  if (o.removeOnComplete !== undefined && o.removeOnComplete !== false) opts.removeOnComplete = checkRetention(o.removeOnComplete, 'removeOnComplete');
  if (o.removeOnFail !== undefined && o.removeOnFail !== false) opts.removeOnFail = checkRetention(o.removeOnFail, 'removeOnFail');
  return { id: o.jobId === undefined ? undefined : checkJobId(o.jobId), priority, runAt, opts };
}

/** Checks that `value` is plain JSON (no functions, symbols, bigints, NaN, class instances, cycles). */
function assertPlainJson(value: unknown, path: string, depth: number): void {
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return;
    case 'number':
      if (!Number.isFinite(value)) notSerializable(`${path} is ${value}, which JSON cannot represent`);
      return;
    case 'undefined':
      return; // dropped by JSON, like an absent property
    case 'object': {
      if (value === null) return;
      if (depth > 100) notSerializable(`${path} is nested more than 100 levels deep (or is circular)`);
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          if (value[i] === undefined) notSerializable(`${path}[${i}] is undefined, which JSON turns into null`);
          assertPlainJson(value[i], `${path}[${i}]`, depth + 1);
        }
        return;
      }
      if (value instanceof Date) return; // serialized as an ISO string, the usual convention
      const proto = Object.getPrototypeOf(value);
      if (proto !== Object.prototype && proto !== null) {
        notSerializable(`${path} is a ${proto?.constructor?.name ?? 'class instance'}, not a plain object; convert it first`);
      }
      for (const key of Object.keys(value)) assertPlainJson((value as Record<string, unknown>)[key], `${path}.${key}`, depth + 1);
      return;
    }
    default:
      notSerializable(`${path} is a ${typeof value}, which JSON cannot represent`);
  }
}

function notSerializable(message: string): never {
  throw new ValidationError('NOT_SERIALIZABLE', `job data is not JSON-serializable: ${message}`);
}

/**
 * Serializes job data (or a result) to JSON text, refusing anything that would not
 * round-trip and anything larger than `maxBytes`.
 */
export function serializeJson(value: unknown, maxBytes: number, what = 'job data'): string {
  assertPlainJson(value, what === 'job data' ? 'data' : what, 0);
  const text = value === undefined ? 'null' : JSON.stringify(value);
  // A UTF-8 character takes at most 3 bytes per UTF-16 unit, so short text skips the exact count.
  if (text.length * 3 > maxBytes) {
    const bytes = Buffer.byteLength(text, 'utf8');
    if (bytes > maxBytes) {
      throw new ValidationError('PAYLOAD_TOO_LARGE', `${what} is ${bytes} bytes as JSON, over the limit of ${maxBytes} bytes (maxPayloadBytes)`, {
        details: { bytes, limit: maxBytes },
      });
    }
  }
  return text;
}
