// The dashboard's only way to the server: the documented HTTP API under /api/v1 (docs/http-api.md),
// with the user's API key as a Bearer token.

export type JobState = 'waiting' | 'delayed' | 'active' | 'completed' | 'failed' | 'cancelled';
export const STATES: readonly JobState[] = ['waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'];
export type Scope = 'admin' | 'produce' | 'consume' | 'read';

export interface QueueInfo {
  name: string;
  paused: boolean;
  counts: Record<JobState, number>;
}

export interface AttemptError {
  message: string;
  name?: string;
  stack?: string;
  at: number;
  attempt: number;
  reason?: 'stalled' | 'timeout' | 'unrecoverable';
}

export interface Job {
  id: string;
  queue: string;
  name: string;
  data: unknown;
  opts: Record<string, unknown>;
  state: JobState;
  priority: number;
  attemptsMade: number;
  maxAttempts: number;
  stalls: number;
  runAt: number;
  createdAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  progress: unknown;
  result: unknown;
  errors: AttemptError[];
  lease: { owner: string; expiresAt: number } | null;
}

export interface LogEntry {
  at: number;
  message: string;
}

export interface WorkerInfo {
  id: string;
  kind: 'direct' | 'remote';
  host: string;
  pid: number;
  queues: string[];
  concurrency: number;
  active: number;
  startedAt: number;
  lastSeenAt: number;
  lastClaimAt: number | null;
  meta?: Record<string, string>;
  stale: boolean;
}

export interface Percentiles {
  count: number;
  p50: number | null;
  p90: number | null;
  p99: number | null;
  max: number | null;
}

export interface Series {
  completed: number[];
  failed: number[];
  retried: number[];
  stalled: number[];
  added: number[];
  waitMs: Percentiles;
  recentWaitMs: Percentiles;
  durationMs: Percentiles;
}

export interface Stats {
  now: number;
  minuteMs: number;
  minutes: number[];
  recentMinutes: number;
  complete: boolean;
  coveredFrom: number | null;
  all: Series;
  queues: Array<Series & { queue: string }>;
}

export interface WhoAmI {
  authRequired: boolean;
  keyId: string | null;
  name: string | null;
  scopes: Scope[];
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

// ---- the key: sessionStorage by default, localStorage when the user asks to be remembered

const KEY_NAME = 'conveyor.apiKey';

export function storedKey(): string | null {
  try {
    return sessionStorage.getItem(KEY_NAME) ?? localStorage.getItem(KEY_NAME);
  } catch {
    return null;
  }
}

export function saveKey(key: string | null, remember: boolean): void {
  try {
    sessionStorage.removeItem(KEY_NAME);
    localStorage.removeItem(KEY_NAME);
    if (key !== null) (remember ? localStorage : sessionStorage).setItem(KEY_NAME, key);
  } catch {
    // Private mode without storage: the key lives for this page only.
  }
  memoryKey = key;
}

let memoryKey: string | null = null;
let onUnauthorized: ((message: string) => void) | null = null;

export function currentKey(): string | null {
  return memoryKey ?? storedKey();
}

/** Called when any request answers 401 (the key was revoked, expired or is missing). */
export function setUnauthorizedHandler(fn: (message: string) => void): void {
  onUnauthorized = fn;
}

export function authHeaders(key = currentKey()): Record<string, string> {
  return key ? { authorization: `Bearer ${key}` } : {};
}

export async function request<T>(method: string, path: string, body?: unknown, options: { key?: string | null; signal?: AbortSignal; quiet401?: boolean } = {}): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json', ...authHeaders(options.key === undefined ? currentKey() : options.key) };
  if (body !== undefined) headers['content-type'] = 'application/json';
  let res: Response;
  try {
    res = await fetch(`/api/v1${path}`, { method, headers, ...(body === undefined ? {} : { body: JSON.stringify(body) }), ...(options.signal ? { signal: options.signal } : {}) });
  } catch (err) {
    if ((err as Error).name === 'AbortError') throw err;
    throw new ApiError(0, 'NETWORK', 'The server cannot be reached. It may be restarting; this page retries when it is back.');
  }
  if (res.status === 204) return undefined as T;
  const text = await res.text();
  let parsed: unknown = null;
  try {
    parsed = text === '' ? null : JSON.parse(text);
  } catch {
    parsed = null;
  }
  if (!res.ok) {
    const e = (parsed as { error?: { code?: string; message?: string } } | null)?.error;
    const err = new ApiError(res.status, e?.code ?? `HTTP_${res.status}`, e?.message ?? `${res.status} ${res.statusText}`);
    if (res.status === 401 && !options.quiet401) onUnauthorized?.(err.message);
    throw err;
  }
  return parsed as T;
}

