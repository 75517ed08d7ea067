/**
 * Running the `conveyor` command (`node src/cli/main.ts …`) as a real subprocess, for the
 * CLI tests: to completion (`run`, `runCli`) or long-running (`startCli`). Every process
 * spawned here is killed with SIGKILL after the test file, whatever happened to the test.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { after } from 'node:test';

export const CLI = path.join(import.meta.dirname, '..', '..', 'src', 'cli', 'main.ts');

const live = new Set<ChildProcess>();
after(() => {
  for (const p of live) p.kill('SIGKILL');
});

const CONVEYOR_SETTINGS = ['CONVEYOR_URL', 'DATABASE_URL', 'CONVEYOR_HOST', 'CONVEYOR_PORT', 'CONVEYOR_SERVER', 'CONVEYOR_API_KEY', 'CONVEYOR_DEBUG'];

/** The environment without any conveyor settings (nor `alsoDrop`) of the machine running the tests, plus `extra`. */
export function cleanEnv(extra: Record<string, string>, alsoDrop: readonly string[] = []): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const k of [...CONVEYOR_SETTINGS, ...alsoDrop]) delete env[k];
  return { ...env, ...extra };
}

export interface Result {
  status: number | null;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  readonly env: NodeJS.ProcessEnv;
  readonly cwd: string;
  /** Written to stdin, which is then closed; without it, stdin is ignored. */
  readonly input?: string;
  /** Killed with SIGKILL after this long (default 60 s). */
  readonly timeoutMs?: number;
}

/** Runs `command` to completion. */
export function run(command: string, args: readonly string[], options: RunOptions): Promise<Result> {
  return new Promise((resolve, reject) => {
    const proc = spawn(command, args, { env: options.env, cwd: options.cwd, stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    live.add(proc);
    let stdout = '';
    let stderr = '';
    proc.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    proc.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    const timer = setTimeout(() => proc.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    proc.on('error', reject);
    proc.on('close', (status) => {
      clearTimeout(timer);
      live.delete(proc);
      resolve({ status, stdout, stderr });
    });
    if (options.input !== undefined) proc.stdin!.end(options.input);
  });
}

/** Runs the CLI to completion. */
export function runCli(args: readonly string[], options: RunOptions): Promise<Result> {
  return run(process.execPath, [CLI, ...args], options);
}

/** Asserts the exit code, showing the output when it differs. */
export function expectStatus(r: Result, status: number): void {
  assert.equal(r.status, status, `exit ${String(r.status)}, expected ${status}\nstdout: ${r.stdout}\nstderr: ${r.stderr}`);
}

/** Asserts exit 0 and returns stdout parsed as one JSON document. */
export function json(r: Result): any {
  expectStatus(r, 0);
  try {
    return JSON.parse(r.stdout);
  } catch {
    assert.fail(`stdout is not one JSON document: ${r.stdout}`);
  }
}

/** A long-running CLI process (serve, worker, demo) with its output so far. */
export interface Running {
  proc: ChildProcess;
  stdout(): string;
  stderr(): string;
  exited: Promise<number | null>;
  /** Resolves with the match once stdout matches `re`; fails after `ms` or if the process exits first. */
  waitFor(re: RegExp, ms?: number): Promise<RegExpExecArray>;
}

/** Starts the CLI with stdin ignored; see `Running`. */
export function startCli(args: readonly string[], options: { env: NodeJS.ProcessEnv; cwd: string }): Running {
  const proc = spawn(process.execPath, [CLI, ...args], { env: options.env, cwd: options.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  live.add(proc);
  let out = '';
  let err = '';
  proc.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  proc.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const exited = new Promise<number | null>((resolve) =>
    proc.on('exit', (code) => {
      live.delete(proc);
      resolve(code);
    }),
  );
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitFor(re, ms = 30_000) {
      const until = Date.now() + ms;
      for (;;) {
        const m = re.exec(out);
        if (m) return m;
        if (proc.exitCode !== null) assert.fail(`${args[0]} exited ${proc.exitCode} before printing ${re}\nstdout: ${out}\nstderr: ${err}`);
        if (Date.now() > until) assert.fail(`${args[0]} printed no ${re} within ${ms} ms\nstdout: ${out}\nstderr: ${err}`);
        await new Promise((r) => setTimeout(r, 25));
      }
    },
  };
}
