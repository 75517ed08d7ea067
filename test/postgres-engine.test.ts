/** The engine conformance suite on the PostgreSQL store (its own schema, dropped afterwards). */
import { engineSuite } from './conformance/engine.ts';
import { makePgStore } from './helpers/postgres.ts';

engineSuite('postgres', async () => {
  const { store, cleanup } = await makePgStore();
  return { store, cleanup };
});
