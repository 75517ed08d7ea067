/**
 * A remote worker fleet in one process for bench/http-bench.ts: `loops` concurrent
 * claim → complete loops against the server's remote-worker API (claims of `limit` jobs,
 * one batched complete per claim, no handler work), until `total` jobs are completed.
 * Prints one JSON line `{ "jobs", "seconds", "requests" }`.
 *
 *   node bench/http-drain-client.ts <server-url> <queue> <total> [loops=4] [limit=100]
 */
import http from 'node:http';

const [base, queue, totalText, loopsText = '4', limitText = '100'] = process.argv.slice(2);
if (!base || !queue || !totalText) {
  console.error('usage: node bench/http-drain-client.ts <server-url> <queue> <total> [loops] [limit]');
  process.exit(2);
}
const total = Number(totalText);
const loops = Number(loopsText);
const limit = Number(limitText);
const agent = new http.Agent({ keepAlive: true, maxSockets: loops * 2 });

function post(path: string, body: unknown): Promise<any> {
  const payload = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(base + path, { method: 'POST', agent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } }, (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (c: string) => (text += c));
      res.on('end', () => {
        if ((res.statusCode ?? 500) >= 300) reject(new Error(`${path}: ${res.statusCode} ${text}`));
        else resolve(JSON.parse(text));
      });
    });
    req.on('error', reject);
    req.end(payload);
  });
}

let completed = 0;
let requests = 0;
const t0 = performance.now();
async function loop(): Promise<void> {
  while (completed < total) {
    const { jobs } = await post('/api/v1/claim', { queues: [queue], limit, leaseMs: 60_000, waitMs: 1000 });
    requests++;
    if (jobs.length === 0) continue;
    const { results } = await post('/api/v1/leases/complete', { items: jobs.map((j: any) => ({ id: j.id, token: j.lease.token })) });
    requests++;
    completed += results.filter((r: any) => r.status === 'applied').length;
  }
}
await Promise.all(Array.from({ length: loops }, loop));
console.log(JSON.stringify({ jobs: completed, seconds: (performance.now() - t0) / 1000, requests }));
agent.destroy();
