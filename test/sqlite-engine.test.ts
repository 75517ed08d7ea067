/** The engine conformance suite on the embedded SQLite store: a real file, and in-memory. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { engineSuite } from './conformance/engine.ts';
import { openSqliteStore } from '../src/stores/sqlite/index.ts';

engineSuite('sqlite file', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'conveyor-engine-'));
  const store = openSqliteStore({ path: path.join(dir, 'q.db'), durability: 'normal', busyTimeoutMs: 5000 });
  return {
    store,
    cleanup: async () => {
      await store.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
});

engineSuite('sqlite in-memory', async () => {
  const store = openSqliteStore({ path: ':memory:', durability: 'normal', busyTimeoutMs: 5000 });
  return { store, cleanup: async () => void (await store.close()) };
});
