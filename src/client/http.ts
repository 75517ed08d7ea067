/**
 * The transport of the HTTP client: JSON requests to a conveyor server with the API key,
 * and the server's error body (`{ error: { code, message, details } }`) turned back into
 * the library's typed errors, so code above this file cannot tell a remote failure from a
 * local one.
 *
 * Only `fetch` (global in Node ≥ 18, browsers, Deno, Bun), which keeps connections alive
 * between requests. A request that never reached the server or whose answer was lost
 * (refused, reset, timed out) becomes `StoreError('STORE_UNAVAILABLE')`: a worker reports
 * it, backs off and tries again exactly as it does while a database is down.
 */
import { ConveyorError, ERROR_CODES, LeaseLostError, StoreError, ValidationError, type ErrorCode } from '../errors.ts';
import { VERSION } from '../version.ts';

export interface HttpClientOptions {
  /** Base URL of the server, e.g. `http://127.0.0.1:8080` (a path prefix is kept). */
  readonly server: string;
  /** Sent as `Authorization: Bearer <apiKey>`. */
  readonly apiKey?: string | undefined;
  /** A request with no answer after this long fails with STORE_UNAVAILABLE. Default 30,000 ms. */
  readonly requestTimeoutMs?: number | undefined;
}

export interface RequestOptions {
  /** Name of the operation, for error messages (`claim`, `complete`, …). */
  readonly operation: string;
  /** Instead of the client's default timeout. */
  readonly timeoutMs?: number;
  /** Aborts the request (the caller's own cancellation; reported as CLOSED). */
  readonly signal?: AbortSignal;
}

export const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;

const STORE_CODES = new Set<ErrorCode>(['STORE_BUSY', 'STORE_UNAVAILABLE', 'STORE_SCHEMA', 'STORE_ERROR', 'UNSUPPORTED_STORE', 'CONFLICT']);
const VALIDATION_CODES = new Set<ErrorCode>(['INVALID_ARGUMENT', 'UNKNOWN_OPTION', 'NOT_SERIALIZABLE', 'PAYLOAD_TOO_LARGE']);

/** Validates and normalizes a server base URL: http(s) only, no query, no trailing slash. */
export function parseServerUrl(server: unknown): string {
  if (typeof server !== 'string' || server.length === 0) {
    throw new ValidationError('INVALID_ARGUMENT', 'server must be the URL of a conveyor server, e.g. http://127.0.0.1:8080');
  }
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new ValidationError('INVALID_ARGUMENT', `server ${JSON.stringify(server)} is not a URL; give one like http://127.0.0.1:8080`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ValidationError('INVALID_ARGUMENT', `server must be an http:// or https:// URL, got ${url.protocol}//… (to use a database directly, call Conveyor.open({ url }))`);
  }
  if (url.username !== '' || url.password !== '') {
    throw new ValidationError('INVALID_ARGUMENT', 'server must not carry credentials in the URL; pass the API key as apiKey');
  }
  if (url.search !== '' || url.hash !== '') throw new ValidationError('INVALID_ARGUMENT', 'server must not have a query string or fragment');
  return `${url.origin}${url.pathname.replace(/\/+$/, '')}`;
}

export class HttpClient {
  readonly base: string;
  readonly #timeoutMs: number;
  readonly #headers: Record<string, string>;

  constructor(options: HttpClientOptions) {
    this.base = parseServerUrl(options.server);
    this.#timeoutMs = options.requestTimeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    this.#headers = { accept: 'application/json', 'user-agent': `conveyor-client/${VERSION}` };
    if (options.apiKey !== undefined) {
      if (typeof options.apiKey !== 'string' || options.apiKey.length === 0 || /\s/.test(options.apiKey)) {
        throw new ValidationError('INVALID_ARGUMENT', 'apiKey must be the key string from `conveyor keys create` (cvk_…)');
      }
      this.#headers.authorization = `Bearer ${options.apiKey}`;
    }
  }

