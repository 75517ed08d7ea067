/**
 * A cron-like cleanup: a `cleanup` job that runs every CLEANUP_EVERY_MS (default one hour),
 * deletes completed jobs older than CLEANUP_OLDER_THAN_MS (default one day) from the queues
 * in CLEANUP_QUEUES (default `email`), and schedules its own next run.
 *
 *   node examples/cleanup-cron.ts
 *
 * How it repeats: each run adds the next one, delayed to the start of the next time slot,
 * under a jobId named after that slot (`cleanup-<slot>`). A job id that is still waiting,
 * delayed or running cannot be added twice, so however many copies of this process run
 * (one per server, say), and however often they restart, there is one chain and one
 * cleanup per slot. (A copy starting in the very moment a slot's job finishes could add
 * it once more; cleaning is idempotent, so that does no harm.)
 *
 * Real cron schedules (`every: '1h'`, cron expressions, time zones) come in a later issue;
 * this pattern works with today's API. EXAMPLE_RUN_MS stops the process after that many ms.
 */
import { Conveyor } from '../src/index.ts';

const EVERY_MS = Number(process.env.CLEANUP_EVERY_MS ?? 3_600_000);
const OLDER_THAN_MS = Number(process.env.CLEANUP_OLDER_THAN_MS ?? 86_400_000);
const QUEUES = (process.env.CLEANUP_QUEUES ?? 'email').split(',');

const cv = await Conveyor.open(); // CONVEYOR_URL, else .conveyor/conveyor.db
const maintenance = cv.queue<{ slot: number }>('maintenance');

/** The slot a time falls in, and its job: one job id per slot makes the job unique. */
const slotOf = (ms: number) => Math.floor(ms / EVERY_MS);
const schedule = (slot: number) =>
  maintenance.add('cleanup', { slot }, {
    jobId: `cleanup-${slot}`,
    runAt: slot * EVERY_MS, // the slot's start
    removeOnComplete: 10, // keep the last few runs to look at
  });

cv.worker<{ slot: number }>('maintenance', async (job, { log }) => {
  // The next run first, so a crash while cleaning does not end the chain. After downtime,
  // skip the missed slots rather than running once for each.
  await schedule(Math.max(job.data.slot, slotOf(Date.now())) + 1);
  for (const name of QUEUES) {
    const removed = await cv.queue(name).clean({ state: 'completed', olderThanMs: OLDER_THAN_MS });
    await log(`removed ${removed} completed jobs from ${name}`);
    console.log(`cleanup slot ${job.data.slot}: removed ${removed} completed jobs older than ${OLDER_THAN_MS} ms from ${name}`);
  }
});

// Start the chain at the next slot, or join the chain already there: its next job is still
// delayed under the same id, so nothing is added.
const next = await schedule(slotOf(Date.now()) + 1);
console.log(`cleanup every ${EVERY_MS} ms of ${QUEUES.join(', ')}, next at ${new Date(next.runAt).toISOString()}; Ctrl-C to stop`);

cv.closeOnSignals();
if (process.env.EXAMPLE_RUN_MS) setTimeout(() => void cv.close().then(() => console.log('cleanup stopped')), Number(process.env.EXAMPLE_RUN_MS));
