/**
 * One error hierarchy for the whole of conveyor.
 *
 * Every error conveyor throws is a `ConveyorError` with a stable machine `code`
 * (listed in docs/errors.md; a test keeps the list and this table in step), a
 * `retryable` flag that says whether the same call may succeed if tried again,
 * and the underlying `cause` where there is one. Stores translate their native
 * errors (SQLITE_BUSY, SQLSTATEs, connection resets) into these classes, so no
 * caller ever needs to import a driver's error types or match on message text.
 */

/** Every code conveyor can throw, with whether a retry of the same call can help. */
export const ERROR_CODES = {
  /** An option, argument or payload failed validation. Nothing was written. */
  INVALID_ARGUMENT: { retryable: false },
  /** An option name that conveyor does not know (usually a typo; the message suggests the closest name). */
  UNKNOWN_OPTION: { retryable: false },
  /** Job data (or a result or progress value) cannot be represented as JSON. */
  NOT_SERIALIZABLE: { retryable: false },
  /** Serialized job data is larger than the configured `maxPayloadBytes`. */
  PAYLOAD_TOO_LARGE: { retryable: false },
  /** No job with that id exists in that queue. */
  JOB_NOT_FOUND: { retryable: false },
  /** The operation is not allowed in the job's current state (for example removing an active job). */
  INVALID_STATE: { retryable: false },
  /** The caller no longer holds the job's lease: another worker owns it, or it finished, stalled or was cancelled. */
  LEASE_LOST: { retryable: false },
  /** A job's handler ran past its `timeout`. */
  JOB_TIMEOUT: { retryable: false },
  /** The job failed (used by `waitForResult` to reject with the job's last error). */
  JOB_FAILED: { retryable: false },
  /** `waitForResult` gave up before the job finished. */
  WAIT_TIMEOUT: { retryable: true },
  /** The store stayed locked by other processes for longer than the configured busy limit. */
  STORE_BUSY: { retryable: true },
  /** Something with that id already exists (for example an API key id). Nothing was written. */
  CONFLICT: { retryable: false },
  /** The store could not be reached or the connection broke. */
  STORE_UNAVAILABLE: { retryable: true },
  /** The store is at a newer schema version than this code understands, or a migration failed. */
  STORE_SCHEMA: { retryable: false },
  /** The store URL cannot be understood or names a store conveyor does not have. */
  UNSUPPORTED_STORE: { retryable: false },
  /** The store cannot do this (for example adding jobs inside your own transaction on a store without the `transactionalEnqueue` capability). */
  NOT_SUPPORTED: { retryable: false },
  /** Server: the request has no API key, or the key is unknown, revoked or expired. */
  UNAUTHORIZED: { retryable: false },
  /** Server: the API key is valid but lacks the scope this operation needs. */
  FORBIDDEN: { retryable: false },
  /** Server: this API key sent too many requests; retry after the `Retry-After` seconds. */
  RATE_LIMITED: { retryable: true },
  /** Server: no such route, or no such queue (a queue exists once it has jobs or a pause flag). */
  NOT_FOUND: { retryable: false },
  /** Server: an unexpected fault on the server's side (logged there with its stack; never caused by the request's content). */
  INTERNAL: { retryable: true },
  /** The Conveyor, queue or worker was closed and cannot be used any more. */
  CLOSED: { retryable: false },
  /** A store operation failed for a reason conveyor did not recognise (a bug, or storage corruption). */
  STORE_ERROR: { retryable: false },
} as const satisfies Record<string, { retryable: boolean }>;

export type ErrorCode = keyof typeof ERROR_CODES;

export interface ConveyorErrorOptions {
  readonly cause?: unknown;
  /** Structured context for logs and HTTP error bodies (never secrets). */
  readonly details?: Readonly<Record<string, unknown>>;
}

export class ConveyorError extends Error {
  readonly code: ErrorCode;
  readonly retryable: boolean;
  readonly details: Readonly<Record<string, unknown>> | undefined;

  constructor(code: ErrorCode, message: string, options: ConveyorErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConveyorError';
    this.code = code;
    this.retryable = ERROR_CODES[code].retryable;
    this.details = options.details;
  }

  toJSON(): { code: ErrorCode; message: string; details?: Readonly<Record<string, unknown>> } {
    return this.details === undefined
      ? { code: this.code, message: this.message }
      : { code: this.code, message: this.message, details: this.details };
  }
}

/** Bad input: an option, argument or payload. Thrown before anything is written. */
export class ValidationError extends ConveyorError {
  constructor(
    code: 'INVALID_ARGUMENT' | 'UNKNOWN_OPTION' | 'NOT_SERIALIZABLE' | 'PAYLOAD_TOO_LARGE',
    message: string,
    options?: ConveyorErrorOptions,
  ) {
    super(code, message, options);
    this.name = 'ValidationError';
  }
}

/** The caller's lease on a job is gone: the job was recovered, re-claimed, cancelled or finished elsewhere. */
export class LeaseLostError extends ConveyorError {
  constructor(message: string, options?: ConveyorErrorOptions) {
    super('LEASE_LOST', message, options);
    this.name = 'LeaseLostError';
  }
}

/** A handler ran longer than the job's `timeout`. The attempt fails (and may be retried). */
export class JobTimeoutError extends ConveyorError {
  constructor(timeoutMs: number) {
    super('JOB_TIMEOUT', `job timed out after ${timeoutMs} ms`, { details: { timeoutMs } });
    this.name = 'JobTimeoutError';
  }
}

/**
 * Throw this from a handler (or wrap an error in it) to fail the job at once,
 * without using up the remaining attempts: the job goes straight to `failed`.
 */
export class UnrecoverableError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UnrecoverableError';
  }
}

/** Failures of the storage layer, translated from driver-native errors by each store. */
export class StoreError extends ConveyorError {
  /** Which store operation failed (for example `claim`), so logs name the operation rather than a SQL excerpt. */
  readonly operation: string | undefined;
  constructor(
    code: 'STORE_BUSY' | 'STORE_UNAVAILABLE' | 'STORE_SCHEMA' | 'STORE_ERROR' | 'UNSUPPORTED_STORE' | 'CONFLICT',
    message: string,
    options: ConveyorErrorOptions & { operation?: string } = {},
  ) {
    super(code, message, options);
    this.name = 'StoreError';
    this.operation = options.operation;
  }
}

export function isConveyorError(err: unknown, code?: ErrorCode): err is ConveyorError {
  return err instanceof ConveyorError && (code === undefined || err.code === code);
}
