/**
 * `conveyor serve`: one HTTP server for producers, remote workers, administrators,
 * monitoring and (later) the dashboard, on top of one `Conveyor`. Every operation goes
 * through the library (queues, the lease service, the store contract), never around it,
 * so the HTTP API and the library cannot disagree.
 *
 * Built on fastify: JSON schemas validate every body (unknown fields and wrong types are
 * 400s, never coerced or dropped) and the same schemas become the OpenAPI document.
 */
import os from 'node:os';
import Fastify, { LogController, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import rateLimit from '@fastify/rate-limit';
import swagger from '@fastify/swagger';
import { Ajv } from 'ajv';

import { ConveyorError } from '../errors.ts';
import type { Conveyor } from '../engine/conveyor.ts';
import { KeyVerifier, hasScope } from '../engine/api-keys.ts';
import { EventFeed } from '../engine/event-feed.ts';
import { LeaseService } from '../engine/lease-service.ts';
import { Maintenance, type MaintenanceOptions } from '../engine/maintenance.ts';
import type { ApiKeyRecord, ApiScope } from '../store/contract.ts';
import { toHttpError } from './http-errors.ts';
import { ServerMetrics } from './metrics.ts';
import { registerAdminRoutes } from './routes/admin.ts';
import { registerDashboardRoutes } from './routes/dashboard.ts';
import { registerDashboardApiRoutes } from './routes/dashboard-api.ts';
import { registerEventRoutes } from './routes/events.ts';
import { registerHealthRoutes } from './routes/health.ts';
import { registerProducerRoutes } from './routes/producer.ts';
import { registerWorkerRoutes } from './routes/worker.ts';
import { VERSION } from '../version.ts';

export interface ServerOptions {
  /** Address to bind. Default 127.0.0.1. Any other address needs an API key to exist, or `insecure`. */
  readonly host?: string;
  /** Port; 0 picks a free one. Default 8080. */
  readonly port?: number;
  /** Serve without authentication on a non-loopback address while no key exists. */
  readonly insecure?: boolean;
  /** Largest request body in bytes. Default 16 MiB (a batch of 1,000 jobs of 16 KB). */
  readonly bodyLimit?: number;
  /** Requests per key (or per client address without auth) per minute; 0 turns it off. Default 60,000. */
  readonly rateLimitPerMinute?: number;
  /**
   * Trust `X-Forwarded-For` from a reverse proxy (fastify's trustProxy: true, or proxy
   * addresses), so rate limits without keys and logs see the client's address. Default false.
   */
  readonly trustProxy?: boolean | string | string[];
  /** How long a verified key is trusted before it is read again (a revocation takes effect within this). Default 5,000 ms. */
  readonly keyCacheMs?: number;
  readonly maintenance?: MaintenanceOptions | false;
  /** pino logger options, or false for none. Default: info level to stdout. */
  readonly logger?: boolean | Record<string, unknown>;
}

/** What route modules share. */
export interface ServerContext {
  readonly conveyor: Conveyor;
  readonly leases: LeaseService;
  readonly feed: EventFeed;
  readonly keys: KeyVerifier;
  readonly maintenance: Maintenance | null;
  readonly metrics: ServerMetrics;
  readonly startedAt: number;
  /** Enders of the open event streams, run when the server closes. */
  readonly streams: Set<() => void>;
  /** Auth is on when a key exists, or always on a non-loopback address without `insecure`. */
  authRequired(): Promise<boolean>;
}

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The scope a route needs; `public` routes need none. */
    scope?: ApiScope | 'public';
  }
  interface FastifyRequest {
    apiKey: ApiKeyRecord | null;
  }
}

export function isLoopback(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost' || host.startsWith('127.');
}

export interface RunningServer {
  readonly app: FastifyInstance;
  /** The base URL, e.g. http://127.0.0.1:8080 */
  readonly url: string;
  readonly context: ServerContext;
  close(): Promise<void>;
}

