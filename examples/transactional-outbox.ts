/**
 * The transactional outbox on PostgreSQL: an order row and its confirmation job are written
 * in one transaction, so the job exists if and only if the order does. One order commits
 * (its job runs); the other's transaction rolls back (no order, and no job ever ran).
 *
 *   DATABASE_URL=postgres://app@127.0.0.1:5432/app node examples/transactional-outbox.ts
 *
 * DATABASE_URL is your app's database (default postgres://root@127.0.0.1:5432/test);
 * conveyor keeps its tables in a schema of its own there (CONVEYOR_URL, default
 * DATABASE_URL, whose schema is then `conveyor`; add ?schema=… to choose), and the `pg`
 * client running your transaction must be connected to that same database. ORDERS_TABLE
 * names the example's table (default outbox_orders).
 */
import pg from 'pg';
import { Conveyor } from '../src/index.ts';

const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://root@127.0.0.1:5432/test';
const ORDERS = process.env.ORDERS_TABLE ?? 'outbox_orders';

const db = new pg.Pool({ connectionString: DATABASE_URL }); // your app's own pool
const cv = await Conveyor.open({ url: process.env.CONVEYOR_URL ?? DATABASE_URL });
const confirmations = cv.queue<{ orderId: number }>('order-confirmations');
await db.query(`CREATE TABLE IF NOT EXISTS ${ORDERS} (id serial PRIMARY KEY, item text NOT NULL)`);

/** Inserts an order and adds its job in one transaction; `fail` throws before the commit. */
async function placeOrder(item: string, fail: boolean): Promise<void> {
  const client = await db.connect();
  try {
    await client.query('BEGIN');
    const { rows } = await client.query<{ id: number }>(`INSERT INTO ${ORDERS} (item) VALUES ($1) RETURNING id`, [item]);
    const orderId = rows[0]!.id;
    // Written on `client`, inside the transaction: invisible to workers until COMMIT.
    await confirmations.addInTransaction(client, 'confirm', { orderId }, { jobId: `confirm-${orderId}` });
    if (fail) throw new Error(`payment declined for order ${orderId}`);
    await client.query('COMMIT'); // the order and its job exist from here on; workers are woken
    console.log(`order ${orderId} (${item}) committed with its confirmation job`);
  } catch (err) {
    await client.query('ROLLBACK'); // neither the order nor its job ever existed
    console.log(`rolled back: ${(err as Error).message}`);
  } finally {
    client.release();
  }
}

const worker = cv.worker<{ orderId: number }>('order-confirmations', async (job) => {
  console.log(`confirming order ${job.data.orderId}`); // send the e-mail here
  return { confirmed: job.data.orderId };
});

const confirmed = new Promise((resolve) => worker.once('completed', resolve));
await placeOrder('book', false);
await placeOrder('lamp', true);

await confirmed;
console.log('jobs:', await confirmations.getCounts());
await cv.close();
await db.end();
