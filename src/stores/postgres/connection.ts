/**
 * Connecting to PostgreSQL and running statements: URL options, the pool, named prepared
 * statements, error translation and retries.
 *
 * Almost every store operation is ONE statement in autocommit mode (data-modifying CTEs
 * carry the multi-step ones), so PostgreSQL makes each operation atomic by itself, each
 * costs one round trip, and a failed one can be retried as a whole: nothing was applied.
 * Serialization failures and deadlocks (40001, 40P01) are retried here a few times with
 * jittered backoff; everything else is translated into conveyor's error codes.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { ConveyorError, StoreError, ValidationError } from '../../errors.ts';

/** Conveyor's own URL parameters; they are removed before the URL is handed to `pg`. */
export interface PostgresUrlOptions {
  /** The URL without conveyor's own parameters. */
  readonly connectionString: string;
  readonly schema: string | undefined;
  readonly poolSize: number | undefined;
  readonly statementTimeoutMs: number | undefined;
  readonly connectTimeoutMs: number | undefined;
  /** `?listen=false`: never LISTEN; idle processes learn of other processes' writes by polling. */
  readonly listen: boolean | undefined;
  /** `?listenUrl=` (URL-encoded): a direct connection for LISTEN when `url` goes through a transaction-pooling PgBouncer. */
  readonly listenUrl: string | undefined;
  /** `?preparedStatements=false`: never use named prepared statements (PgBouncer before 1.21 in transaction mode). */
  readonly preparedStatements: boolean | undefined;
  /** `?signalPollMs=`: how often subscribers are woken by polling when LISTEN is not possible. */
  readonly signalPollMs: number | undefined;
}

export interface ConnectionOptions {
  readonly url: string;
  readonly schema: string;
  readonly poolSize: number;
  readonly statementTimeoutMs: number | undefined;
  readonly connectTimeoutMs: number;
}

export const DEFAULT_SCHEMA = 'conveyor';
export const DEFAULT_POOL_SIZE = 10;
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
/** Without LISTEN, subscribers are told `changed` this often (each wake-up costs the receiver one statement). */
export const DEFAULT_SIGNAL_POLL_MS = 1000;
const APPLICATION_NAME = 'conveyor';

/** How often a statement that hit a serialization failure or deadlock is tried in all. */
const MAX_ATTEMPTS = 6;

/**
 * A schema name: a plain identifier, so it needs no escaping and cannot surprise anyone in
 * `psql`. It is still always double-quoted in SQL. At most 63 bytes (PostgreSQL's limit;
 * the NOTIFY channel is named after the schema and has the same limit).
 */
const SCHEMA_NAME = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

export function checkSchemaName(schema: unknown): string {
  if (typeof schema !== 'string' || !SCHEMA_NAME.test(schema)) {
    throw new ValidationError(
      'INVALID_ARGUMENT',
      `invalid PostgreSQL schema name ${JSON.stringify(schema)}: use 1-63 letters, digits and '_', starting with a letter or '_'`,
    );
  }
  return schema;
}

/**
 * Masks passwords in a URL for messages: the URL's own and the one of a `listenUrl`
 * parameter (plain or percent-encoded).
 */
