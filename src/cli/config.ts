/**
 * The CLI's configuration, resolved in one place with one precedence for every command:
 *
 *   1. a flag on the command line (`--url`, `--host`, `--port`, `--server`, `--key`)
 *   2. the environment: `CONVEYOR_URL` (then `DATABASE_URL`), `CONVEYOR_HOST`, `CONVEYOR_PORT`,
 *      `CONVEYOR_SERVER`, `CONVEYOR_API_KEY`
 *   3. the defaults below
 *
 * Every value remembers where it came from, so errors can say "the store URL from
 * DATABASE_URL" and `conveyor config` can show it. Secrets (URL passwords, API keys) are
 * masked by `maskedConfig` and never printed otherwise.
 */
import { UsageError } from './errors.ts';

/** The library's default store (src/store/open.ts DEFAULT_STORE_URL; a test keeps them equal). Not imported, so `--help` needs no store code. */
export const DEFAULT_URL = 'sqlite://.conveyor/conveyor.db';
export const DEFAULT_HOST = '127.0.0.1';
export const DEFAULT_PORT = 8080;

/** Where a value came from: `--url`, `CONVEYOR_URL`, `default`, … */
export type Source = string;

export interface Setting<T> {
  readonly value: T;
  readonly source: Source;
}

export interface CliConfig {
  /** The store URL. */
  readonly url: Setting<string>;
  /** The address `conveyor serve` binds. */
  readonly host: Setting<string>;
  /** The port `conveyor serve` listens on. */
  readonly port: Setting<number>;
  /** A conveyor server's base URL, for commands that work over HTTP (`conveyor worker --server`, later). */
  readonly server: Setting<string | null>;
  /** An API key for that server. */
  readonly apiKey: Setting<string | null>;
}

/** Flags as commander hands them over; any may be absent. */
export interface ConfigFlags {
  readonly url?: string | undefined;
  readonly host?: string | undefined;
  readonly port?: number | undefined;
  readonly server?: string | undefined;
  readonly key?: string | undefined;
}

type Env = Readonly<Record<string, string | undefined>>;

function nonEmpty(value: string | undefined): value is string {
  return value !== undefined && value.trim() !== '';
}

function pick<T>(flag: T | undefined, flagName: string, env: Env, envNames: readonly string[], parse: (text: string, from: string) => T, fallback: T): Setting<T> {
  if (flag !== undefined) return { value: flag, source: flagName };
  for (const name of envNames) {
    const text = env[name];
    if (nonEmpty(text)) return { value: parse(text.trim(), name), source: name };
  }
  return { value: fallback, source: 'default' };
}

/** Parses a port number; `from` names the flag or variable for the message. */
export function parsePort(text: string, from: string): number {
  const n = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(n) || n < 0 || n > 65535) throw new UsageError(`${from} must be a port number from 0 to 65535 (0 picks a free one), got '${text}'`);
  return n;
}

export function resolveConfig(flags: ConfigFlags = {}, env: Env = process.env): CliConfig {
  return {
    url: pick(flags.url, '--url', env, ['CONVEYOR_URL', 'DATABASE_URL'], (t) => t, DEFAULT_URL),
    host: pick(flags.host, '--host', env, ['CONVEYOR_HOST'], (t) => t, DEFAULT_HOST),
    port: pick(flags.port, '--port', env, ['CONVEYOR_PORT'], parsePort, DEFAULT_PORT),
    server: pick<string | null>(flags.server, '--server', env, ['CONVEYOR_SERVER'], (t) => t, null),
    apiKey: pick<string | null>(flags.key, '--key', env, ['CONVEYOR_API_KEY'], (t) => t, null),
  };
}

/**
 * A URL with its passwords masked: `user:password@`, `:password@`, a `password=` parameter,
 * and the same inside a URL-encoded `listenUrl`.
 */
export function maskUrl(url: string): string {
  return url
    .replace(/\/\/([^:/@?#&]*):([^@/]+)@/g, '//$1:***@')
    .replace(/(%2F%2F)([^%:/@&]*)(%3A)([^&]*?)(%40)/gi, '$1$2$3***$5')
    .replace(/([?&]password=)[^&]*/gi, '$1***');
}

/** `cvk_<id>_<secret>` → `cvk_<id>_***`; anything else → `***`. */
export function maskKey(key: string): string {
  const m = /^(cvk_[0-9a-f]+_)/.exec(key);
  return m ? `${m[1]}***` : '***';
}

/** What a store URL points at, for `conveyor config` and error messages (never with a password). */
export async function describeStoreUrl(url: string): Promise<string> {
  try {
    const { parseStoreUrl } = await import('../store/open.ts');
    const parsed = parseStoreUrl(url);
    if (parsed.kind === 'sqlite') return parsed.path === ':memory:' ? 'SQLite in memory (this process only)' : `SQLite file ${parsed.path}`;
    if (parsed.kind === 'postgres') {
      const schema = /[?&]schema=([^&]*)/.exec(url)?.[1];
      return `PostgreSQL, schema ${schema === undefined ? 'conveyor (default)' : decodeURIComponent(schema)}`;
    }
    return `${parsed.kind} (not available in this version)`;
  } catch (err) {
    return `not a usable store URL: ${err instanceof Error ? err.message : String(err)}`;
  }
}

/** The configuration with secrets masked, as `conveyor config` prints it. */
export async function maskedConfig(config: CliConfig): Promise<Record<string, { value: string | number | null; source: Source; note?: string }>> {
  return {
    url: { value: maskUrl(config.url.value), source: config.url.source, note: await describeStoreUrl(config.url.value) },
    host: { value: config.host.value, source: config.host.source },
    port: { value: config.port.value, source: config.port.source },
    server: { value: config.server.value === null ? null : maskUrl(config.server.value), source: config.server.source },
    apiKey: { value: config.apiKey.value === null ? null : maskKey(config.apiKey.value), source: config.apiKey.source },
  };
}
