/**
 * One error shape for every HTTP answer that is not a success:
 * `{ "error": { "code", "message", "details"? , "requestId"? } }`, with the status a client
 * expects for that code. Client mistakes get 4xx with what to fix; anything unexpected gets
 * 500 `INTERNAL` with only a request id (the stack goes to the server's log, never to the
 * client).
 */
import { ConveyorError, type ErrorCode } from '../errors.ts';

const STATUS: Record<ErrorCode, number> = {
  INVALID_ARGUMENT: 400,
  UNKNOWN_OPTION: 400,
  NOT_SERIALIZABLE: 400,
  NOT_SUPPORTED: 400,
  PAYLOAD_TOO_LARGE: 413,
  UNAUTHORIZED: 401,
  FORBIDDEN: 403,
  NOT_FOUND: 404,
  JOB_NOT_FOUND: 404,
  INVALID_STATE: 409,
  LEASE_LOST: 409,
  CONFLICT: 409,
  RATE_LIMITED: 429,
  JOB_FAILED: 409,
  JOB_TIMEOUT: 409,
  WAIT_TIMEOUT: 408,
  STORE_BUSY: 503,
  STORE_UNAVAILABLE: 503,
  CLOSED: 503,
  STORE_SCHEMA: 500,
  STORE_ERROR: 500,
  UNSUPPORTED_STORE: 500,
  INTERNAL: 500,
};

const SERVER_FAULT: Partial<Record<ErrorCode, string>> = {
  STORE_BUSY: 'the store is busy; retry shortly',
  STORE_UNAVAILABLE: 'the store cannot be reached right now; retry shortly',
  CLOSED: 'the server is shutting down; retry against another server',
  STORE_SCHEMA: 'the store\'s schema does not match this server; the operator must run `conveyor migrate` or upgrade',
  STORE_ERROR: 'the store failed; the server\'s log has the details',
  UNSUPPORTED_STORE: 'the server is misconfigured',
  INTERNAL: 'internal error; the server\'s log has the details',
};

export interface ErrorBody {
  readonly error: { readonly code: ErrorCode; readonly message: string; readonly details?: unknown; readonly requestId?: string };
}

export function statusFor(code: ErrorCode): number {
  return STATUS[code];
}

/** Fastify's own 4xx errors (bad JSON, wrong content type, body too large) by status. */
function codeForStatus(status: number): ErrorCode {
  if (status === 413) return 'PAYLOAD_TOO_LARGE';
  if (status === 404) return 'NOT_FOUND';
  if (status === 429) return 'RATE_LIMITED';
  if (status === 401) return 'UNAUTHORIZED';
  if (status === 403) return 'FORBIDDEN';
  return 'INVALID_ARGUMENT';
}

interface FastifyishError {
  readonly code?: unknown;
  readonly statusCode?: unknown;
  readonly message?: unknown;
  readonly validation?: ReadonlyArray<{ instancePath?: string; message?: string; params?: unknown; keyword?: string }>;
  readonly validationContext?: string;
}

/** Translates anything thrown while handling a request into a status and the one error body. */
export function toHttpError(err: unknown, requestId: string): { status: number; body: ErrorBody; internal: boolean } {
  if (err instanceof ConveyorError) {
    const status = statusFor(err.code);
    // Server-side faults never echo the store's own message (SQL, SQLSTATEs, paths): the
    // client gets the code and a request id, the server's log gets everything.
    const body: ErrorBody['error'] =
      status >= 500
        ? { code: err.code, message: `${SERVER_FAULT[err.code] ?? 'the server failed'} (request ${requestId})`, requestId }
        : { code: err.code, message: err.message, ...(err.details === undefined ? {} : { details: err.details }) };
    return { status, body: { error: body }, internal: status >= 500 };
  }
  const e = (typeof err === 'object' && err !== null ? err : {}) as FastifyishError;
  if (Array.isArray(e.validation)) {
    const where = e.validationContext ?? 'body';
    const first = e.validation[0];
    const path = `${where}${first?.instancePath ?? ''}`;
    const extra = first?.keyword === 'additionalProperties' ? ` '${String((first.params as { additionalProperty?: unknown })?.additionalProperty)}'` : '';
    return {
      status: 400,
      body: {
        error: {
          code: 'INVALID_ARGUMENT',
          message: `${path} ${first?.message ?? 'is invalid'}${extra}`,
          details: { validation: e.validation.map((v) => ({ path: `${where}${v.instancePath ?? ''}`, message: v.message, params: v.params })) },
        },
      },
      internal: false,
    };
  }
  const status = typeof e.statusCode === 'number' ? e.statusCode : 500;
  if (status >= 400 && status < 500) {
    const message = typeof e.message === 'string' ? e.message : 'bad request';
    return { status, body: { error: { code: codeForStatus(status), message } }, internal: false };
  }
  return { status: 500, body: { error: { code: 'INTERNAL', message: `internal error (request ${requestId}); the server's log has the details`, requestId } }, internal: true };
}
