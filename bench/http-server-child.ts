/**
 * The server under test for bench/http-bench.ts, in a process of its own so that the load
 * generator's CPU is not the server's. Prints one JSON line `{ "url": … }` when listening;
 * SIGTERM closes it.
 *
 *   node bench/http-server-child.ts <store-url>
 */
import { Conveyor } from '../src/index.ts';
import { startServer } from '../src/server/server.ts';

const url = process.argv[2];
if (!url) {
  console.error('usage: node bench/http-server-child.ts <store-url>');
  process.exit(2);
}
const cv = await Conveyor.open({ url, groupCommit: process.env.CONVEYOR_GROUP_COMMIT === 'microtask' ? 'microtask' : 'tick' });
const server = await startServer(cv, { port: 0, logger: false, rateLimitPerMinute: 0, maintenance: { intervalMs: 5000 } });
console.log(JSON.stringify({ url: server.url }));
const stop = async () => {
  await server.close();
  await cv.close({ timeoutMs: 2000 });
  process.exit(0);
};
process.on('SIGTERM', () => void stop());
process.on('SIGINT', () => void stop());
