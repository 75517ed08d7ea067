/**
 * How stores keep API keys and worker registry entries (tables `api_keys` and `workers`):
 * one column per field, with scopes, queues and meta as JSON text. Shared by every store
 * so records read back the same everywhere; no SQL here, only the encoding.
 */
import type { ApiKeyRecord, ApiScope, WorkerInfo } from './contract.ts';

/** A column value as both drivers take it. */
type Value = string | number | null;

/** A row of `api_keys`. */
export interface KeyRow extends Record<string, unknown> {
  id: string;
  name: string;
  scopes: string;
  hash: string;
  created_at: number;
  expires_at: number | null;
  revoked_at: number | null;
}

/** A row of `workers`. */
export interface WorkerRow extends Record<string, unknown> {
  id: string;
  kind: string;
  host: string;
  pid: number;
  queues: string;
  concurrency: number;
  active: number;
  started_at: number;
  last_seen_at: number;
  last_claim_at: number | null;
  meta: string | null;
}

/** The values of a key's columns, in this order: id, name, scopes, hash, created_at, expires_at, revoked_at. */
export function keyValues(record: ApiKeyRecord): Value[] {
  return [record.id, record.name, JSON.stringify(record.scopes), record.hash, record.createdAt, record.expiresAt, record.revokedAt];
}

export function keyFromRow(row: KeyRow): ApiKeyRecord {
  return {
    id: row.id,
    name: row.name,
    scopes: JSON.parse(row.scopes) as ApiScope[],
    hash: row.hash,
    createdAt: row.created_at,
    expiresAt: row.expires_at,
    revokedAt: row.revoked_at,
  };
}

/**
 * The values of a worker's columns, in this order: id, kind, host, pid, queues, concurrency,
 * active, started_at, last_seen_at, last_claim_at, meta.
 */
export function workerValues(info: WorkerInfo): Value[] {
  return [
    info.id,
    info.kind,
    info.host,
    info.pid,
    JSON.stringify(info.queues),
    info.concurrency,
    info.active,
    info.startedAt,
    info.lastSeenAt,
    info.lastClaimAt,
    info.meta === undefined ? null : JSON.stringify(info.meta),
  ];
}

export function workerFromRow(row: WorkerRow): WorkerInfo {
  const info: WorkerInfo = {
    id: row.id,
    kind: row.kind as WorkerInfo['kind'],
    host: row.host,
    pid: row.pid,
    queues: JSON.parse(row.queues) as string[],
    concurrency: row.concurrency,
    active: row.active,
    startedAt: row.started_at,
    lastSeenAt: row.last_seen_at,
    lastClaimAt: row.last_claim_at,
  };
  return row.meta === null ? info : { ...info, meta: JSON.parse(row.meta) as Record<string, string> };
}
