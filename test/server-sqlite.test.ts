/** The HTTP server suite on the embedded SQLite store (a real file). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';
import { serverSuite } from './server/suite.ts';

serverSuite('sqlite', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-server-'));
  const store = openSqliteStore({ path: path.join(dir, 'conveyor.db'), durability: 'normal', busyTimeoutMs: 5000 });
  return {
    store,
    cleanup: async () => {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});
