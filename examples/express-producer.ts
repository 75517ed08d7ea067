/**
 * A web app that enqueues jobs (the producer side). POST /signups with {"email": "…"} adds a
 * `welcome` job to the `email` queue and answers 202 with the job's id at once; the e-mail
 * itself is sent by a worker process (examples/worker.ts). GET /jobs/<id> shows a job.
 *
 *   node examples/express-producer.ts              # listens on http://127.0.0.1:3000
 *   node examples/worker.ts                        # in another terminal: runs the jobs
 *   curl -X POST localhost:3000/signups -H 'content-type: application/json' -d '{"email":"ada@example.com"}'
 *
 * Both processes open the same store (CONVEYOR_URL, default .conveyor/conveyor.db; with
 * PostgreSQL they can run on different machines). Other settings: PORT (default 3000, 0
 * picks a free port), EXAMPLE_RUN_MS (stop after that many ms; the tests use it).
 *
 * Plain node:http keeps the example free of dependencies. With Express the route is the same:
 *   app.post('/signups', express.json(), async (req, res) => {
 *     const job = await email.add('welcome', { to: req.body.email }, { attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
 *     res.status(202).json({ jobId: job.id });
 *   });
 * (In your own project import from 'conveyor-queue'; the examples import the source.)
 */
import http from 'node:http';
import { Conveyor, isConveyorError } from '../src/index.ts';

const cv = await Conveyor.open(); // CONVEYOR_URL, else .conveyor/conveyor.db
const email = cv.queue<{ to: string }>('email');

const server = http.createServer(async (req, res) => {
  const send = (status: number, body: unknown) => res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
  try {
    if (req.method === 'POST' && req.url === '/signups') {
      let text = '';
      for await (const chunk of req.setEncoding('utf8')) text += chunk;
      const { email: to } = JSON.parse(text || '{}') as { email?: unknown };
      if (typeof to !== 'string' || !to.includes('@')) return send(400, { error: 'send {"email": "someone@example.com"}' });
      // Resolves once the job is stored: from here on it survives a crash of this process.
      const job = await email.add('welcome', { to }, { attempts: 5, backoff: { type: 'exponential', delay: 1000 } });
      return send(202, { jobId: job.id });
    }
    const m = /^\/jobs\/([^/]+)$/.exec(req.url ?? '');
    if (req.method === 'GET' && m) {
      const job = await email.getJob(decodeURIComponent(m[1]!));
      return job ? send(200, job.toJSON()) : send(404, { error: 'no such job' });
    }
    send(404, { error: 'try POST /signups or GET /jobs/<id>' });
  } catch (err) {
    // Bad JSON, or the library refusing the input (ValidationError), is the client's fault.
    const clientError = err instanceof SyntaxError || (isConveyorError(err) && err.code === 'INVALID_ARGUMENT');
    send(clientError ? 400 : 500, { error: err instanceof Error ? err.message : String(err) });
  }
});

server.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () => {
  const { port } = server.address() as { port: number };
  console.log(`producer listening on http://127.0.0.1:${port}`);
});

// Stop taking requests, then close the store (requests in flight finish first).
let stopping = false;
async function stop(): Promise<void> {
  if (stopping) return;
  stopping = true;
  await new Promise((resolve) => server.close(resolve));
  await cv.close();
  console.log('producer stopped');
}
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
if (process.env.EXAMPLE_RUN_MS) setTimeout(stop, Number(process.env.EXAMPLE_RUN_MS));
