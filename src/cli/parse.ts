/**
 * Parsers for flag values. Each throws commander's `InvalidArgumentError`, which commander
 * reports as a usage error naming the flag (exit 2), or `UsageError` where it runs outside
 * commander (reading --data or a file).
 */
import fs from 'node:fs';
import { InvalidArgumentError } from 'commander';
import { API_SCOPES, type ApiScope } from '../store/contract.ts';
import type { BackoffOptions, RetentionOption } from '../job.ts';
import { UsageError } from './errors.ts';

const DURATION_UNITS: Readonly<Record<string, number>> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/**
 * A duration: `500ms`, `30s`, `15m`, `12h`, `30d`, `2w`, combinations like `1h30m`, or a
 * plain number of milliseconds. Returns milliseconds.
 */
export function parseDuration(text: string): number {
  const t = text.trim();
  if (/^\d+$/.test(t)) return Number(t);
  const re = /(\d+(?:\.\d+)?)(ms|s|m|h|d|w)/gy;
  let total = 0;
  let end = 0;
  for (let m = re.exec(t); m !== null; m = re.exec(t)) {
    total += Number(m[1]) * DURATION_UNITS[m[2]!]!;
    end = re.lastIndex;
  }
  if (t === '' || end !== t.length) throw new InvalidArgumentError(`'${text}' is not a duration: use a number of milliseconds or units like 500ms, 30s, 15m, 12h, 30d, 1h30m.`);
  return Math.round(total);
}

const SIZE_UNITS: Readonly<Record<string, number>> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 };

/** A size in bytes: `16mb`, `512kb`, `1gb` (powers of 1024) or a plain number of bytes. */
export function parseSize(text: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  const unit = SIZE_UNITS[(m?.[2] ?? '').toLowerCase() || 'b'];
  if (!m || unit === undefined) throw new InvalidArgumentError(`'${text}' is not a size: use bytes or units like 512kb, 16mb, 1gb.`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (bytes < 1) throw new InvalidArgumentError(`'${text}' must be at least 1 byte.`);
  return bytes;
}

/** An integer within [min, max]. */
export function intParser(min: number, max: number = Number.MAX_SAFE_INTEGER): (text: string) => number {
  return (text: string) => {
    const t = text.trim();
    const n = /^-?\d+$/.test(t) ? Number(t) : NaN;
    if (!Number.isSafeInteger(n) || n < min || n > max) throw new InvalidArgumentError(`'${text}' must be an integer from ${min} to ${max}.`);
    return n;
  };
}

/** A point in time: an ISO date (`2030-01-31T09:00:00Z`) or epoch milliseconds. */
export function parseTime(text: string): number {
  const t = text.trim();
  const ms = /^\d+$/.test(t) ? Number(t) : Date.parse(t);
  if (!Number.isFinite(ms)) throw new InvalidArgumentError(`'${text}' is not a time: use an ISO date like 2030-01-31T09:00:00Z, or epoch milliseconds.`);
  return ms;
}

/** `admin,read` → ['admin', 'read'], checked against the server's scopes. */
export function parseScopes(text: string): ApiScope[] {
  const scopes = text.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (scopes.length === 0) throw new InvalidArgumentError(`give one or more of ${API_SCOPES.join(', ')}, separated by commas.`);
  for (const s of scopes) {
    if (!API_SCOPES.includes(s as ApiScope)) throw new InvalidArgumentError(`unknown scope '${s}': scopes are ${API_SCOPES.join(', ')} (admin implies the others).`);
  }
  return [...new Set(scopes as ApiScope[])];
}

/** Parses JSON text, or throws a usage error naming `what` and how to quote it. */
export function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new UsageError(
      `${what} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`,
      `quote JSON for the shell, e.g. --data '{"to":"ada@example.com"}'; strings need their own quotes: --data '"hello"'`,
    );
  }
}

/** JSON that must be an object (job options). */
export function jsonObjectParser(flag: string): (text: string) => Record<string, unknown> {
  return (text: string) => {
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (err) {
      throw new InvalidArgumentError(`not valid JSON (${err instanceof Error ? err.message : String(err)}); quote it for the shell: ${flag} '{"attempts":3}'.`);
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new InvalidArgumentError('must be a JSON object.');
    return value as Record<string, unknown>;
  };
}

/**
 * `--backoff`: `exponential:1s`, `fixed:500ms`, a duration (fixed), or a JSON object such as
 * `{"type":"exponential","delay":1000,"jitter":0.5}`.
 */
export function parseBackoff(text: string): number | BackoffOptions {
  const t = text.trim();
  if (t.startsWith('{')) return jsonObjectParser('--backoff')(t) as unknown as BackoffOptions;
  const m = /^([A-Za-z][\w-]*):(.+)$/.exec(t);
  if (m) return { type: m[1]!, delay: parseDuration(m[2]!) } as BackoffOptions;
  try {
    return parseDuration(t);
  } catch {
    throw new InvalidArgumentError(`'${text}' is not a backoff: use exponential:1s, fixed:500ms, a duration, or a JSON object.`);
  }
}

/** `--remove-on-complete` / `--remove-on-fail`: `true`, `false`, a count to keep, or JSON `{"count":100,"age":3600}`. */
export function parseRetention(text: string): RetentionOption {
  const t = text.trim();
  if (t === 'true') return true;
  if (t === 'false') return false;
  if (/^\d+$/.test(t)) return Number(t);
  if (t.startsWith('{')) return jsonObjectParser('--remove-on-complete')(t) as unknown as RetentionOption;
  throw new InvalidArgumentError(`'${text}' must be true, false, a number of jobs to keep, or JSON like {"count":100,"age":3600} (age in seconds).`);
}

/** Reads all of standard input as text. */
export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

/** `--data`: JSON text, `@file` (JSON in a file) or `-` (JSON on standard input). */
export async function readData(spec: string): Promise<unknown> {
  if (spec === '-') return parseJson(await readStdin(), '--data from standard input');
  if (spec.startsWith('@')) {
    const file = spec.slice(1);
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read --data file ${file}: ${err instanceof Error ? err.message : String(err)}`, 'check the path after @ (relative paths start from the current directory)');
    }
    return parseJson(text, `--data file ${file}`);
  }
  return parseJson(spec, '--data');
}
