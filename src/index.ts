/**
 * conveyor's public API. Everything a user imports comes from here; the Store contract for
 * store authors is on its own subpath, `conveyor-queue/store`.
 */
export { Conveyor, type ConveyorOptions } from './engine/conveyor.ts';
export { Queue, wasDuplicate, type QueueOptions, type BulkJob, type GetJobsOptions, type CleanOptions } from './engine/queue.ts';
export { Worker, type WorkerOptions, type Handler, type JobContext, type WorkerEvents, type WorkerStats } from './engine/worker.ts';
export { Job } from './engine/job.ts';
export { RemoteConveyor, RemoteQueue, type ConnectOptions } from './client/remote.ts';
export type { BackoffStrategy } from './engine/retry-policy.ts';
export type { JobOptions } from './options.ts';
export { PRIORITY_MIN, PRIORITY_MAX, DEFAULT_MAX_PAYLOAD_BYTES } from './options.ts';
export { JOB_STATES, type JobState, type AttemptError, type JobLogEntry, type BackoffOptions, type RetentionOption, type StoredJobOptions } from './job.ts';
export type { JobCounts, QueueInfo, TransactionClient } from './store/contract.ts';
export { DEFAULT_STORE_URL } from './store/open.ts';
export {
  ConveyorError,
  ValidationError,
  LeaseLostError,
  JobTimeoutError,
  UnrecoverableError,
  StoreError,
  isConveyorError,
  ERROR_CODES,
  type ErrorCode,
} from './errors.ts';