  /**
   * One request. `body` is a value to send as JSON, or a string that already is JSON (so
   * JSON text held by the engine, such as a result, is spliced in without a parse).
   * Resolves with the parsed answer (undefined for an empty one); rejects with typed errors.
   */
  async request<T>(method: string, path: string, body: unknown, options: RequestOptions): Promise<T> {
    const headers = body === undefined ? this.#headers : { ...this.#headers, 'content-type': 'application/json' };
    const timeout = AbortSignal.timeout(options.timeoutMs ?? this.#timeoutMs);
    const signal = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
    let status: number;
    let text: string;
    try {
      const res = await fetch(this.base + path, {
        method,
        headers,
        signal,
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      status = res.status;
      text = await res.text();
    } catch (err) {
      if (options.signal?.aborted) throw new ConveyorError('CLOSED', `${options.operation}: request to the conveyor server was cancelled`, { cause: err });
      const why = timeout.aborted ? `no answer within ${options.timeoutMs ?? this.#timeoutMs} ms` : describeNetworkError(err);
      throw new StoreError('STORE_UNAVAILABLE', `${options.operation}: cannot reach the conveyor server at ${this.base}: ${why}`, {
        operation: options.operation,
        cause: err,
      });
    }
    if (status >= 200 && status < 300) {
      if (text === '') return undefined as T;
      try {
        return JSON.parse(text) as T;
      } catch (err) {
        throw new StoreError('STORE_ERROR', `${options.operation}: the server at ${this.base} answered ${status} with a body that is not JSON`, { operation: options.operation, cause: err });
      }
    }
    throw errorFromResponse(status, text, options.operation, this.base);
  }
}

/** The typed error for a non-2xx answer: the body's code when it has one, else by status. */
export function errorFromResponse(status: number, text: string, operation: string, base: string): ConveyorError {
  let code: ErrorCode | undefined;
  let message: string | undefined;
  let details: Record<string, unknown> | undefined;
  try {
    const parsed = JSON.parse(text) as { error?: { code?: unknown; message?: unknown; details?: unknown } };
    const e = parsed?.error;
    if (e && typeof e.code === 'string' && Object.hasOwn(ERROR_CODES, e.code)) code = e.code as ErrorCode;
    if (e && typeof e.message === 'string') message = e.message;
    if (e && typeof e.details === 'object' && e.details !== null && !Array.isArray(e.details)) details = e.details as Record<string, unknown>;
  } catch {
    // Not conveyor's error body: a proxy or load balancer answered.
  }
  code ??= codeForStatus(status);
  message = `${operation}: ${message ?? `the server at ${base} answered HTTP ${status}`}`;
  const options = { details: { ...details, status } };
  if (STORE_CODES.has(code)) return new StoreError(code as ConstructorParameters<typeof StoreError>[0], message, { ...options, operation });
  if (VALIDATION_CODES.has(code)) return new ValidationError(code as ConstructorParameters<typeof ValidationError>[0], message, options);
  if (code === 'LEASE_LOST') return new LeaseLostError(message, options);
  return new ConveyorError(code, message, options);
}

function codeForStatus(status: number): ErrorCode {
  switch (status) {
    case 400:
      return 'INVALID_ARGUMENT';
    case 401:
      return 'UNAUTHORIZED';
    case 403:
      return 'FORBIDDEN';
    case 404:
      return 'NOT_FOUND';
    case 409:
      return 'CONFLICT';
    case 413:
      return 'PAYLOAD_TOO_LARGE';
    case 429:
      return 'RATE_LIMITED';
    // A gateway or a server shutting down: the server may be back soon.
    case 502:
    case 503:
    case 504:
      return 'STORE_UNAVAILABLE';
    default:
      return status >= 500 ? 'INTERNAL' : 'INVALID_ARGUMENT';
  }
}

function describeNetworkError(err: unknown): string {
  // fetch wraps the socket error as `cause` of a TypeError('fetch failed').
  const cause = (err as { cause?: unknown })?.cause;
  const inner = cause instanceof Error ? cause : err instanceof Error ? err : undefined;
  if (inner === undefined) return String(err);
  const code = (inner as { code?: unknown }).code;
  return typeof code === 'string' ? `${code} (${inner.message})` : inner.message;
}