export function redactUrl(url: string): string {
  return url
    .replace(/\/\/([^:/@?#&]*):([^@/]*)@/g, '//$1:***@')
    .replace(/(%2F%2F)([^%:/@&]*)(%3A)([^&]*?)(%40)/gi, '$1$2$3***$5');
}

function flag(value: string, name: string, url: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new ValidationError('INVALID_ARGUMENT', `store url ${redactUrl(url)}: ${name} must be true or false, got '${value}'`);
}

function positiveInt(value: string, name: string, url: string, min: number): number {
  const n = Number(value);
  if (!/^[0-9]+$/.test(value) || !Number.isSafeInteger(n) || n < min) {
    throw new ValidationError('INVALID_ARGUMENT', `store url ${redactUrl(url)}: ${name} must be an integer >= ${min}, got '${value}'`);
  }
  return n;
}

/** A `postgres://` or `postgresql://` URL, or INVALID_ARGUMENT naming `what`. */
export function checkPostgresUrl(url: unknown, what = 'not a PostgreSQL url'): string {
  if (typeof url !== 'string' || !/^postgres(ql)?:\/\//i.test(url)) {
    throw new ValidationError('INVALID_ARGUMENT', `${what}: ${typeof url === 'string' ? redactUrl(url) : String(url)}`);
  }
  return url;
}

/**
 * Splits conveyor's parameters (`schema`, `poolSize`, `statementTimeoutMs`,
 * `connectTimeoutMs`, `listen`, `listenUrl`, `preparedStatements`, `signalPollMs`) off a
 * `postgres://` URL. Everything else (sslmode, application_name, …) stays in the URL for `pg`.
 */
export function parsePostgresUrl(url: string): PostgresUrlOptions {
  checkPostgresUrl(url);
  const q = url.indexOf('?');
  let schema: string | undefined;
  let poolSize: number | undefined;
  let statementTimeoutMs: number | undefined;
  let connectTimeoutMs: number | undefined;
  let listen: boolean | undefined;
  let listenUrl: string | undefined;
  let preparedStatements: boolean | undefined;
  let signalPollMs: number | undefined;
  if (q < 0) {
    return { connectionString: url, schema, poolSize, statementTimeoutMs, connectTimeoutMs, listen, listenUrl, preparedStatements, signalPollMs };
  }
  const params = new URLSearchParams(url.slice(q + 1));
  const rest = new URLSearchParams();
  for (const [key, value] of params) {
    switch (key) {
      case 'schema':
        schema = checkSchemaName(value);
        break;
      case 'poolSize':
        poolSize = positiveInt(value, 'poolSize', url, 1);
        break;
      case 'statementTimeoutMs':
        statementTimeoutMs = positiveInt(value, 'statementTimeoutMs', url, 0);
        break;
      case 'connectTimeoutMs':
        connectTimeoutMs = positiveInt(value, 'connectTimeoutMs', url, 0);
        break;
      case 'listen':
        listen = flag(value, 'listen', url);
        break;
      case 'listenUrl':
        listenUrl = checkPostgresUrl(value, `store url ${redactUrl(url)}: listenUrl must be a URL-encoded postgres:// url, got`);
        break;
      case 'preparedStatements':
        preparedStatements = flag(value, 'preparedStatements', url);
        break;
      case 'signalPollMs':
        signalPollMs = positiveInt(value, 'signalPollMs', url, 10);
        break;
      default:
        rest.append(key, value);
    }
  }
  const tail = rest.toString();
  return {
    connectionString: url.slice(0, q) + (tail === '' ? '' : `?${tail}`),
    schema,
    poolSize,
    statementTimeoutMs,
    connectTimeoutMs,
    listen,
    listenUrl,
    preparedStatements,
    signalPollMs,
  };
}

/** int8 (bigint, count(*)) as a JS number: epoch ms, ids and counts all fit in 2^53. */
const parseInt8 = (value: string): number => Number(value);
const INT8_OID = 20;

const typeParsers = {
  getTypeParser(oid: number, format?: string): (value: string) => unknown {
    if (oid === INT8_OID && format !== 'binary') return parseInt8;
    return (pg.types.getTypeParser as (oid: number, format?: string) => (value: string) => unknown)(oid, format);
  },
};

/** Base settings shared by the pool and the LISTEN connection. */
export function clientConfig(options: ConnectionOptions, applicationName = APPLICATION_NAME): pg.ClientConfig {
  return {
    connectionString: options.url,
    application_name: applicationName,
    connectionTimeoutMillis: options.connectTimeoutMs,
    keepAlive: true,
    types: typeParsers as unknown as pg.CustomTypesConfig,
    ...(options.statementTimeoutMs === undefined || options.statementTimeoutMs === 0
      ? {}
      : { statement_timeout: options.statementTimeoutMs }),
  };
}

export function createPool(options: ConnectionOptions, onIdleError: (err: Error) => void): pg.Pool {
  const pool = new pg.Pool({
    ...clientConfig(options),
    max: options.poolSize,
    idleTimeoutMillis: 30_000,
    // An idle pool never keeps the process alive (like the SQLite store's file handle).
    allowExitOnIdle: true,
  });
  // An idle connection that breaks (server restart, network) is reported here; without a
  // listener Node would crash the process. The pool drops the client by itself.
  pool.on('error', onIdleError);
  return pool;
}

// -------------------------------------------------------------------------- errors

interface PgErrorShape {
  readonly code?: unknown;
  readonly message?: unknown;
}

function codeOf(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as PgErrorShape).code;
  return typeof code === 'string' ? code : undefined;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message;
  if (typeof err === 'object' && err !== null && typeof (err as PgErrorShape).message === 'string') return (err as { message: string }).message;
  return String(err);
}

/** Serialization failures and deadlocks: the statement was rolled back and may simply run again. */
export function isRetryable(err: unknown): boolean {
  const code = codeOf(err);
  return code === '40001' || code === '40P01';
}

const NODE_NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'EPIPE',
  'ENOENT', // a Unix socket path that does not exist
]);

