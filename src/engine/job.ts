/**
 * `Job`: the object users hold. A read-only view of a stored job with its JSON fields
 * parsed on first use, plus `updateProgress` and `log`, which go through the store
 * (fenced by the lease token when the job object belongs to a running attempt).
 */
import { ConveyorError, LeaseLostError } from '../errors.ts';
import type { AttemptError, JobRecord, JobState, Lease, StoredJobOptions } from '../job.ts';
import type { JobWriteOutcome, Store, WorkerBackend } from '../store/contract.ts';
import { serializeJson } from '../options.ts';

/** What a job object needs to write progress and logs. */
export interface JobWriter {
  readonly backend: Pick<WorkerBackend, 'updateProgress' | 'addLogs'> | Pick<Store, 'updateProgress' | 'addLogs'>;
  readonly maxPayloadBytes: number;
}

const UNPARSED = Symbol('unparsed');

export class Job<Data = unknown, Result = unknown> {
  readonly id: string;
  readonly queueName: string;
  readonly name: string;
  readonly opts: StoredJobOptions;
  /** The state when this object was read; call `queue.getJob` for a fresh view. */
  readonly state: JobState;
  readonly priority: number;
  readonly attemptsMade: number;
  readonly maxAttempts: number;
  readonly stalls: number;
  readonly runAt: number;
  readonly createdAt: number;
  readonly startedAt: number | null;
  readonly finishedAt: number | null;
  readonly lease: Lease | null;
  readonly errors: readonly AttemptError[];
  #dataText: string;
  #data: Data | typeof UNPARSED = UNPARSED;
  #progressText: string | null;
  #resultText: string | null;
  readonly #writer: JobWriter | undefined;

  constructor(record: JobRecord, writer?: JobWriter) {
    this.id = record.id;
    this.queueName = record.queue;
    this.name = record.name;
    this.opts = record.opts;
    this.state = record.state;
    this.priority = record.priority;
    this.attemptsMade = record.attemptsMade;
    this.maxAttempts = record.maxAttempts;
    this.stalls = record.stalls;
    this.runAt = record.runAt;
    this.createdAt = record.createdAt;
    this.startedAt = record.startedAt;
    this.finishedAt = record.finishedAt;
    this.lease = record.lease;
    this.errors = record.errors;
    this.#dataText = record.data;
    this.#progressText = record.progress;
    this.#resultText = record.result;
    this.#writer = writer;
  }

  /** The job's data, parsed from JSON on first access. */
  get data(): Data {
    if (this.#data === UNPARSED) this.#data = JSON.parse(this.#dataText) as Data;
    return this.#data;
  }

  /** The last progress value reported, or null. */
  get progress(): unknown {
    return this.#progressText === null ? null : JSON.parse(this.#progressText);
  }

  /** The handler's return value once completed, else null. (BullMQ: `returnvalue`.) */
  get result(): Result | null {
    return this.#resultText === null ? null : (JSON.parse(this.#resultText) as Result);
  }

  get returnvalue(): Result | null {
    return this.result;
  }

  /** The message of the last failed attempt, if any. (BullMQ: `failedReason`.) */
  get failedReason(): string | undefined {
    return this.errors.at(-1)?.message;
  }

  /** Saves a progress value (any JSON: a percentage, an object). */
  async updateProgress(progress: unknown): Promise<void> {
    const writer = this.#requireWriter();
    const text = serializeJson(progress, writer.maxPayloadBytes, 'progress');
    const outcome = await settle(
      writer.backend.updateProgress({ queue: this.queueName, id: this.id, progress: text, ...this.#tokenParam() }),
    );
    this.#check(outcome, 'update progress of');
    this.#progressText = text;
  }

  /** Appends a line to the job's log. */
  async log(message: string): Promise<void> {
    const writer = this.#requireWriter();
    const outcome = await settle(
      writer.backend.addLogs({ queue: this.queueName, id: this.id, entries: [{ at: Date.now(), message: String(message) }], ...this.#tokenParam() }),
    );
    this.#check(outcome, 'log to');
  }

  #tokenParam(): { token?: string } {
    return this.lease ? { token: this.lease.token } : {};
  }

  #requireWriter(): JobWriter {
    if (!this.#writer) throw new ConveyorError('INVALID_STATE', 'this job object is detached from a queue and cannot be written to');
    return this.#writer;
  }

  #check(outcome: JobWriteOutcome, what: string): void {
    if (outcome.status === 'stale') throw new LeaseLostError(`cannot ${what} job ${this.id}: this worker no longer holds its lease`);
    if (outcome.status === 'not_found') throw new ConveyorError('JOB_NOT_FOUND', `job ${this.id} not found in queue ${this.queueName}`);
  }

  toJSON(): Record<string, unknown> {
    return {
      id: this.id,
      queue: this.queueName,
      name: this.name,
      data: this.data,
      opts: this.opts,
      state: this.state,
      priority: this.priority,
      attemptsMade: this.attemptsMade,
      maxAttempts: this.maxAttempts,
      stalls: this.stalls,
      runAt: this.runAt,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      finishedAt: this.finishedAt,
      progress: this.progress,
      result: this.result,
      errors: this.errors,
      lease: this.lease ? { owner: this.lease.owner, expiresAt: this.lease.expiresAt } : null,
    };
  }
}

/** Awaits a store answer that may be synchronous. */
export function settle<T>(value: T | PromiseLike<T>): Promise<T> {
  return Promise.resolve(value);
}
