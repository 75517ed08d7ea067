/**
 * The README's quickstart: a producer and a worker on the embedded SQLite store.
 *   node examples/quickstart.ts
 * (Import from 'conveyor-queue' in your own project; this example imports the source.)
 */
import { Conveyor } from '../src/index.ts';

const cv = await Conveyor.open(); // .conveyor/conveyor.db in the working directory
const email = cv.queue<{ to: string }, { sent: boolean }>('email');

const first = await email.add('welcome', { to: 'ada@example.com' }, { attempts: 3, backoff: { type: 'exponential', delay: 200 } });
await email.addBulk([
  { name: 'digest', data: { to: 'bob@example.com' }, opts: { priority: 5 } },
  { name: 'reminder', data: { to: 'cy@example.com' }, opts: { delay: 1000 } },
]);

let calls = 0;
const worker = cv.worker<{ to: string }, { sent: boolean }>(
  'email',
  async (job, { log }) => {
    await log(`sending ${job.name} to ${job.data.to}`);
    if (job.name === 'welcome' && ++calls === 1) throw new Error('SMTP hiccup'); // retried with backoff
    return { sent: true };
  },
  { concurrency: 5 },
);
worker.on('completed', (job) => console.log(`completed ${job.name} #${job.id} (attempt ${job.attemptsMade + 1})`));
worker.on('failed', (job, err, willRetry) => console.log(`failed ${job.name} #${job.id}: ${err.message}${willRetry ? ', will retry' : ''}`));

console.log('result of welcome:', await email.waitForResult(first.id, { timeoutMs: 10_000 }));
await new Promise((resolve) => worker.once('drained', () => resolve(undefined)));
await new Promise((r) => setTimeout(r, 1200)); // let the delayed reminder run
console.log('counts:', await email.getCounts());
await cv.close();
