/**
 * `conveyor keys create|ls|revoke`: API keys for `conveyor serve`, written straight to the
 * store (the server reads them from there; a running server sees a new key at once and a
 * revocation within its key cache time, 5 s by default).
 */
import type { Command } from 'commander';
import type { ApiKeyRecord, ApiScope } from '../../store/contract.ts';
import { CliError, UsageError } from '../errors.ts';
import { formatTime, note, printJson, printLine, printTable } from '../output.ts';
import { parseDuration, parseScopes } from '../parse.ts';
import { examples, withJson, withUrl } from '../shared.ts';
import { withConveyor } from '../store.ts';

interface CommonFlags {
  url?: string;
  json?: boolean;
}

function status(record: ApiKeyRecord, now: number): string {
  if (record.revokedAt !== null) return `revoked ${formatTime(record.revokedAt)}`;
  if (record.expiresAt !== null && record.expiresAt <= now) return `expired ${formatTime(record.expiresAt)}`;
  return 'active';
}

export function registerKeys(program: Command): void {
  const keys = program.command('keys').description('API keys for the HTTP server: create, list, revoke');
  examples(keys, ['conveyor keys create --name deploy --scopes produce', 'conveyor keys ls', 'conveyor keys revoke 3f2a9c0d1e4b5a69']);

  const create = keys
    .command('create')
    .description('create a key and print it once (the store keeps only its hash)')
    .requiredOption('--name <name>', 'who or what uses the key (shown in listings and logs)')
    .requiredOption('--scopes <scopes>', 'comma-separated: admin (everything), produce (add jobs), consume (remote workers), read (listings, metrics)', parseScopes)
    .option('--expires-in <duration>', 'the key stops working after this long, e.g. 30d, 12h (default: never)', parseDuration);
  withUrl(create);
  withJson(create);
  examples(create, [
    'conveyor keys create --name admin --scopes admin',
    'conveyor keys create --name web-app --scopes produce,read --expires-in 90d',
    'KEY=$(conveyor keys create --name ci --scopes consume)      # stdout is the key alone',
    "conveyor keys create --name ops --scopes read --json | jq -r .key",
  ]);
  create.action(async (opts: CommonFlags & { name: string; scopes: ApiScope[]; expiresIn?: number }) => {
    const now = Date.now();
    if (opts.expiresIn === 0) throw new UsageError('--expires-in must be longer than 0, e.g. 30d', "leave it out for a key that never expires (revoke it with 'conveyor keys revoke')");
    const { createApiKey, describeKey } = await import('../../engine/api-keys.ts');
    const created = await withConveyor(opts, async (cv) =>
      createApiKey(cv.store, { name: opts.name, scopes: opts.scopes, now, expiresAt: opts.expiresIn === undefined ? null : now + opts.expiresIn }),
    );
    if (opts.json) {
      printJson({ key: created.key, ...describeKey(created.record, now) });
      return;
    }
    const r = created.record;
    note(`Created API key ${r.id} "${r.name}" with scope${r.scopes.length === 1 ? '' : 's'} ${r.scopes.join(', ')}, ${r.expiresAt === null ? 'never expiring' : `expiring ${formatTime(r.expiresAt)}`}.`);
    note('Store it now, e.g. in your secret manager: this is the only time it is shown (conveyor keeps only a hash).');
    note('Send it as "Authorization: Bearer <key>". The key:');
    printLine(created.key);
  });

  const ls = keys.command('ls').description('list keys (never their secrets), revoked and expired ones included');
  withUrl(ls);
  withJson(ls);
  examples(ls, ['conveyor keys ls', "conveyor keys ls --json | jq '.[] | select(.active)'"]);
  ls.action(async (opts: CommonFlags) => {
    const now = Date.now();
    const list = await withConveyor(opts, async (cv) => cv.store.listApiKeys());
    const { describeKey } = await import('../../engine/api-keys.ts');
    if (opts.json) {
      printJson(list.map((k) => describeKey(k, now)));
      return;
    }
    if (list.length === 0) {
      printLine('no API keys yet (create one with: conveyor keys create --name <who> --scopes <scopes>)');
      return;
    }
    printTable(
      ['id', 'name', 'scopes', 'created', 'expires', 'status'],
      list.map((k) => [k.id, k.name, k.scopes.join(','), formatTime(k.createdAt), k.expiresAt === null ? 'never' : formatTime(k.expiresAt), status(k, now)]),
    );
  });

  const revoke = keys
    .command('revoke <id>')
    .description('revoke a key: a running server refuses it within its key cache time (5 s by default)');
  withUrl(revoke);
  withJson(revoke);
  examples(revoke, ['conveyor keys revoke 3f2a9c0d1e4b5a69', 'conveyor keys revoke cvk_3f2a9c0d1e4b5a69_…       # a whole key works too']);
  revoke.action(async (idOrKey: string, opts: CommonFlags) => {
    // A whole key (cvk_<id>_<secret>) names its id; take the id, never print the rest.
    const id = /^cvk_([0-9a-f]+)_/.exec(idOrKey)?.[1] ?? idOrKey;
    const now = Date.now();
    const outcome = await withConveyor(opts, async (cv) => {
      const record = await cv.store.getApiKey({ id });
      if (record === null) return 'missing' as const;
      if (record.revokedAt !== null) return { already: record.revokedAt };
      await cv.store.revokeApiKey({ id, now });
      return 'revoked' as const;
    });
    if (outcome === 'missing') throw new CliError(`no API key with id ${id}`, 'list the keys with: conveyor keys ls');
    if (typeof outcome === 'object') throw new CliError(`API key ${id} was already revoked at ${formatTime(outcome.already)}`);
    if (opts.json) printJson({ ok: true, id, revokedAt: now });
    else printLine(`revoked API key ${id}`);
  });
}
