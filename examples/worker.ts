/**
 * A worker process: runs the `welcome` jobs that examples/express-producer.ts adds to the
 * `email` queue. Start as many as you like, on the same store (CONVEYOR_URL): each job runs
 * in exactly one of them, and a worker that dies mid-job has its jobs picked up by the others.
 *
 *   node examples/worker.ts
 *
 * Ctrl-C (or SIGTERM from your process manager) stops taking jobs, lets running ones finish,
 * then exits. EXAMPLE_RUN_MS stops it after that many ms (the tests use it).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Conveyor } from '../src/index.ts';

const cv = await Conveyor.open(); // the producer's store: CONVEYOR_URL, else .conveyor/conveyor.db

const worker = cv.worker<{ to: string }, { sentAt: number }>(
  'email',
  async (job, { log, signal }) => {
    await log(`sending ${job.name} to ${job.data.to}`);
    await sleep(100, undefined, { signal }); // your mail API call; pass the signal on so timeouts and shutdown can abort it
    return { sentAt: Date.now() }; // stored as the job's result
  },
  { concurrency: 10 },
);
worker.on('completed', (job) => console.log(`sent ${job.name} to ${job.data.to} (job ${job.id})`));
worker.on('failed', (job, err, willRetry) => console.log(`job ${job.id} failed: ${err.message}${willRetry ? ' (will retry)' : ''}`));
console.log('worker running on queue email; Ctrl-C to stop');

cv.closeOnSignals({ onSignal: (s) => console.log(`${s}: finishing running jobs, then exiting`) });
if (process.env.EXAMPLE_RUN_MS) setTimeout(() => void cv.close().then(() => console.log('worker stopped')), Number(process.env.EXAMPLE_RUN_MS));
