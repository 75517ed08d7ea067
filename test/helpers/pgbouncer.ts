/**
 * A real PgBouncer in transaction pooling mode, started by a test file in front of the
 * shared PostgreSQL server (DATABASE_URL), and stopped again at the end.
 *
 * The ini goes into a fresh temporary directory: listen on a free 127.0.0.1 port, no Unix
 * socket, `pool_mode = transaction`, `auth_type = any` (every client logs in as the
 * server's user from DATABASE_URL), a small server pool so that clients really do share
 * server connections. PgBouncer refuses to run as root, so as root it is told to switch to
 * the `postgres` user (`-u postgres`); it stays our child process either way.
 *
 * Fails (never skips) when pgbouncer is not installed: .ci/run installs it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after } from 'node:test';
import pg from 'pg';
import { DATABASE_URL } from './postgres.ts';
import { freePort, serverTempDir } from './pg-instance.ts';

export interface PgBouncer {
  readonly port: number;
  /** A postgres:// url to the database through PgBouncer (with extra query parameters, if any). */
  url(params?: Record<string, string>): string;
  /** PgBouncer's log so far (for failure messages). */
  log(): string;
  stop(): Promise<void>;
}

const running = new Set<ChildProcess>();
after(() => {
  for (const p of running) p.kill('SIGKILL');
});
process.on('exit', () => {
  for (const p of running) p.kill('SIGKILL');
});

function pgbouncerBinary(): string {
  for (const candidate of ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']) {
    if (fs.existsSync(candidate)) return candidate;
  }
  const which = spawnSync('sh', ['-c', 'command -v pgbouncer'], { encoding: 'utf8' });
  if (which.status === 0 && which.stdout.trim() !== '') return which.stdout.trim();
  throw new Error('pgbouncer is not installed (apt-get install -y pgbouncer; .ci/run installs it). The PgBouncer tests must run, not skip.');
}

export async function startPgBouncer(options: { serverPoolSize?: number } = {}): Promise<PgBouncer> {
  const binary = pgbouncerBinary();
  const upstream = new URL(DATABASE_URL);
  const database = decodeURIComponent(upstream.pathname.slice(1)) || 'postgres';
  const user = decodeURIComponent(upstream.username) || 'postgres';
  const dir = serverTempDir('conveyor-pgbouncer-');
  const port = await freePort();
  const connect = [
    `host=${upstream.hostname || '127.0.0.1'}`,
    `port=${upstream.port || '5432'}`,
    `dbname=${database}`,
    `user=${user}`,
    ...(upstream.password === '' ? [] : [`password=${decodeURIComponent(upstream.password)}`]),
  ].join(' ');
  const ini = path.join(dir, 'pgbouncer.ini');
  fs.writeFileSync(
    ini,
    [
      '[databases]',
      `${database} = ${connect}`,
      '',
      '[pgbouncer]',
      'listen_addr = 127.0.0.1',
      `listen_port = ${port}`,
      'unix_socket_dir =',
      'auth_type = any',
      'pool_mode = transaction',
      `default_pool_size = ${options.serverPoolSize ?? 4}`,
      'max_client_conn = 500',
      'query_wait_timeout = 30',
      'ignore_startup_parameters = extra_float_digits',
      'log_connections = 0',
      'log_disconnections = 0',
      '',
    ].join('\n'),
    { mode: 0o644 },
  );
  const args = process.getuid?.() === 0 ? ['-u', 'postgres', ini] : [ini];
  const proc = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(proc);
  const output: string[] = [];
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => output.push(chunk));
  const exited = new Promise<void>((resolve) =>
    proc.on('exit', () => {
      running.delete(proc);
      resolve();
    }),
  );
  const url = (params: Record<string, string> = {}): string => {
    const auth = upstream.password === '' ? encodeURIComponent(user) : `${encodeURIComponent(user)}:${upstream.password}`;
    const query = new URLSearchParams(params).toString();
    return `postgres://${auth}@127.0.0.1:${port}/${encodeURIComponent(database)}${query === '' ? '' : `?${query}`}`;
  };
  let stopped = false;
  const bouncer: PgBouncer = {
    port,
    url,
    log: () => output.join(''),
    async stop() {
      if (stopped) return;
      stopped = true;
      if (proc.exitCode === null && proc.signalCode === null) {
        proc.kill('SIGTERM');
        const timer = setTimeout(() => proc.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  // Ready once a query goes through.
  const deadline = Date.now() + 15_000;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await bouncer.stop();
      throw new Error(`pgbouncer exited at start (${String(proc.exitCode ?? proc.signalCode)}): ${output.join('')}`);
    }
    const client = new pg.Client({ connectionString: url(), connectionTimeoutMillis: 1000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return bouncer;
    } catch (err) {
      await client.end().catch(() => undefined);
      if (Date.now() > deadline) {
        await bouncer.stop();
        throw new Error(`pgbouncer did not accept queries within 15 s: ${err instanceof Error ? err.message : String(err)}\n${output.join('')}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}
