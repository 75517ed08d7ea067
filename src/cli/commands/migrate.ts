/** `conveyor migrate`: create or upgrade the store's schema. */
import type { Command } from 'commander';
import { describeStoreUrl, maskUrl } from '../config.ts';
import { printJson, printLine } from '../output.ts';
import { examples, withJson, withUrl } from '../shared.ts';
import { storeUrl, withConveyor } from '../store.ts';

export function registerMigrate(program: Command): void {
  const cmd = program
    .command('migrate')
    .description("create or upgrade the store's schema (safe to run again, and from several processes at once)");
  withUrl(cmd);
  withJson(cmd);
  examples(cmd, [
    'conveyor migrate --url sqlite:///var/lib/app/jobs.db',
    "conveyor migrate --url 'postgres://app:secret@db:5432/app?schema=jobs'",
    'DATABASE_URL=postgres://app@db/app conveyor migrate --json',
  ]);
  cmd.action(async (opts: { url?: string; json?: boolean }) => {
    const url = storeUrl(opts).value;
    await withConveyor(opts, async () => undefined, { migrate: true });
    const store = await describeStoreUrl(url);
    if (opts.json) printJson({ ok: true, url: maskUrl(url), store });
    else printLine(`migrated ${maskUrl(url)} (${store})`);
  });
}
