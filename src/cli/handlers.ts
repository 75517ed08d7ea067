/**
 * Loading job handlers for `conveyor worker --handlers <path>`.
 *
 * Two shapes:
 *   - a folder of files named after their queues: `jobs/payments.ts` handles queue
 *     `payments`. A file's default export is a handler function (every job name), or an
 *     object mapping job names to functions; without a default export, its exported
 *     functions are that map.
 *   - one module mapping queues to handlers: `export default { payments: fn, email: { welcome: fn } }`
 *     (or the same as named exports).
 *
 * In a map, the key `'*'` handles every job name not listed. A job whose name has no
 * handler fails for good (UnrecoverableError) with the names there are.
 *
 * TypeScript files are imported as they are: Node ≥ 22.18 strips types by itself. Older
 * Nodes (or syntax that needs more than stripping, such as `enum`) get a message saying so.
 *
 * Mistakes in the folder or module (missing, empty, an export that is not a function) are
 * usage errors (exit 2) with an example of what is expected; a file that throws while
 * loading is an error (exit 1) naming the file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { UnrecoverableError } from '../errors.ts';
import type { Job } from '../engine/job.ts';
import type { Handler, JobContext } from '../engine/worker.ts';
import { checkQueueName } from '../options.ts';
import { CliError, UsageError } from './errors.ts';

/** Extensions of handler files in a folder (`.d.ts` files are skipped). */
const HANDLER_EXTENSIONS = ['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs'] as const;
const TS_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);

export const FOLDER_EXAMPLE = [
  '// jobs/payments.ts handles queue "payments" (or export default { charge: fn, refund: fn }, one per job name)',
  'export default async function (job, { log, signal }) {',
  '  return { charged: job.data.amount };',
  '}',
].join('\n');

export const MODULE_EXAMPLE = [
  '// handlers.ts: one module for several queues',
  'export default {',
  '  payments: async (job) => ({ charged: job.data.amount }),',
  '  email: { welcome: async (job) => sendWelcome(job.data.to), digest: async (job) => sendDigest(job.data) },',
  '};',
].join('\n');

/** The handlers of one queue: one function for every name, or one per name (with an optional `'*'`). */
export interface QueueHandlers {
  readonly queue: string;
  /** Where it came from, relative to the working directory. */
  readonly source: string;
  /** Job names with their own handler; empty when one function handles every name. */
  readonly names: readonly string[];
  /** Whether some function handles names not listed (a plain function, or `'*'`). */
  readonly catchAll: boolean;
  /** Dispatches on the job's name. */
  readonly handler: Handler;
}

export interface LoadedHandlers {
  /** `folder` or `module`. */
  readonly kind: 'folder' | 'module';
  /** The resolved path. */
  readonly path: string;
  readonly queues: readonly QueueHandlers[];
}

type AnyFn = (job: Job, context: JobContext) => unknown;

function isFunction(value: unknown): value is AnyFn {
  return typeof value === 'function';
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (undefined)';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return `an object with ${Object.keys(value).length === 0 ? 'no keys' : `keys ${Object.keys(value).slice(0, 6).join(', ')}`}`;
  return `a ${typeof value} (${String(value).slice(0, 40)})`;
}

function relative(p: string): string {
  const rel = path.relative(process.cwd(), p);
  return rel === '' ? '.' : rel.startsWith('..') ? p : rel;
}

/** A handler module's exports without the module-namespace extras (`default`, `__esModule`, `module.exports`). */
function namedExports(mod: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(mod)) if (k !== 'default' && k !== '__esModule' && k !== 'module.exports') out[k] = v;
  return out;
}

/**
 * Builds the handler of one queue from a function or a name → function map. `where`
 * names the export for messages, e.g. `jobs/payments.ts (default export)`.
 */
function queueHandlers(queue: string, value: unknown, source: string, where: string, example: string): QueueHandlers {
  if (isFunction(value)) return { queue, source, names: [], catchAll: true, handler: value as Handler };
  if (isPlainObject(value) && Object.keys(value).length > 0) {
    const map = new Map<string, AnyFn>();
    for (const [name, fn] of Object.entries(value)) {
      if (!isFunction(fn)) {
        throw new UsageError(
          `${where}: the handler for job name '${name}' of queue '${queue}' is ${describeValue(fn)}, not a function.\nExpected, for example:\n${indent(example)}`,
          'export a function (job, { signal, log, progress }) => result for each job name',
        );
      }
      map.set(name, fn);
    }
    const fallback = map.get('*');
    map.delete('*');
    const names = [...map.keys()];
    const handler: Handler = (job, context) => {
      const fn = map.get(job.name) ?? fallback;
      if (fn === undefined) {
        throw new UnrecoverableError(
          `no handler for job name '${job.name}' in queue '${queue}' (${source} handles ${names.map((n) => `'${n}'`).join(', ')}; export a '*' handler for every other name)`,
        );
      }
      return fn(job, context);
    };
    return { queue, source, names, catchAll: fallback !== undefined, handler };
  }
  throw new UsageError(
    `${where} is ${describeValue(value)}: expected a handler function, or an object mapping job names to functions.\nExpected, for example:\n${indent(example)}`,
    'export default a function (job, { signal, log, progress }) => result',
  );
}

