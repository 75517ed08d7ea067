/**
 * The victim of bench.ts's `recovery` scenario: a worker in its own process, to be SIGKILLed.
 *
 *   node bench/child-worker.ts <storeUrl> <queue> <concurrency> <leaseMs> <handlerMs> <startsFile>
 *
 * Every handler start appends the job's `data.i` and a newline to `startsFile` with a
 * synchronous write, so the record survives the SIGKILL (it is in the kernel's page cache
 * before the handler goes on). Prints `ready` once the worker runs.
 */
import fs from 'node:fs';
import { Conveyor } from '../src/index.ts';

const [url, queue, concurrencyArg, leaseMsArg, handlerMsArg, startsFile] = process.argv.slice(2);
if (url === undefined || queue === undefined || startsFile === undefined) {
  process.stderr.write('usage: node bench/child-worker.ts <storeUrl> <queue> <concurrency> <leaseMs> <handlerMs> <startsFile>\n');
  process.exit(64);
}
const handlerMs = Number(handlerMsArg);
const fd = fs.openSync(startsFile, 'a');

const cv = await Conveyor.open({ url });
const worker = cv.worker<{ i: number }>(
  queue,
  async (job) => {
    fs.writeSync(fd, `${job.data.i}\n`);
    await new Promise((resolve) => setTimeout(resolve, handlerMs));
  },
  { concurrency: Number(concurrencyArg), leaseMs: Number(leaseMsArg) },
);
worker.on('error', (err) => process.stderr.write(`child worker error: ${err.message}\n`));
process.stdout.write('ready\n');
