/** Spawning real conveyor child processes (test/fixtures/*.ts) and reading their line protocol. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after } from 'node:test';

const live = new Set<ChildProcess>();

// No test may leak a process, whatever happens to it.
after(() => {
  for (const p of live) p.kill('SIGKILL');
});

/** The path of a script in test/fixtures. */
export function fixture(file: string): string {
  return path.join(import.meta.dirname, '..', 'fixtures', file);
}

export interface Child {
  /** The name given to spawnChild ('' if none): prefixes waitFor's errors. */
  readonly name: string;
  readonly proc: ChildProcess;
  /** The complete lines printed on stdout so far. */
  readonly lines: string[];
  readonly stderr: string[];
  /** Fails after `timeoutMs` (default: spawnChild's), or if the child exits first. */
  waitFor(pred: (lines: readonly string[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  readonly exited: Promise<number | null>;
}

export interface SpawnOptions {
  /** Prefixes waitFor's errors. */
  readonly name?: string;
  /** waitFor's default timeout (20 s). */
  readonly timeoutMs?: number;
}

/** Runs `node <script> ...args`, collecting stdout lines and stderr; killed after the test file if still running. */
export function spawnChild(script: string, args: readonly string[], options: SpawnOptions = {}): Child {
  const name = options.name ?? '';
  const defaultTimeoutMs = options.timeoutMs ?? 20_000;
  const prefix = name === '' ? '' : `${name}: `;
  const proc = spawn(process.execPath, [script, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  const lines: string[] = [];
  const stderr: string[] = [];
  let buf = '';
  proc.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
    buf += chunk;
    let nl;
    while ((nl = buf.indexOf('\n')) >= 0) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  proc.stderr!.setEncoding('utf8').on('data', (chunk: string) => stderr.push(chunk));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      live.delete(proc);
      resolve(code);
    }),
  );
  return {
    name,
    proc,
    lines,
    stderr,
    exited,
    async waitFor(pred, what, timeoutMs = defaultTimeoutMs) {
      const until = Date.now() + timeoutMs;
      while (!pred(lines)) {
        if (Date.now() > until) {
          throw new Error(`${prefix}timed out waiting for ${what}; stdout tail: ${lines.slice(-5).join(' | ')}; stderr: ${stderr.join('')}`);
        }
        if (proc.exitCode !== null || proc.signalCode !== null) {
          if (pred(lines)) break;
          throw new Error(`${prefix}exited (${String(proc.exitCode ?? proc.signalCode)}) before ${what}; stderr: ${stderr.join('')}`);
        }
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