function indent(text: string): string {
  return text
    .split('\n')
    .map((l) => `    ${l}`)
    .join('\n');
}

/** Whether this Node runs TypeScript files (type stripping, on by default from Node 22.18 / 23.6). */
export function nodeRunsTypeScript(): boolean {
  const ts = (process.features as { typescript?: string | false }).typescript;
  return typeof ts === 'string' && ts !== '';
}

function typeScriptUnsupported(file: string): CliError {
  return new CliError(
    `${relative(file)} is TypeScript, and this Node (${process.version}) does not run TypeScript files`,
    'use Node 22.18 or newer (it strips types by itself; 22.6-22.17 need --experimental-strip-types), or compile your handlers to .js first',
  );
}

/** Imports one handler file, turning load failures into messages that name the file. */
async function importFile(file: string): Promise<Record<string, unknown>> {
  const ext = path.extname(file);
  if (TS_EXTENSIONS.has(ext) && !nodeRunsTypeScript()) throw typeScriptUnsupported(file);
  try {
    return (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (err) {
    const code = (err as { code?: unknown } | null)?.code;
    const message = err instanceof Error ? err.message : String(err);
    if (code === 'ERR_UNKNOWN_FILE_EXTENSION' && TS_EXTENSIONS.has(ext)) throw typeScriptUnsupported(file);
    if (code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
      throw new CliError(
        `${relative(file)}: ${message}`,
        `Node runs TypeScript by stripping types only: replace enums, namespaces and constructor parameter properties with plain JavaScript (a const object for an enum), run with NODE_OPTIONS=--experimental-transform-types, or compile to .js first`,
      );
    }
    if (code === 'ERR_UNSUPPORTED_NODE_MODULES_TYPE_STRIPPING') {
      throw new CliError(`${relative(file)}: ${message}`, 'Node does not strip types of files under node_modules: compile these handlers to .js, or keep them outside node_modules');
    }
    if (err instanceof SyntaxError && /Unexpected token 'export'|Cannot use import statement outside a module/.test(message)) {
      const pkg = nearestPackageJson(path.dirname(file));
      throw new CliError(
        `could not load ${relative(file)}: ${message}: it uses ES module syntax (import/export), and Node loads it as CommonJS` +
          (pkg === null ? '' : ` because ${relative(pkg.path)} ${pkg.type === undefined ? 'has no "type" field' : `says "type": "${pkg.type}"`}`),
        `name the file ${path.basename(file, ext)}${ext.includes('ts') ? '.mts' : '.mjs'}, or set "type": "module" in ${pkg === null ? 'a package.json beside it' : relative(pkg.path)}`,
      );
    }
    const where = err instanceof Error && err.stack ? firstFrameIn(err.stack, file) : undefined;
    throw new CliError(
      `could not load ${relative(file)}${where === undefined ? '' : ` (${where})`}: ${code !== undefined && !message.includes(String(code)) ? `${String(code)}: ` : ''}${message}`,
      'fix the error in the handler file (CONVEYOR_DEBUG=1 shows the whole stack)',
    );
  }
}

/** The package.json that decides how Node loads files in `dir` (its "type"), or null. */
function nearestPackageJson(dir: string): { path: string; type: string | undefined } | null {
  for (let d = dir; ; d = path.dirname(d)) {
    const candidate = path.join(d, 'package.json');
    if (fs.existsSync(candidate)) {
      try {
        const type = (JSON.parse(fs.readFileSync(candidate, 'utf8')) as { type?: unknown }).type;
        return { path: candidate, type: typeof type === 'string' ? type : undefined };
      } catch {
        return { path: candidate, type: undefined };
      }
    }
    if (path.dirname(d) === d) return null;
  }
}

function firstFrameIn(stack: string, file: string): string | undefined {
  const url = pathToFileURL(file).href;
  for (const line of stack.split('\n')) {
    const i = line.indexOf(url);
    if (i >= 0) {
      const m = /:(\d+):(\d+)/.exec(line.slice(i + url.length));
      if (m) return `line ${m[1]}`;
    }
  }
  return undefined;
}

/** Files in `dir` that are handler files, in name order. */
export function handlerFiles(dir: string): { files: string[]; ignored: string[] } {
  const files: string[] = [];
  const ignored: string[] = [];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : 1))) {
    const name = entry.name;
    const ext = path.extname(name);
    const isHandlerExt = (HANDLER_EXTENSIONS as readonly string[]).includes(ext);
    if (!entry.isFile() || !isHandlerExt || /\.d\.[mc]?ts$/.test(name) || /\.(test|spec)\.[mc]?[jt]s$/.test(name) || name.startsWith('.') || name.startsWith('_')) {
      if (!name.startsWith('.')) ignored.push(name);
      continue;
    }
    files.push(path.join(dir, name));
  }
  return { files, ignored };
}

