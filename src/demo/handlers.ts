/**
 * The demo's job handlers: a small online shop. An order is placed (`orders/place`), which
 * charges a payment (`payments/charge`), which sends notifications (`notifications/email`,
 * `notifications/sms`). Each handler sleeps a little, as real I/O would, and sometimes
 * reports progress or writes a log line.
 *
 *   orders/place ──▶ payments/charge ──▶ notifications/email  receipt (priority 0)
 *                    ≈6 % of attempts fail     notifications/sms    express orders (priority 10)
 *                    and retry with            notifications/email  review request, delayed 5-20 s (priority -5)
 *                    exponential backoff;
 *                    ≈1.5 % fail for good
 *
 * The map returned has the shape `conveyor worker --handlers` takes from a module
 * (`{ queue: { jobName: handler } }`).
 */
import { UnrecoverableError } from '../errors.ts';
import type { Job } from '../engine/job.ts';
import type { JobContext } from '../engine/worker.ts';
import type { JobOptions } from '../options.ts';

export interface Order {
  readonly orderId: string;
  readonly customer: string;
  readonly items: number;
  /** In cents. */
  readonly total: number;
  readonly express: boolean;
}

export interface Charge {
  readonly orderId: string;
  readonly customer: string;
  readonly amount: number;
  readonly method: 'card' | 'paypal' | 'sepa';
  readonly express: boolean;
}

export interface Notification {
  readonly orderId: string;
  readonly to: string;
  readonly template: 'receipt' | 'shipped' | 'review-request';
}

/** How a handler adds the next step's job (the demo passes `cv.queue(q).add`). */
export type AddJob = (queue: string, name: string, data: unknown, opts?: JobOptions) => Promise<unknown>;

type DemoHandler<D> = (job: Job<D>, context: JobContext<D>) => Promise<unknown>;

export interface DemoHandlers {
  readonly orders: { readonly place: DemoHandler<Order> };
  readonly payments: { readonly charge: DemoHandler<Charge> };
  readonly notifications: { readonly email: DemoHandler<Notification>; readonly sms: DemoHandler<Notification> };
}

/** Share of payment attempts that fail and are retried (gateway timeouts). */
export const PAYMENT_TRANSIENT_FAILURE = 0.06;
/** Share of payments declined for good (no retry: UnrecoverableError). */
export const PAYMENT_DECLINED = 0.015;

/** Keeps the demo's store bounded however long it runs (the summary counts from events). */
const KEEP = { count: 5000 } as const;

export const PAYMENT_OPTIONS: JobOptions = { attempts: 4, backoff: { type: 'exponential', delay: 500, jitter: 0.2 }, removeOnComplete: KEEP, removeOnFail: KEEP };
const NOTIFICATION_OPTIONS: JobOptions = { attempts: 3, backoff: { type: 'fixed', delay: 1000 }, removeOnComplete: KEEP, removeOnFail: KEEP };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(signal.reason);
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function euros(cents: number): string {
  return `${(cents / 100).toFixed(2)} EUR`;
}

export function demoHandlers(add: AddJob, random: () => number = Math.random): DemoHandlers {
  const between = (lo: number, hi: number) => lo + Math.floor(random() * (hi - lo + 1));
  return {
    orders: {
      async place(job, { signal, progress, log }) {
        const order = job.data;
        await sleep(between(10, 40), signal); // check stock, reserve items
        if (random() < 0.3) await progress({ step: 'items reserved', items: order.items });
        if (random() < 0.2) await log(`reserved ${order.items} items for ${order.customer}`);
        const method = (['card', 'card', 'card', 'paypal', 'sepa'] as const)[between(0, 4)]!;
        const charge: Charge = { orderId: order.orderId, customer: order.customer, amount: order.total, method, express: order.express };
        // One payment per order, even if this job runs twice (a retry after the add).
        await add('payments', 'charge', charge, { ...PAYMENT_OPTIONS, jobId: `pay-${order.orderId}`, priority: order.express ? 5 : 0 });
        return { orderId: order.orderId, accepted: true };
      },
    },
    payments: {
      async charge(job, { signal, progress, log, attempt }) {
        const c = job.data;
        await sleep(between(20, 80), signal); // the payment gateway
        const r = random();
        if (r < PAYMENT_DECLINED) throw new UnrecoverableError(`card declined for ${c.customer}: insufficient funds (simulated)`);
        if (r < PAYMENT_DECLINED + PAYMENT_TRANSIENT_FAILURE) throw new Error(`payment gateway timeout after 30 s on attempt ${attempt} (simulated)`);
        if (random() < 0.25) await progress(100);
        if (random() < 0.3 || attempt > 1) await log(`charged ${euros(c.amount)} via ${c.method}${attempt > 1 ? ` on attempt ${attempt}` : ''}`);
        const to = `${c.customer}@example.com`;
        await add('notifications', 'email', { orderId: c.orderId, to, template: 'receipt' } satisfies Notification, { ...NOTIFICATION_OPTIONS, priority: 0 });
        if (c.express) await add('notifications', 'sms', { orderId: c.orderId, to: `+4915${between(10_000_000, 99_999_999)}`, template: 'shipped' } satisfies Notification, { ...NOTIFICATION_OPTIONS, priority: 10 });
        if (random() < 0.3) {
          await add('notifications', 'email', { orderId: c.orderId, to, template: 'review-request' } satisfies Notification, { ...NOTIFICATION_OPTIONS, priority: -5, delay: between(5000, 20_000) });
        }
        return { orderId: c.orderId, charged: c.amount, method: c.method, transaction: `tx_${job.id}` };
      },
    },
    notifications: {
      async email(job, { signal, log }) {
        await sleep(between(5, 30), signal); // SMTP
        if (random() < 0.01) throw new Error('SMTP 421: service not available, try again later (simulated)');
        if (random() < 0.1) await log(`sent ${job.data.template} to ${job.data.to}`);
        return { sent: true, template: job.data.template };
      },
      async sms(job, { signal, log }) {
        await sleep(between(10, 40), signal); // SMS gateway
        if (random() < 0.2) await log(`texted ${job.data.to}: your order ${job.data.orderId} has shipped`);
        return { sent: true };
      },
    },
  };
}
