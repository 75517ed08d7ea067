/**
 * Health checks for load balancers and humans.
 * - `/health/live`: the process answers (200). Never touches the store, so a slow database
 *   does not get a healthy process restarted.
 * - `/health/ready`: 200 when the store answers a ping, its schema is current and the
 *   maintenance loop is alive; else 503 with the failing checks. Take a server out of
 *   rotation on 503.
 * - `/health`: the detailed view (store latency, feed, maintenance, workers), scope `read`.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../server.ts';
import { VERSION } from '../../version.ts';

interface Check {
  readonly ok: boolean;
  readonly [key: string]: unknown;
}

async function storeCheck(ctx: ServerContext): Promise<Check> {
  const t0 = performance.now();
  try {
    await ctx.conveyor.store.ping();
    return { ok: true, latencyMs: Math.round((performance.now() - t0) * 100) / 100 };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

async function schemaCheck(ctx: ServerContext): Promise<Check> {
  try {
    await ctx.conveyor.store.checkSchema?.();
    return { ok: true };
  } catch (err) {
    return { ok: false, error: err instanceof Error ? err.message : String(err) };
  }
}

function maintenanceCheck(ctx: ServerContext): Check {
  const m = ctx.maintenance;
  if (m === null) return { ok: true, enabled: false };
  // Give a fresh server one interval before calling the loop dead.
  const young = Date.now() - ctx.startedAt < m.intervalMs * 3;
  return { ok: m.healthy() || (young && m.lastError === null), enabled: true, lastRunAt: m.lastRunAt, lastError: m.lastError };
}

export function registerHealthRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get('/health/live', { config: { scope: 'public' }, schema: { tags: ['health'], summary: 'The process is up' } }, async () => ({ status: 'ok' }));

  app.get('/health/ready', { config: { scope: 'public' }, schema: { tags: ['health'], summary: 'Ready for traffic: store reachable, schema current, maintenance alive' } }, async (_request, reply) => {
    const [store, schema] = await Promise.all([storeCheck(ctx), schemaCheck(ctx)]);
    const maintenance = maintenanceCheck(ctx);
    const ok = store.ok && schema.ok && maintenance.ok;
    // Public, so no error texts (addresses, SQL): which check failed is enough for a load
    // balancer; /health (scope read) has the details.
    const brief = (c: Check) => (c.ok ? c : { ok: false, error: 'failing; see /health' });
    return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'not_ready', checks: { store: brief(store), schema: brief(schema), maintenance: brief(maintenance) } });
  });

  app.get('/health', { config: { scope: 'read' }, schema: { tags: ['health'], summary: 'Detailed health for humans' } }, async (_request, reply) => {
    const [store, schema] = await Promise.all([storeCheck(ctx), schemaCheck(ctx)]);
    const maintenance = maintenanceCheck(ctx);
    const now = Date.now();
    let workers: unknown = [];
    try {
      workers = (await ctx.conveyor.store.listWorkers({ since: now - 60_000 })).map((w) => ({
        id: w.id,
        kind: w.kind,
        host: w.host,
        queues: w.queues,
        lastSeenAgoMs: now - w.lastSeenAt,
        lastClaimAgoMs: w.lastClaimAt === null ? null : now - w.lastClaimAt,
      }));
    } catch (err) {
      workers = { error: err instanceof Error ? err.message : String(err) };
    }
    const ok = store.ok && schema.ok && maintenance.ok;
    return reply.code(ok ? 200 : 503).send({
      status: ok ? 'ready' : 'not_ready',
      version: VERSION,
      uptimeMs: now - ctx.startedAt,
      store: { kind: ctx.conveyor.store.kind, ...store },
      schema,
      maintenance,
      events: { mark: ctx.feed.mark, lastReadAt: ctx.feed.lastReadAt },
      remoteClaims: { lastClaimAt: ctx.leases.lastClaimAt },
      workers,
    });
  });
}
