/** The HTTP server suite on PostgreSQL (a schema of its own, dropped afterwards). */
import { makePgStore } from './helpers/postgres.ts';
import { serverSuite } from './server/suite.ts';

serverSuite('postgres', async () => {
  const { store, cleanup } = await makePgStore({ poolSize: 6 });
  // The Conveyor closes the store; cleanup only drops the schema (closing twice is harmless).
  return { store, cleanup };
});
