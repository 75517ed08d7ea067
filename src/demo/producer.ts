/**
 * The demo's producer: orders arriving at a steady rate (with some jitter), plus a burst
 * (a "flash sale") every now and then, so the dashboard shows a backlog building up and
 * draining. Each order is one `orders/place` job; express orders get a higher priority.
 */
import type { JobOptions } from '../options.ts';
import type { AddJob, Order } from './handlers.ts';

export interface ProducerOptions {
  /** Orders per second. Default 10. */
  readonly rate?: number;
  /** A burst of `burstSize` orders this often, in ms; 0 for none. Default 30,000. */
  readonly burstEveryMs?: number;
  /** Default 100. */
  readonly burstSize?: number;
  readonly random?: () => number;
  /** Called with an error from adding (the producer carries on). */
  readonly onError?: (err: unknown) => void;
}

export interface Producer {
  /** Orders added so far. */
  readonly added: number;
  stop(): Promise<void>;
}

const CUSTOMERS = ['ada', 'grace', 'alan', 'edsger', 'barbara', 'ken', 'dennis', 'margaret', 'linus', 'radia', 'donald', 'frances'];
const ORDER_OPTIONS: JobOptions = { attempts: 2, backoff: { type: 'fixed', delay: 500 }, removeOnComplete: { count: 5000 }, removeOnFail: { count: 5000 } };
const TICK_MS = 100;

export function startProducer(add: AddJob, options: ProducerOptions = {}): Producer {
  const rate = options.rate ?? 10;
  const burstEveryMs = options.burstEveryMs ?? 30_000;
  const burstSize = options.burstSize ?? 100;
  const random = options.random ?? Math.random;
  let added = 0;
  let seq = 0;
  let owed = 0;
  let stopped = false;
  const inFlight = new Set<Promise<unknown>>();

  const order = (): Order => {
    seq++;
    const items = 1 + Math.floor(random() * 5);
    return {
      orderId: `ord-${Date.now().toString(36)}-${seq}`,
      customer: CUSTOMERS[Math.floor(random() * CUSTOMERS.length)]!,
      items,
      total: items * (500 + Math.floor(random() * 9500)),
      express: random() < 0.2,
    };
  };
  const place = (o: Order) => {
    const p = add('orders', 'place', o, { ...ORDER_OPTIONS, priority: o.express ? 5 : 0 }).then(
      () => {
        added++;
      },
      (err: unknown) => options.onError?.(err),
    );
    inFlight.add(p);
    void p.finally(() => inFlight.delete(p));
  };

  // Orders arrive with jitter: each tick places what the rate owes, ±50 %.
  const tick = setInterval(() => {
    if (stopped) return;
    owed += (rate * TICK_MS) / 1000;
    const n = Math.floor(owed * (0.5 + random()));
    owed -= n;
    if (owed < -rate) owed = 0;
    for (let i = 0; i < n; i++) place(order());
  }, TICK_MS);
  // The first orders at once, so the first jobs complete within a second of starting.
  for (let i = 0; i < Math.max(1, Math.ceil(rate / 2)); i++) place(order());

  const burst =
    burstEveryMs > 0
      ? setInterval(() => {
          if (stopped) return;
          for (let i = 0; i < burstSize; i++) place(order());
        }, burstEveryMs)
      : undefined;

  return {
    get added() {
      return added;
    },
    async stop() {
      stopped = true;
      clearInterval(tick);
      clearInterval(burst);
      await Promise.all([...inFlight]);
    },
  };
}