function queueFromFile(file: string): string {
  const base = path.basename(file, path.extname(file));
  try {
    return checkQueueName(base);
  } catch {
    throw new UsageError(
      `${relative(file)}: '${base}' is not a valid queue name, and a handler file is named after its queue`,
      `rename the file: queue names use 1-128 letters, digits, '.', '_', ':' and '-', starting with a letter or digit (helper files starting with '_' are skipped)`,
    );
  }
}

async function loadFolder(dir: string): Promise<LoadedHandlers> {
  const { files, ignored } = handlerFiles(dir);
  if (files.length === 0) {
    throw new UsageError(
      `no handler files in ${relative(dir)}${ignored.length === 0 ? ' (it is empty)' : ` (found only ${ignored.slice(0, 8).join(', ')}${ignored.length > 8 ? ', …' : ''})`}: expected one file per queue, named after the queue (.ts, .js, .mjs).\nFor example:\n${indent(FOLDER_EXAMPLE)}`,
      `create ${path.join(relative(dir), 'payments.ts')} as above, or pass one module mapping queues to handlers: --handlers ./handlers.ts`,
    );
  }
  const seen = new Map<string, string>();
  const queues: QueueHandlers[] = [];
  for (const file of files) {
    const queue = queueFromFile(file);
    const other = seen.get(queue);
    if (other !== undefined) {
      throw new UsageError(`${relative(other)} and ${relative(file)} both handle queue '${queue}'`, 'keep one file per queue (remove or rename the other, or prefix helpers with _)');
    }
    seen.set(queue, file);
    const mod = await importFile(file);
    const source = relative(file);
    if (mod.default !== undefined) {
      queues.push(queueHandlers(queue, mod.default, source, `${source} (default export)`, FOLDER_EXAMPLE));
      continue;
    }
    const named = namedExports(mod);
    if (Object.keys(named).length === 0) {
      throw new UsageError(`${source} exports nothing: a handler file's default export is the handler of queue '${queue}'.\nExpected, for example:\n${indent(FOLDER_EXAMPLE)}`, 'add `export default async function (job) { … }`');
    }
    queues.push(queueHandlers(queue, named, source, `${source} (its named exports, as job name → handler)`, FOLDER_EXAMPLE));
  }
  return { kind: 'folder', path: dir, queues };
}

async function loadModule(file: string): Promise<LoadedHandlers> {
  const mod = await importFile(file);
  const source = relative(file);
  let map: unknown = mod.default;
  let where = `${source} (default export)`;
  if (map === undefined) {
    map = namedExports(mod);
    where = `${source} (its named exports)`;
  }
  if (isFunction(map)) {
    throw new UsageError(
      `${where} is a single function, so it names no queue: a module passed to --handlers maps queue names to handlers.\nExpected, for example:\n${indent(MODULE_EXAMPLE)}`,
      `or put the file in a folder, named after its queue (jobs/payments.ts), and pass the folder: --handlers ${path.join(path.dirname(source), '')}`,
    );
  }
  if (!isPlainObject(map) || Object.keys(map).length === 0) {
    throw new UsageError(`${where} is ${describeValue(map)}: expected an object mapping queue names to handlers.\nExpected, for example:\n${indent(MODULE_EXAMPLE)}`, 'export default { queue: handler, … }');
  }
  const queues: QueueHandlers[] = [];
  for (const [queue, value] of Object.entries(map)) {
    try {
      checkQueueName(queue);
    } catch (err) {
      throw new UsageError(`${where}: ${err instanceof Error ? err.message : String(err)}`, 'the keys of the map are queue names');
    }
    queues.push(queueHandlers(queue, value, source, `${where}, queue '${queue}'`, MODULE_EXAMPLE));
  }
  return { kind: 'module', path: file, queues };
}

/**
 * Loads handlers from a folder (one file per queue) or one module (a map of queues).
 * Throws UsageError (exit 2) for what the user has to change, CliError (exit 1) for a file
 * that fails to load.
 */
export async function loadHandlers(target: string): Promise<LoadedHandlers> {
  const resolved = path.resolve(target);
  let stat: fs.Stats;
  try {
    stat = fs.statSync(resolved);
  } catch {
    throw new UsageError(
      `--handlers ${target}: no such folder or file (looked at ${resolved}).\nExpected a folder with one file per queue, for example:\n${indent(FOLDER_EXAMPLE)}`,
      `create the folder (mkdir ${target}) with a file per queue, or point --handlers at an existing folder or module`,
    );
  }
  if (stat.isDirectory()) return loadFolder(resolved);
  if (!(HANDLER_EXTENSIONS as readonly string[]).includes(path.extname(resolved))) {
    throw new UsageError(`--handlers ${target}: not a folder or a JavaScript/TypeScript module (.ts, .js, .mjs, .cjs)`, 'point --handlers at a folder of handler files or at one module mapping queues to handlers');
  }
  return loadModule(resolved);
}

/** `payments (charge, refund)`, `email (every job name)`. */
export function describeQueue(q: QueueHandlers): string {
  if (q.names.length === 0) return `${q.queue} (every job name)`;
  return `${q.queue} (${q.names.join(', ')}${q.catchAll ? ', and * for the rest' : ''})`;
}
