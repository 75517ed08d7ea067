/**
 * Turns a store URL into a Store. The only place that knows which stores exist.
 *
 *   (nothing)                     → CONVEYOR_URL, else sqlite://.conveyor/conveyor.db (relative to the working directory)
 *   sqlite:///var/lib/app/q.db    → absolute path (three slashes)
 *   sqlite://data/q.db            → relative to the working directory
 *   sqlite::memory:               → in-memory, this process only (tests)
 *   ./q.db, /abs/q.db             → a plain path is a SQLite file
 *   ?durability=full              → fsync every commit (default: normal)
 *   postgres://user@host:5432/db  → PostgreSQL (also postgresql://); parameters schema, poolSize,
 *                                   statementTimeoutMs, connectTimeoutMs, listenUrl, listen, signalPollMs,
 *                                   preparedStatements; the rest (sslmode, …) go to `pg`
 */
import path from 'node:path';
import { StoreError, ValidationError } from '../errors.ts';
import type { Store } from './contract.ts';
import { openSqliteStore } from '../stores/sqlite/index.ts';
import { PostgresStore } from '../stores/postgres/index.ts';

export const DEFAULT_STORE_URL = 'sqlite://.conveyor/conveyor.db';

export interface OpenStoreOptions {
  readonly url?: string | undefined;
  readonly durability?: 'normal' | 'full' | undefined;
  readonly busyTimeoutMs?: number | undefined;
}

export type ParsedStoreUrl =
  | { readonly kind: 'sqlite'; readonly path: string; readonly durability: 'normal' | 'full' | undefined }
  | { readonly kind: 'postgres' | 'redis'; readonly url: string };

/** Masks the passwords in a URL for messages and `config` output (also in a nested, URL-encoded `listenUrl`). */
export function redactUrl(url: string): string {
  return url.replace(/\/\/([^:/@?#&]+):([^@/]+)@/g, '//$1:***@').replace(/(%2F%2F)([^%:/@&]*)(%3A)([^&]*?)(%40)/gi, '$1$2$3***$5');
}

export function parseStoreUrl(url: string): ParsedStoreUrl {
  if (typeof url !== 'string' || url.trim() === '') throw new ValidationError('INVALID_ARGUMENT', 'store url must be a non-empty string');
  if (/^postgres(ql)?:\/\//i.test(url)) return { kind: 'postgres', url };
  if (/^rediss?:\/\//i.test(url)) return { kind: 'redis', url };
  let rest = url;
  let query = '';
  const q = rest.indexOf('?');
  if (q >= 0) {
    query = rest.slice(q + 1);
    rest = rest.slice(0, q);
  }
  const params = new URLSearchParams(query);
  for (const key of params.keys()) {
    if (key !== 'durability') throw new ValidationError('UNKNOWN_OPTION', `store url: unknown parameter '${key}' (sqlite urls accept ?durability=normal|full)`);
  }
  const d = params.get('durability');
  if (d !== null && d !== 'normal' && d !== 'full') throw new ValidationError('INVALID_ARGUMENT', `store url: durability must be normal or full, got '${d}'`);
  const durability = d ?? undefined;
  if (rest === 'sqlite::memory:' || rest === ':memory:') return { kind: 'sqlite', path: ':memory:', durability };
  let file: string;
  if (/^sqlite:\/\//i.test(rest)) file = rest.slice('sqlite://'.length);
  else if (/^file:\/\//i.test(rest)) file = rest.slice('file://'.length);
  else if (/^sqlite:/i.test(rest)) file = rest.slice('sqlite:'.length);
  else if (/^[a-z][a-z0-9+.-]*:\/\//i.test(rest)) {
    throw new StoreError('UNSUPPORTED_STORE', `unsupported store url ${redactUrl(url)}: use sqlite://path/to/file.db or postgres://user@host/db (redis:// is planned)`);
  } else file = rest;
  if (file === '') throw new ValidationError('INVALID_ARGUMENT', `store url ${url} has no file path`);
  return { kind: 'sqlite', path: path.resolve(decodeURIComponent(file)), durability };
}

export function openStore(options: OpenStoreOptions): Store {
  const url = options.url ?? process.env.CONVEYOR_URL ?? DEFAULT_STORE_URL;
  const parsed = parseStoreUrl(url);
  switch (parsed.kind) {
    case 'sqlite':
      return openSqliteStore({
        path: parsed.path,
        durability: options.durability ?? parsed.durability ?? 'normal',
        busyTimeoutMs: options.busyTimeoutMs ?? 30_000,
      });
    case 'postgres':
      // No I/O here: Conveyor.open connects and migrates through store.migrate().
      return new PostgresStore({ url: parsed.url });
    case 'redis':
      throw new StoreError('UNSUPPORTED_STORE', 'the redis store is not available in this version yet; use a sqlite:// or postgres:// url');
  }
}