export async function startServer(conveyor: Conveyor, options: ServerOptions = {}): Promise<RunningServer> {
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? 8080;
  const keys = new KeyVerifier(conveyor.store, options.keyCacheMs ?? 5000);
  const loopback = isLoopback(host);
  if (!loopback && !options.insecure && !(await keys.anyActiveKey())) {
    throw new ConveyorError(
      'INVALID_ARGUMENT',
      `refusing to listen on ${host} without authentication: no API key exists. Create one first with \`conveyor keys create --name admin --scopes admin\`, or pass --insecure to serve without keys (only behind a trusted network)`,
      { details: { host } },
    );
  }
  const { app, context } = await buildServer(conveyor, { ...options, host }, keys);
  await app.listen({ host, port });
  const address = app.server.address();
  const actualPort = typeof address === 'object' && address !== null ? address.port : port;
  const shownHost = host.includes(':') ? `[${host}]` : host === '0.0.0.0' ? os.hostname() : host;
  return {
    app,
    url: `http://${shownHost}:${actualPort}`,
    context,
    close: async () => {
      await app.close();
    },
  };
}

/** Builds the fastify app without listening (tests may use `app.inject`). */
export async function buildServer(conveyor: Conveyor, options: ServerOptions = {}, verifier?: KeyVerifier): Promise<{ app: FastifyInstance; context: ServerContext }> {
  const host = options.host ?? '127.0.0.1';
  const loopback = isLoopback(host);
  // startServer's verifier, which already read the keys to decide whether it may bind.
  const keys = verifier ?? new KeyVerifier(conveyor.store, options.keyCacheMs ?? 5000);
  const leases = new LeaseService(conveyor.store, { maxPayloadBytes: conveyor.maxPayloadBytes, retention: conveyor.retentionHook });
  const feed = new EventFeed(conveyor.store);
  const metrics = new ServerMetrics(conveyor.store);
  const maintenance = options.maintenance === false ? null : new Maintenance(conveyor.store, options.maintenance ?? {});
  const context: ServerContext = {
    conveyor,
    leases,
    feed,
    keys,
    maintenance,
    metrics,
    startedAt: Date.now(),
    streams: new Set(),
    authRequired: async () => (!loopback && !options.insecure) || (await keys.anyActiveKey()),
  };

  const app = Fastify({
    logger: options.logger === undefined ? { level: 'info' } : options.logger,
    bodyLimit: options.bodyLimit ?? 16 * 1024 * 1024,
    trustProxy: options.trustProxy ?? false,
    onProtoPoisoning: 'error',
    onConstructorPoisoning: 'error',
    return503OnClosing: true,
    // On close, idle keep-alive connections are cut but requests in flight finish, so a
    // producer whose POST was accepted gets its answer. Long-lived ones are ended first
    // (preClose below): event streams are closed, long polls answer empty at once.
    forceCloseConnections: 'idle',
    // Per-request lines would be most of the log at thousands of requests a second; errors are logged.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    genReqId: (() => {
      let n = 0;
      const prefix = Math.random().toString(36).slice(2, 8);
      return () => `${prefix}-${(++n).toString(36)}`;
    })(),
  });

  // Bodies are validated strictly: a wrong type or an unknown field is a 400, never coerced or
  // silently dropped. Query strings and path parameters arrive as text, so they are coerced.
  const bodyAjv = new Ajv({ removeAdditional: false, useDefaults: false, coerceTypes: false, allErrors: false, strict: false });
  const queryAjv = new Ajv({ removeAdditional: false, useDefaults: true, coerceTypes: true, allErrors: false, strict: false });
  app.setValidatorCompiler(({ schema, httpPart }) => (httpPart === 'body' ? bodyAjv.compile(schema) : queryAjv.compile(schema)));

  app.decorateRequest('apiKey', null);

  // Public routes need no key: say so in the OpenAPI document (the default is bearer auth).
  app.addHook('onRoute', (route) => {
    if (route.config?.scope === 'public' && route.schema) (route.schema as Record<string, unknown>).security = [];
  });

  app.setErrorHandler((err, request, reply) => {
    const { status, body, internal } = toHttpError(err, request.id);
    if (internal) request.log.error({ err, url: request.url }, 'request failed');
    if (status === 429 && !reply.hasHeader('retry-after')) reply.header('retry-after', '1');
    void reply.code(status).send(body);
  });
  app.setNotFoundHandler((request, reply) => {
    void reply.code(404).send({ error: { code: 'NOT_FOUND', message: `no route ${request.method} ${request.url.split('?')[0]}; the API is described at /api/v1/openapi.json` } });
  });

  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: { title: 'conveyor', version: VERSION, description: 'The conveyor job queue over HTTP: producers, remote workers, administration and live events. See docs/http-api.md.' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer', description: 'An API key from `conveyor keys create`: cvk_<id>_<secret>' } } },
      security: [{ bearer: [] }],
    },
  });

  // Authentication and scopes, before the body is even parsed.
  app.addHook('onRequest', async (request: FastifyRequest, reply: FastifyReply) => {
    const scope = request.routeOptions.config.scope;
    if (scope === undefined || scope === 'public') return;
    if (!(await context.authRequired())) return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    if (!match) {
      reply.header('www-authenticate', 'Bearer');
      throw new ConveyorError('UNAUTHORIZED', 'this server needs an API key: send `Authorization: Bearer <key>` (create one with `conveyor keys create`)');
    }
    const record = await keys.verify(match[1]!);
    if (!hasScope(record, scope)) {
      throw new ConveyorError('FORBIDDEN', `API key ${record.id} lacks the '${scope}' scope this operation needs (it has ${record.scopes.join(', ')})`, {
        details: { needs: scope, has: record.scopes },
      });
    }
    request.apiKey = record;
  });

  const perMinute = options.rateLimitPerMinute ?? 60_000;
  if (perMinute > 0) {
    await app.register(rateLimit, {
      global: true,
      hook: 'preHandler',
      max: perMinute,
      timeWindow: 60_000,
      keyGenerator: (request) => (request.apiKey ? `key:${request.apiKey.id}` : `ip:${request.ip}`),
      allowList: (request) => request.routeOptions.config.scope === 'public' || request.routeOptions.config.scope === undefined,
      errorResponseBuilder: (_request, ctx) => {
        const err = new ConveyorError('RATE_LIMITED', `rate limit of ${ctx.max} requests per minute exceeded; retry in ${Math.ceil(ctx.ttl / 1000)} s, or batch jobs into fewer requests`, {
          details: { limit: ctx.max, retryAfterSeconds: Math.ceil(ctx.ttl / 1000) },
        });
        return err;
      },
    });
  }

  app.addHook('onResponse', async (request, reply) => {
    metrics.observeRequest(request.routeOptions.url ?? 'unmatched', request.method, reply.statusCode, reply.elapsedTime / 1000);
  });

  registerHealthRoutes(app, context);
  registerProducerRoutes(app, context);
  registerWorkerRoutes(app, context);
  registerAdminRoutes(app, context);
  registerEventRoutes(app, context);
  registerDashboardApiRoutes(app, context);
  registerDashboardRoutes(app, context);

  app.get('/api/v1/openapi.json', { config: { scope: 'public' }, schema: { hide: true } }, async () => app.swagger());
  app.get('/metrics', { config: { scope: 'read' }, schema: { hide: true } }, async (_request, reply) => {
    const text = await metrics.render();
    return reply.type(metrics.contentType).send(text);
  });

  app.addHook('onReady', async () => {
    await feed.start();
    metrics.attach(feed);
    maintenance?.start();
  });
  app.addHook('preClose', async () => {
    leases.close();
    for (const end of context.streams) end();
  });
  app.addHook('onClose', async () => {
    feed.close();
    leases.close();
    await maintenance?.close();
  });
  await app.ready();
  return { app, context };
}

