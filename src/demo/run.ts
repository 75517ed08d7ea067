/**
 * `conveyor demo` without its printing: a fresh embedded SQLite store, the HTTP server
 * (API, metrics, health, dashboard) on it, one in-process worker per queue running the
 * demo's handlers (./handlers.ts) and the producer (./producer.ts). `stop()` shuts down in
 * order: the producer, the workers (running jobs finish), the server, the store.
 */
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Conveyor } from '../engine/conveyor.ts';
import type { Worker } from '../engine/worker.ts';
import { startServer, type RunningServer } from '../server/server.ts';
import { dashboardDir } from '../server/routes/dashboard.ts';
import { CliError } from '../cli/errors.ts';
import type { QueueInfo } from '../store/contract.ts';
import { demoHandlers } from './handlers.ts';
import { startProducer, type Producer } from './producer.ts';
import { Tally } from './summary.ts';

export interface DemoOptions {
  /** The SQLite file; deleted (with its -wal/-shm) and created afresh. */
  readonly dbPath: string;
  /** The port to try first. */
  readonly port: number;
  /** Try the next ports (up to 20) when `port` is taken, then any free port. */
  readonly nextFreePort: boolean;
  /** Orders per second. */
  readonly rate: number;
  /** Called for a worker or producer error (the demo carries on). */
  readonly onError?: (err: unknown, where: string) => void;
  /** Called once, when the first job completes. */
  readonly onFirstCompleted?: () => void;
}

export interface Demo {
  readonly url: string;
  readonly urls: { readonly api: string; readonly dashboard: string | null; readonly metrics: string; readonly health: string; readonly openapi: string };
  readonly dbPath: string;
  /** Whether the dashboard's files are built (else its pages answer 503 saying how to build them). */
  readonly dashboardBuilt: boolean;
  readonly tally: Tally;
  readonly producer: Producer;
  readonly workers: readonly Worker[];
  readonly startedAt: number;
  /** Counts per queue, from the store. */
  counts(): Promise<readonly QueueInfo[]>;
  stop(): Promise<void>;
}

/** Whether `port` on 127.0.0.1 is free right now. */
function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.once('error', () => resolve(false));
    probe.listen({ host: '127.0.0.1', port, exclusive: true }, () => probe.close(() => resolve(true)));
  });
}

async function choosePort(first: number, tryNext: boolean): Promise<number> {
  if (!tryNext || first === 0) return first;
  for (let p = first; p < first + 20 && p <= 65535; p++) if (await portFree(p)) return p;
  return 0;
}

/** Deletes the demo's SQLite file and its companions, so every run starts empty. */
export function freshDatabase(dbPath: string): void {
  fs.mkdirSync(path.dirname(dbPath), { recursive: true });
  for (const suffix of ['', '-wal', '-shm', '-journal']) fs.rmSync(`${dbPath}${suffix}`, { force: true });
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Marks the database as this demo's (`<db>.pid`), refusing one another running demo
 * still uses: emptying it under that demo would pull the floor from under it.
 * Returns the function that removes the mark.
 */
function claimDatabase(dbPath: string): () => void {
  const pidFile = `${dbPath}.pid`;
  fs.mkdirSync(path.dirname(dbPath), { recursive: true });
  let other = NaN;
  try {
    other = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    // no other demo
  }
  if (Number.isInteger(other) && other > 0 && other !== process.pid && alive(other)) {
    throw new CliError(
      `another demo (pid ${other}) is using ${dbPath}, and each start empties it`,
      `stop that demo first, or give this one its own file: conveyor demo --db /tmp/demo2.db (if no demo runs, delete ${pidFile})`,
    );
  }
  fs.writeFileSync(pidFile, `${process.pid}\n`);
  return () => {
    try {
      if (fs.readFileSync(pidFile, 'utf8').trim() === String(process.pid)) fs.rmSync(pidFile, { force: true });
    } catch {
      // already gone
    }
  };
}

export async function startDemo(options: DemoOptions): Promise<Demo> {
  const release = claimDatabase(options.dbPath);
  freshDatabase(options.dbPath);
  let cv: Conveyor | undefined;
  let server: RunningServer | undefined;
  try {
    cv = await Conveyor.open({ url: `sqlite://${path.resolve(options.dbPath)}`, groupCommit: 'tick' });
    const port = await choosePort(options.port, options.nextFreePort);
    server = await startServer(cv, { host: '127.0.0.1', port, logger: false });
  } catch (err) {
    await cv?.close().catch(() => undefined);
    release();
    throw err;
  }
  const conveyor = cv;
  const onError = options.onError ?? (() => undefined);
  const add = (queue: string, name: string, data: unknown, opts?: Parameters<ReturnType<typeof conveyor.queue>['add']>[2]) => conveyor.queue(queue).add(name, data, opts);
  const handlers = demoHandlers(add);
  const tally = new Tally();
  const startedAt = Date.now();
  let firstSeen = false;
  const workers: Worker[] = [];
  const spawn = (queue: string, map: Record<string, (job: any, context: any) => Promise<unknown>>, concurrency: number) => {
    const w = conveyor.worker(
      queue,
      (job, context) => {
        const fn = map[job.name];
        if (fn === undefined) throw new Error(`the demo has no handler for ${queue}/${job.name}`);
        return fn(job, context);
      },
      { concurrency, name: `demo-${queue}` },
    );
    w.on('completed', (job) => {
      tally.completed(job.queueName);
      if (!firstSeen) {
        firstSeen = true;
        options.onFirstCompleted?.();
      }
    });
    w.on('failed', (job, _err, willRetry) => tally.failed(job.queueName, willRetry));
    w.on('error', (err) => onError(err, `worker ${queue}`));
    workers.push(w);
  };
  spawn('orders', handlers.orders, 4);
  spawn('payments', handlers.payments, 8);
  spawn('notifications', handlers.notifications, 8);
  const producer = startProducer(add, { rate: options.rate, onError: (err) => onError(err, 'producer') });

  const base = server.url;
  const hasDashboard = server.app.hasRoute({ method: 'GET', url: '/dashboard' });
  let stopping: Promise<void> | undefined;
  const running = server;
  return {
    url: base,
    urls: {
      api: `${base}/api/v1`,
      dashboard: hasDashboard ? `${base}/dashboard/` : null,
      metrics: `${base}/metrics`,
      health: `${base}/health/ready`,
      openapi: `${base}/api/v1/openapi.json`,
    },
    dbPath: options.dbPath,
    dashboardBuilt: dashboardDir() !== null,
    tally,
    producer,
    workers,
    startedAt,
    counts: async () => conveyor.store.listQueues(),
    stop() {
      stopping ??= (async () => {
        await producer.stop();
        await Promise.all(workers.map((w) => w.close()));
        await running.close();
        await conveyor.close();
        release();
      })();
      return stopping;
    },
  };
}