const enc = encodeURIComponent;

export const api = {
  whoami: (key?: string | null) => request<WhoAmI>('GET', '/whoami', undefined, { ...(key === undefined ? {} : { key }), quiet401: true }),
  queues: (signal?: AbortSignal) => request<{ queues: QueueInfo[] }>('GET', '/queues', undefined, signal ? { signal } : {}),
  queue: (name: string) => request<QueueInfo>('GET', `/queues/${enc(name)}`),
  stats: (minutes = 60, signal?: AbortSignal) => request<Stats>('GET', `/stats?minutes=${minutes}`, undefined, signal ? { signal } : {}),
  jobs: (queue: string, params: { states: JobState[] | null; cursor?: string | null; limit?: number; id?: string }) => {
    const q = new URLSearchParams();
    if (params.states) q.set('state', params.states.join(','));
    if (params.cursor) q.set('cursor', params.cursor);
    if (params.id) q.set('id', params.id);
    q.set('limit', String(params.limit ?? 25));
    return request<{ jobs: Job[]; nextCursor: string | null }>('GET', `/queues/${enc(queue)}/jobs?${q}`);
  },
  search: (queue: string, params: { q: string; states: JobState[] | null; cursor?: string | null; limit?: number }) => {
    const q = new URLSearchParams({ q: params.q, limit: String(params.limit ?? 25) });
    if (params.states) q.set('state', params.states.join(','));
    if (params.cursor) q.set('cursor', params.cursor);
    return request<{ jobs: Job[]; scanned: number; nextCursor: string | null }>('GET', `/queues/${enc(queue)}/search?${q}`);
  },
  job: (queue: string, id: string) => request<{ job: Job; logs: { entries: LogEntry[]; total: number } }>('GET', `/queues/${enc(queue)}/jobs/${enc(id)}`),
  logs: (queue: string, id: string, offset: number) => request<{ entries: LogEntry[]; total: number }>('GET', `/queues/${enc(queue)}/jobs/${enc(id)}/logs?offset=${offset}&limit=200`),
  jobAction: (queue: string, id: string, action: 'retry' | 'cancel' | 'promote') => request<{ id: string; state: JobState | null }>('POST', `/queues/${enc(queue)}/jobs/${enc(id)}/${action}`),
  removeJob: (queue: string, id: string) => request<void>('DELETE', `/queues/${enc(queue)}/jobs/${enc(id)}`),
  pause: (queue: string) => request<{ paused: boolean }>('POST', `/queues/${enc(queue)}/pause`),
  resume: (queue: string) => request<{ paused: boolean }>('POST', `/queues/${enc(queue)}/resume`),
  retryFailed: (queue: string) => request<{ count: number }>('POST', `/queues/${enc(queue)}/retry-failed`, {}),
  clean: (queue: string, body: { state: 'completed' | 'failed' | 'cancelled'; olderThanMs: number; keep?: number }) => request<{ count: number }>('POST', `/queues/${enc(queue)}/clean`, body),
  drain: (queue: string, delayed: boolean) => request<{ count: number }>('POST', `/queues/${enc(queue)}/drain`, { delayed }),
  workers: () => request<{ workers: WorkerInfo[] }>('GET', '/workers'),
};