/** The server or the network is gone, refused us, or is shutting down. */
export function isUnavailable(err: unknown): boolean {
  const code = codeOf(err);
  if (code !== undefined) {
    if (code.startsWith('08')) return true; // connection exceptions
    if (code === '57P01' || code === '57P02' || code === '57P03') return true; // admin/crash shutdown, cannot connect now
    if (code === '53300') return true; // too many connections
    if (code === '28000' || code === '28P01') return true; // authentication failed
    if (code === '3D000') return true; // database does not exist
    if (NODE_NETWORK_CODES.has(code)) return true;
  }
  const message = messageOf(err);
  return /Connection terminated|connection timeout|timeout exceeded when trying to connect|Client has encountered a connection error|Connection refused|server closed the connection|not queryable/i.test(
    message,
  );
}

/** A statement cancelled by statement_timeout or a lock wait limit: the store is too busy right now. */
function isBusy(err: unknown): boolean {
  const code = codeOf(err);
  return code === '57014' || code === '55P03';
}

export function closedError(): ConveyorError {
  return new ConveyorError('CLOSED', 'the PostgreSQL store is closed');
}

/**
 * Our own errors pass through; driver and server errors become STORE_UNAVAILABLE,
 * STORE_BUSY or STORE_ERROR, naming the operation. `secrets` (the URLs' passwords) are
 * scrubbed from the message in case a driver ever echoes them.
 */
export function translateError(operation: string, err: unknown, secrets: string | null | readonly string[] = null): ConveyorError {
  if (err instanceof ConveyorError) return err;
  let message = messageOf(err);
  for (const secret of typeof secrets === 'string' ? [secrets] : (secrets ?? [])) {
    if (secret !== '' && message.includes(secret)) message = message.split(secret).join('***');
  }
  const code = codeOf(err);
  const suffix = code === undefined ? '' : ` (${code})`;
  if (isUnavailable(err)) {
    return new StoreError('STORE_UNAVAILABLE', `PostgreSQL store unavailable during ${operation}: ${message}${suffix}`, {
      operation,
      cause: err,
    });
  }
  if (isBusy(err)) {
    return new StoreError('STORE_BUSY', `PostgreSQL store too busy during ${operation}: ${message}${suffix}`, { operation, cause: err });
  }
  return new StoreError('STORE_ERROR', `PostgreSQL store failed during ${operation}: ${message}${suffix}`, { operation, cause: err });
}

