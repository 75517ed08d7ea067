/**
 * Exit codes and error messages of the `conveyor` command.
 *
 *   0  ok
 *   1  error: the command was understood but failed (store unreachable, job not found, …)
 *   2  usage: the command line was wrong (unknown command or flag, missing argument, a value
 *      that does not parse, such as bad JSON in --data, or that the library rejects as
 *      invalid, such as a bad queue name). Nothing was written.
 *
 * Every message starts with `conveyor:`, names the error code when there is one, and ends
 * with what to do next. Store URLs appear only with their passwords masked.
 */
import { ConveyorError, ValidationError } from '../errors.ts';
import { maskUrl, type Setting } from './config.ts';

export const EXIT_OK = 0;
export const EXIT_ERROR = 1;
export const EXIT_USAGE = 2;

/** A command-line mistake the CLI finds itself (exit 2). `hint` says what to do instead. */
export class UsageError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'UsageError';
    this.hint = hint;
  }
}

/** A failure the CLI finds itself (exit 1), with what to do next. */
export class CliError extends Error {
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'CliError';
    this.hint = hint;
  }
}

/** What the failing command was working on, so the message can name it. */
export interface ErrorContext {
  /** The store URL in use and where it came from. */
  url?: Setting<string>;
  /** The command as typed, e.g. `conveyor jobs ls`. */
  command?: string;
}

export function exitCodeFor(err: unknown): number {
  if (err instanceof UsageError || err instanceof ValidationError) return EXIT_USAGE;
  return EXIT_ERROR;
}

function shellQuote(text: string): string {
  return /^[\w@%+=:,./-]+$/.test(text) ? text : `'${text.replace(/'/g, `'\\''`)}'`;
}

function storeLine(url: Setting<string> | undefined): string | undefined {
  return url === undefined ? undefined : `store: ${maskUrl(url.value)} (from ${url.source === 'default' ? 'the default' : url.source})`;
}

function nodeErrorCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** The lines to print for an error: the message, then context and a hint. */
export function formatError(err: unknown, context: ErrorContext = {}): string[] {
  const lines: string[] = [];
  let hint: string | undefined;
  let showStore = false;
  if (err instanceof UsageError || err instanceof CliError) {
    lines.push(err.message);
    hint = err.hint;
    if (err instanceof UsageError && hint === undefined && context.command !== undefined) hint = `run '${context.command} --help' for usage and examples`;
  } else if (err instanceof ConveyorError) {
    lines.push(`${err.code}: ${err.message}`);
    const url = context.url ? maskUrl(context.url.value) : '<url>';
    switch (err.code) {
      case 'STORE_UNAVAILABLE':
        showStore = true;
        hint = /^postgres/i.test(context.url?.value ?? '')
          ? 'check that PostgreSQL is running and reachable from here, and that the host, port, user, password and database in the URL are right; `conveyor config` shows which URL is used and where it came from'
          : 'check the store URL; `conveyor config` shows which URL is used and where it came from';
        break;
      case 'STORE_SCHEMA': {
        showStore = true;
        const found = err.details?.found;
        const supported = err.details?.supported;
        hint =
          typeof found === 'number' && typeof supported === 'number' && found > supported
            ? 'this store was migrated by a newer conveyor: upgrade conveyor (npm install conveyor-queue@latest)'
            : `create or upgrade the schema first: conveyor migrate --url ${shellQuote(url)}`;
        break;
      }
      case 'UNSUPPORTED_STORE':
        showStore = true;
        hint = 'use sqlite:///path/to/jobs.db (or a plain file path) or postgres://user:password@host:5432/database';
        break;
      case 'STORE_BUSY':
        showStore = true;
        hint = 'another process held the store locked for too long; try again, and check for a stuck process holding the SQLite file';
        break;
      case 'STORE_ERROR':
        showStore = true;
        break;
      case 'JOB_NOT_FOUND': {
        const queue = err.details?.queue;
        hint = typeof queue === 'string' ? `list the queue's jobs with: conveyor jobs ls ${shellQuote(queue)} --state all` : undefined;
        break;
      }
      case 'INVALID_ARGUMENT':
      case 'UNKNOWN_OPTION':
      case 'NOT_SERIALIZABLE':
      case 'PAYLOAD_TOO_LARGE':
        if (err instanceof ValidationError && context.command !== undefined) hint = `run '${context.command} --help' for usage and examples`;
        break;
      default:
        break;
    }
  } else if (err instanceof Error) {
    const code = nodeErrorCode(err);
    lines.push(code !== undefined && !err.message.includes(code) ? `${code}: ${err.message}` : err.message);
    if (code === 'EADDRINUSE') hint = 'another process listens on that port: choose another with --port (or CONVEYOR_PORT), or --port 0 for a free one';
    else if (code === 'EACCES' && /listen/.test(err.message)) hint = 'ports below 1024 need privileges: choose --port 1024 or higher';
    else if (code === 'EADDRNOTAVAIL') hint = 'this machine has no such address: use --host 127.0.0.1, or 0.0.0.0 for every interface';
    else if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') hint = 'check the file path and its permissions';
  } else {
    lines.push(String(err));
  }
  const store = showStore ? storeLine(context.url) : undefined;
  if (store !== undefined) lines.push(store);
  if (hint !== undefined) lines.push(`next: ${hint}`);
  return lines;
}

/** What the running command works on; commands fill it in, the top level reads it to format errors. */
export const errorContext: ErrorContext = {};
