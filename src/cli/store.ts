/**
 * Opening the store for a command: the URL comes from src/cli/config.ts (flag, then
 * CONVEYOR_URL / DATABASE_URL, then the default), is recorded for error messages, and the
 * Conveyor is always closed again, also when the command fails.
 */
import type { Conveyor } from '../engine/conveyor.ts';
import { resolveConfig, type Setting } from './config.ts';
import { CliError, errorContext } from './errors.ts';
import { didYouMean } from '../options.ts';

import type { QueueInfo } from '../store/contract.ts';

export interface StoreFlags {
  readonly url?: string | undefined;
}

/** The store URL setting for these flags, remembered for error messages. */
export function storeUrl(flags: StoreFlags): Setting<string> {
  const url = resolveConfig({ url: flags.url }).url;
  errorContext.url = url;
  return url;
}

/**
 * Opens the store, runs `fn`, closes the store. Commands other than `migrate` and `serve`
 * open with `migrate: false`, so a typo in a URL or schema name never creates a new, empty
 * schema: an unmigrated PostgreSQL schema is refused with STORE_SCHEMA and a hint to run
 * `conveyor migrate`. (The embedded SQLite store always migrates its own file.)
 */
export async function withConveyor<T>(flags: StoreFlags, fn: (cv: Conveyor) => Promise<T>, options: { migrate?: boolean } = {}): Promise<T> {
  const url = storeUrl(flags);
  // Loaded here, not at the top: --help and usage errors need no store code (and start faster).
  const { Conveyor } = await import('../engine/conveyor.ts');
  const cv = await Conveyor.open({ url: url.value, migrate: options.migrate ?? false });
  try {
    return await fn(cv);
  } finally {
    await cv.close();
  }
}

/**
 * The queue's listing entry, or a CliError naming the queues that do exist (a typo in a
 * queue name should not look like an empty queue).
 */
export async function requireQueue(cv: Conveyor, name: string): Promise<QueueInfo> {
  const queues = await cv.store.listQueues();
  const found = queues.find((q) => q.name === name);
  if (found) return found;
  const names = queues.map((q) => q.name);
  const suggestion = didYouMean(name, names);
  throw new CliError(
    `no queue named '${name}'${suggestion === undefined ? '' : ` (did you mean '${suggestion}'?)`}`,
    names.length === 0 ? 'this store has no queues yet: add a job with `conveyor add <queue> --data …`' : `queues here: ${names.slice(0, 20).join(', ')}${names.length > 20 ? ', …' : ''} (see \`conveyor queues ls\`)`,
  );
}
