/**
 * A private PostgreSQL server for one test file, for tests that must stop and start the
 * server (the shared one at DATABASE_URL serves other test files running in parallel).
 *
 * `initdb` into a fresh temporary directory (as the `postgres` user when the tests run as
 * root, since PostgreSQL refuses to run as root), trust authentication, a free port on
 * 127.0.0.1, fsync off. The server is stopped and its directory removed by `destroy()`, and
 * in any case when the test file ends (after hook) or its process exits.
 *
 * Fails (never skips) when the PostgreSQL server binaries cannot be found.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';

/** A TCP port on 127.0.0.1 that was free a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

const isRoot = process.getuid?.() === 0;

/** uid and gid of the `postgres` user (root only hands directories to it). */
function postgresUser(): { uid: number; gid: number } {
  const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

/** argv that runs `command` as the postgres user when we are root, else as ourselves. */
export function asPostgres(command: string, args: readonly string[]): [string, string[]] {
  return isRoot ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, [...args]];
}

/** A fresh temporary directory the server's user owns. */
export function serverTempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  if (isRoot) {
    const { uid, gid } = postgresUser();
    fs.chownSync(dir, uid, gid);
  }
  fs.chmodSync(dir, 0o755);
  return dir;
}

/** The directory holding initdb and pg_ctl: PG_BIN, else the newest /usr/lib/postgresql/<v>/bin, else pg_config --bindir. */
function postgresBinDir(): string {
  const candidates: string[] = [];
  if (process.env.PG_BIN) candidates.push(process.env.PG_BIN);
  try {
    const versions = fs
      .readdirSync('/usr/lib/postgresql')
      .filter((v) => /^\d+$/.test(v))
      .sort((a, b) => Number(b) - Number(a));
    for (const v of versions) candidates.push(`/usr/lib/postgresql/${v}/bin`);
  } catch {
    // not a Debian layout
  }
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    // no pg_config
  }
  for (const dir of candidates) if (fs.existsSync(path.join(dir, 'initdb')) && fs.existsSync(path.join(dir, 'pg_ctl'))) return dir;
  throw new Error(`PostgreSQL server binaries (initdb, pg_ctl) not found in ${candidates.join(', ') || '/usr/lib/postgresql/*/bin'}; set PG_BIN`);
}

export interface PgInstance {
  readonly port: number;
  /** postgres://postgres@127.0.0.1:<port>/postgres */
  readonly url: string;
  /** The server's log so far (for failure messages). */
  log(): string;
  /** pg_ctl stop (`fast`: disconnect clients, shut down cleanly; `immediate`: like a crash). */
  stop(mode?: 'fast' | 'immediate'): void;
  start(): void;
  /** Stops the server (if running) and removes its directory. Idempotent. */
  destroy(): void;
}

const instances = new Set<PgInstance>();
after(() => {
  for (const instance of instances) instance.destroy();
});
process.on('exit', () => {
  for (const instance of instances) instance.destroy();
});

export async function createPgInstance(): Promise<PgInstance> {
  const bin = postgresBinDir();
  const dir = serverTempDir('conveyor-pg-');
  const data = path.join(dir, 'data');
  const logFile = path.join(dir, 'server.log');
  const port = await freePort();
  const run = (tool: string, args: string[], what: string): void => {
    const [cmd, argv] = asPostgres(path.join(bin, tool), args);
    const res = spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
    if (res.status !== 0) {
      let log = '';
      try {
        log = fs.readFileSync(logFile, 'utf8');
      } catch {
        // no log yet
      }
      throw new Error(`${what} failed (${String(res.status ?? res.signal)}): ${res.stderr}${res.stdout}\n${log}`);
    }
  };
  let running = false;
  let destroyed = false;
  const instance: PgInstance = {
    port,
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    log: () => {
      try {
        return fs.readFileSync(logFile, 'utf8');
      } catch {
        return '';
      }
    },
    stop(mode = 'fast') {
      if (!running) return;
      running = false;
      run('pg_ctl', ['-D', data, '-m', mode, '-w', '-t', '30', 'stop'], 'pg_ctl stop');
    },
    start() {
      if (running) return;
      run(
        'pg_ctl',
        [
          '-D',
          data,
          '-l',
          logFile,
          '-w',
          '-t',
          '30',
          '-o',
          `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=80`,
          'start',
        ],
        'pg_ctl start',
      );
      running = true;
    },
    destroy() {
      if (destroyed) return;
      destroyed = true;
      instances.delete(instance);
      if (running) {
        running = false;
        const [cmd, argv] = asPostgres(path.join(bin, 'pg_ctl'), ['-D', data, '-m', 'immediate', '-w', '-t', '30', 'stop']);
        spawnSync(cmd, argv, { encoding: 'utf8', timeout: 60_000 });
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  instances.add(instance);
  try {
    run('initdb', ['-D', data, '-A', 'trust', '-U', 'postgres', '--no-sync', '-E', 'UTF8', '--locale=C', '--no-instructions'], 'initdb');
    instance.start();
  } catch (err) {
    instance.destroy();
    throw err;
  }
  return instance;
}
