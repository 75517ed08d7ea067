/** docs/errors.md and the code table in src/errors.ts must list the same codes. */
import { it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ERROR_CODES } from '../src/errors.ts';

it('docs/errors.md documents every error code, and only those, with the right retryable flag', () => {
  const doc = fs.readFileSync(path.join(import.meta.dirname, '..', 'docs', 'errors.md'), 'utf8');
  const rows = [...doc.matchAll(/^\| `([A-Z_]+)` \| (yes|no) \|/gm)].map((m) => [m[1]!, m[2] === 'yes'] as const);
  const documented = Object.fromEntries(rows);
  assert.equal(rows.length, Object.keys(documented).length, 'a code is documented twice');
  const inCode = Object.fromEntries(Object.entries(ERROR_CODES).map(([code, v]) => [code, v.retryable]));
  assert.deepEqual(documented, inCode);
});