export function passwordOf(url: string): string | null {
  try {
    const password = new URL(url).password;
    return password === '' ? null : decodeURIComponent(password);
  } catch {
    return null;
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

// ----------------------------------------------------------------------- statements

export type SqlValue = string | number | boolean | null | readonly (string | number | boolean | null)[];

/**
 * A named statement met a server connection that does not have it, or already has it:
 * the sign of a transaction-pooling PgBouncer (before 1.21) handing our connection's
 * statements to different server connections. Nothing was executed (Parse or Bind failed).
 */
function isPreparedStatementMismatch(err: unknown): boolean {
  const code = codeOf(err);
  return code === '26000' || code === '42P05';
}

/** pg's query config; `rowMode: 'array'` is typed only on QueryArrayConfig, hence the cast. */
function queryConfig(name: string | undefined, text: string, values: readonly SqlValue[], arrays: boolean): pg.QueryConfig {
  const config: { name?: string; text: string; values: unknown[]; rowMode?: 'array' } = { text, values: values as unknown[] };
  if (name !== undefined) config.name = name;
  if (arrays) config.rowMode = 'array';
  return config as pg.QueryConfig;
}

/**
 * The store's access to the database: every statement goes through `rows`/`arrays`, which
 * prepare it once per connection under a stable name (the text is the key), retry
 * serialization failures and translate errors.
 *
 * Statement names carry a random prefix per store instance, so a name can only ever mean
 * one text: behind a transaction-pooling PgBouncer, where a server connection may have been
 * prepared by another client, a named statement either runs the very same SQL or fails with
 * "does not exist" / "already exists", never runs someone else's statement. On that failure
 * (nothing was executed) the store switches to unnamed statements for good and runs the
 * statement again. `preparedStatements: false` (`?preparedStatements=false`) starts there.
 */
export class Database {
  readonly pool: pg.Pool;
  readonly #secrets: readonly string[];
  readonly #names = new Map<string, string>();
  readonly #prefix = `cv${randomBytes(4).toString('hex')}_`;
  #prepare: boolean;
  #closed = false;

  constructor(pool: pg.Pool, url: string, options: { readonly preparedStatements?: boolean; readonly otherUrls?: readonly string[] } = {}) {
    this.pool = pool;
    this.#secrets = [url, ...(options.otherUrls ?? [])].map(passwordOf).filter((p): p is string => p !== null);
    this.#prepare = options.preparedStatements ?? true;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Whether statements are still prepared under names (false after a PgBouncer mismatch, or when disabled). */
  get preparedStatements(): boolean {
    return this.#prepare;
  }

  markClosed(): void {
    this.#closed = true;
  }

  assertOpen(): void {
    if (this.#closed) throw closedError();
  }

  translate(operation: string, err: unknown): ConveyorError {
    if (this.#closed && !(err instanceof ConveyorError)) return closedError();
    return translateError(operation, err, this.#secrets);
  }

  /** Runs `fn` (one or more statements, each atomic), retrying it on serialization failures and deadlocks. */
  async run<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    this.assertOpen();
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (isRetryable(err) && attempt < MAX_ATTEMPTS && !this.#closed) {
          // ±50% jitter around 2, 4, 8… ms, so colliding statements spread out.
          await sleep(2 ** attempt * (0.5 + Math.random()));
          continue;
        }
        throw this.translate(operation, err);
      }
    }
  }

  #nameOf(text: string): string {
    let name = this.#names.get(text);
    if (name === undefined) {
      name = `${this.#prefix}${this.#names.size + 1}`;
      this.#names.set(text, name);
    }
    return name;
  }

  async #query(text: string, values: readonly SqlValue[], arrays: boolean): Promise<pg.QueryResult> {
    if (this.#prepare) {
      try {
        return await this.pool.query(queryConfig(this.#nameOf(text), text, values, arrays));
      } catch (err) {
        if (!isPreparedStatementMismatch(err)) throw err;
        this.#prepare = false;
      }
    }
    return this.pool.query(queryConfig(undefined, text, values, arrays));
  }

  /** Rows as objects. */
  async rows<R extends Record<string, unknown>>(text: string, values: readonly SqlValue[] = []): Promise<R[]> {
    return (await this.#query(text, values, false)).rows as R[];
  }

  /** Rows as arrays (cheaper for wide job rows). */
  async arrays(text: string, values: readonly SqlValue[] = []): Promise<unknown[][]> {
    return (await this.#query(text, values, true)).rows as unknown[][];
  }

  /** A statement's affected-row count. */
  async count(text: string, values: readonly SqlValue[] = []): Promise<number> {
    return (await this.#query(text, values, false)).rowCount ?? 0;
  }
}
