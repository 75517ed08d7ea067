#!/usr/bin/env node
/**
 * The `conveyor` command. This first version covers what the foundation needs: migrating a
 * store and looking at queues. `serve`, `worker`, `add`, `jobs`, `keys` and `bench` arrive with
 * the CLI issue, built on a full argument parser; until then, unknown commands exit 2.
 *
 * Exit codes: 0 ok, 1 error, 2 usage.
 */
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { Conveyor } from '../engine/conveyor.ts';
import { isConveyorError } from '../errors.ts';
import { DEFAULT_STORE_URL, redactUrl } from '../store/open.ts';

const HELP = `conveyor — background jobs for Node.js

Usage:
  conveyor migrate [--url URL]       create or upgrade the store's schema
  conveyor queues  [--url URL] [--json]
                                     list queues with job counts by state
  conveyor --version | --help

Options:
  --url URL   store URL (default: $CONVEYOR_URL, else ${DEFAULT_STORE_URL})
  --json      machine-readable output

Examples:
  conveyor migrate --url sqlite:///var/lib/app/jobs.db
  CONVEYOR_URL=sqlite://jobs.db conveyor queues --json

Exit codes: 0 ok, 1 error, 2 usage.
`;

function version(): string {
  const pkg = JSON.parse(readFileSync(path.join(import.meta.dirname, '..', '..', 'package.json'), 'utf8')) as { version: string };
  return pkg.version;
}

function usage(message: string): never {
  process.stderr.write(`conveyor: ${message}\nRun 'conveyor --help' for usage.\n`);
  process.exit(2);
}

async function main(argv: string[]): Promise<void> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: { url: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' }, version: { type: 'boolean', short: 'v' } },
    });
  } catch (err) {
    usage((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.version) return void process.stdout.write(`${version()}\n`);
  const command = positionals[0];
  if (values.help || command === undefined || command === 'help') return void process.stdout.write(HELP);
  if (positionals.length > 1) usage(`unexpected argument '${positionals[1]}'`);
  const url = values.url ?? process.env.CONVEYOR_URL ?? DEFAULT_STORE_URL;
  switch (command) {
    case 'migrate': {
      const cv = await Conveyor.open({ url });
      await cv.close();
      process.stdout.write(values.json ? `${JSON.stringify({ ok: true, url: redactUrl(url) })}\n` : `migrated ${redactUrl(url)}\n`);
      return;
    }
    case 'queues': {
      const cv = await Conveyor.open({ url });
      const queues = await cv.store.listQueues();
      await cv.close();
      if (values.json) return void process.stdout.write(`${JSON.stringify(queues)}\n`);
      if (queues.length === 0) return void process.stdout.write('no queues yet\n');
      const rows = queues.map((q) => [q.name + (q.paused ? ' (paused)' : ''), ...Object.values(q.counts).map(String)]);
      const header = ['queue', 'waiting', 'delayed', 'active', 'completed', 'failed', 'cancelled'];
      const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
      for (const r of [header, ...rows]) process.stdout.write(`${r.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ')}\n`);
      return;
    }
    default:
      usage(`unknown command '${command}'`);
  }
}

main(process.argv.slice(2)).catch((err: unknown) => {
  const message = isConveyorError(err) ? `${err.code}: ${err.message}` : String(err);
  process.stderr.write(`conveyor: ${message}\n`);
  process.exit(1);
});
