/** Spawning real conveyor child processes and reading their line protocol. */
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after } from 'node:test';

const CHILD = path.join(import.meta.dirname, '..', 'fixtures', 'child.ts');
const live = new Set<ChildProcess>();

// No test may leak a process, whatever happens to it.
after(() => {
  for (const p of live) p.kill('SIGKILL');
});

export interface Child {
  readonly proc: ChildProcess;
  readonly lines: string[];
  readonly stderr: string[];
  waitFor(pred: (lines: readonly string[]) => boolean, what: string, timeoutMs?: number): Promise<void>;
  exited: Promise<number | null>;
}

export function spawnChild(args: string[]): Child {
  const proc = spawn(process.execPath, [CHILD, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
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
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => {
    live.delete(proc);
    resolve(code);
  }));
  return {
    proc,
    lines,
    stderr,
    exited,
    async waitFor(pred, what, timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      while (!pred(lines)) {
        if (Date.now() > until) throw new Error(`timed out waiting for ${what}; stderr: ${stderr.join('')}`);
        if (proc.exitCode !== null && !pred(lines)) throw new Error(`child exited (${proc.exitCode}) before ${what}; stderr: ${stderr.join('')}`);
        await new Promise((r) => setTimeout(r, 10));
      }
    },
  };
}
