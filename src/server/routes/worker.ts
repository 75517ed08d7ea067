/**
 * Remote workers: claim (long-polling), then complete, fail, renew or release by lease
 * token, in batches or one job at a time; report progress and logs; report themselves to
 * the worker registry. Every write is checked against the lease token: a stale token is
 * a 409 `LEASE_LOST` for single-job calls and `{ status: 'stale' }` per item in batches.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConveyorError } from '../../errors.ts';
import { expectLease, MAX_CLAIM_LIMIT, MAX_CLAIM_WAIT_MS, MAX_WORK_WAIT_MS, type RemoteComplete, type RemoteFail } from '../../engine/lease-service.ts';
import { checkQueueName, serializeJson } from '../../options.ts';
import type { ServerContext } from '../server.ts';
import { claimedView, errorSchema, jobParams, leaseRefSchema, MAX_EPOCH_MS, outcomes, PRINTABLE } from '../views.ts';

const DEFAULT_LEASE_MS = 30_000;
const MAX_ITEMS = 1000;

const completeItem = {
  type: 'object',
  properties: { ...leaseRefSchema.properties, result: { description: 'Any JSON value' }, remove: { type: 'boolean' } },
  required: ['id', 'token'],
  additionalProperties: false,
} as const;

const failItem = {
  type: 'object',
  properties: {
    ...leaseRefSchema.properties,
    error: errorSchema,
    retry: { type: 'boolean', description: 'false: fail for good now. Default true: the job\'s attempts and backoff decide.' },
    retryDelayMs: { type: 'integer', minimum: 0, description: 'When retrying, wait this long instead of the job\'s backoff.' },
  },
  required: ['id', 'token', 'error'],
  additionalProperties: false,
} as const;

function items<T>(schema: T) {
  return {
    type: 'object',
    properties: { items: { type: 'array', items: schema, minItems: 1, maxItems: MAX_ITEMS } },
    required: ['items'],
    additionalProperties: false,
  } as const;
}

const queuesSchema = { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, minItems: 1, maxItems: 100 } as const;

/** Runs a long poll with a signal that aborts when the client's connection closes. */
async function whileConnected<T>(request: FastifyRequest, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
  const aborter = new AbortController();
  const onClose = () => aborter.abort();
  request.raw.socket?.once('close', onClose);
  try {
    return await run(aborter.signal);
  } finally {
    request.raw.socket?.off('close', onClose);
  }
}

export function registerWorkerRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { leases } = ctx;

  /**
   * Single-job calls name the queue in their path: the job must be in it (404 otherwise, also
   * for a job removed since), so a wrong URL never touches another queue's job. A job that
   * exists but whose lease the caller no longer holds is a 409 LEASE_LOST.
   */
  const jobInQueue = async (request: FastifyRequest): Promise<void> => {
    const { queue, id } = request.params as { queue: string; id: string };
    checkQueueName(queue);
    const token = (request.body as { token?: unknown } | undefined)?.token;
    if (!(await leases.inQueue(queue, id, typeof token === 'string' ? token : undefined))) throw new ConveyorError('JOB_NOT_FOUND', `no job ${id} in queue ${queue}`, { details: { queue, id } });
  };

  app.post<{ Body: { queues: string[]; limit?: number; leaseMs?: number; waitMs?: number; workerId?: string } }>(
    '/api/v1/claim',
    {
      config: { scope: 'consume' },
      schema: {
        tags: ['workers'],
        summary: 'Claim up to `limit` jobs, waiting up to `waitMs` for one',
        description: 'Each job comes with its lease: send `lease.token` with every write for it, and renew before `lease.expiresAt`.',
        body: {
          type: 'object',
          properties: {
            queues: queuesSchema,
            limit: { type: 'integer', minimum: 1, maximum: MAX_CLAIM_LIMIT },
            leaseMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 },
            waitMs: { type: 'integer', minimum: 0, maximum: MAX_CLAIM_WAIT_MS },
            workerId: { type: 'string', minLength: 1, maxLength: 200, pattern: PRINTABLE },
          },
          required: ['queues'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const b = request.body;
      return whileConnected(request, async (signal) => {
        const { jobs, nextRunAt } = await leases.claimBatch({
          queues: b.queues,
          limit: b.limit ?? 1,
          leaseMs: b.leaseMs ?? DEFAULT_LEASE_MS,
          waitMs: b.waitMs ?? 0,
          workerId: b.workerId ?? `remote:${request.apiKey?.id ?? request.ip}`,
          signal,
        });
        if (signal.aborted && jobs.length > 0) {
          // The client left while we waited: give the jobs back at once rather than after the lease.
          await leases.release(jobs.map((j) => ({ id: j.id, token: j.lease.token })));
          return { jobs: [], nextRunAt: null };
        }
        // nextRunAt: with fewer jobs than `limit`, when the next delayed job of these queues is due.
        return { jobs: jobs.map(claimedView), nextRunAt };
      });
    },
  );

  // Wake-ups without polling: answers as soon as a store signal says one of the queues may
  // have claimable jobs, touching no store (see LeaseService.waitForWork). A remote worker
  // keeps one of these open while idle and claims (waitMs 0) when it answers `ready`.
  app.post<{ Body: { queues: string[]; waitMs?: number; cursor?: string } }>(
    '/api/v1/wait',
    {
      config: { scope: 'consume' },
      schema: {
        tags: ['workers'],
        summary: 'Wait until jobs may be claimable in one of the queues',
        description:
          'Answers `{ ready: true, queue, delayMs, cursor }` once a job was added to (or came back to) one of the queues, one was resumed, or another process wrote (`queue: null`); `delayMs` > 0 means the earliest such job is due later. Else `{ ready: false, cursor }` after `waitMs`. Send the previous answer\'s `cursor` with the next wait so nothing signalled in between is missed; without one the answer is immediate. Then claim with `waitMs: 0`.',
        body: {
          type: 'object',
          properties: {
            queues: queuesSchema,
            waitMs: { type: 'integer', minimum: 0, maximum: MAX_WORK_WAIT_MS },
            cursor: { type: 'string', minLength: 1, maxLength: 100 },
          },
          required: ['queues'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const b = request.body;
      return whileConnected(request, (signal) => leases.waitForWork({ queues: b.queues, waitMs: b.waitMs ?? 30_000, signal, ...(b.cursor === undefined ? {} : { cursor: b.cursor }) }));
    },
  );

  app.post<{ Body: { items: RemoteComplete[] } }>(
    '/api/v1/leases/complete',
    { config: { scope: 'consume' }, schema: { tags: ['workers'], summary: 'Complete claimed jobs', body: items(completeItem) } },
    async (request) => ({ results: outcomes(await leases.complete(request.body.items), request.body.items.map((i) => i.id)) }),
  );

  app.post<{ Body: { items: RemoteFail[] } }>(
    '/api/v1/leases/fail',
    { config: { scope: 'consume' }, schema: { tags: ['workers'], summary: 'Fail claimed jobs (retry or fail for good)', body: items(failItem) } },
    async (request) => ({ results: outcomes(await leases.fail(request.body.items), request.body.items.map((i) => i.id)) }),
  );

  app.post<{ Body: { items: { id: string; token: string }[]; leaseMs?: number } }>(
    '/api/v1/leases/extend',
    {
      config: { scope: 'consume' },
      schema: {
        tags: ['workers'],
        summary: 'Renew leases (heartbeat)',
        body: {
          type: 'object',
          properties: { items: items(leaseRefSchema).properties.items, leaseMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 } },
          required: ['items'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const refs = request.body.items.map((i) => ({ id: i.id, token: i.token }));
      return { results: outcomes(await leases.extend(refs, request.body.leaseMs ?? DEFAULT_LEASE_MS), refs.map((i) => i.id)) };
    },
  );

  app.post<{ Body: { items: { id: string; token: string }[] } }>(
    '/api/v1/leases/release',
    { config: { scope: 'consume' }, schema: { tags: ['workers'], summary: 'Give back claimed jobs that were never started', body: items(leaseRefSchema) } },
    async (request) => {
      const refs = request.body.items.map((i) => ({ id: i.id, token: i.token }));
      return { results: outcomes(await leases.release(refs), refs.map((i) => i.id)) };
    },
  );

  // ---- one job at a time: the same operations, with a 409 for a stale token

  app.post<{ Params: { queue: string; id: string }; Body: { token: string; result?: unknown } }>(
    '/api/v1/queues/:queue/jobs/:id/complete',
    {
      config: { scope: 'consume' },
      preHandler: jobInQueue,
      schema: {
        tags: ['workers'],
        summary: 'Complete one claimed job',
        params: jobParams,
        body: { type: 'object', properties: { token: { type: 'string', minLength: 1 }, result: {} }, required: ['token'], additionalProperties: false },
      },
    },
    async (request) => {
      const { queue, id } = request.params;
      const [outcome] = await leases.complete([{ id, queue, token: request.body.token, ...(request.body.result === undefined ? {} : { result: request.body.result }) }]);
      expectLease(outcome!, id);
      return { id, state: 'completed' };
    },
  );

  app.post<{ Params: { queue: string; id: string }; Body: { token: string; error: RemoteFail['error']; retry?: boolean; retryDelayMs?: number } }>(
    '/api/v1/queues/:queue/jobs/:id/fail',
    {
      config: { scope: 'consume' },
      preHandler: jobInQueue,
      schema: {
        tags: ['workers'],
        summary: 'Fail one claimed job',
        params: jobParams,
        body: {
          type: 'object',
          properties: { token: { type: 'string', minLength: 1 }, error: errorSchema, retry: failItem.properties.retry, retryDelayMs: failItem.properties.retryDelayMs },
          required: ['token', 'error'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { queue, id } = request.params;
      const b = request.body;
      const [outcome] = await leases.fail([{ id, queue, token: b.token, error: b.error, ...(b.retry === undefined ? {} : { retry: b.retry }), ...(b.retryDelayMs === undefined ? {} : { retryDelayMs: b.retryDelayMs }) }]);
      expectLease(outcome!, id);
      return { id, state: outcome!.status === 'applied' ? outcome!.state : undefined };
    },
  );

  app.post<{ Params: { queue: string; id: string }; Body: { token: string; leaseMs?: number } }>(
    '/api/v1/queues/:queue/jobs/:id/heartbeat',
    {
      config: { scope: 'consume' },
      preHandler: jobInQueue,
      schema: {
        tags: ['workers'],
        summary: 'Renew one lease',
        params: jobParams,
        body: { type: 'object', properties: { token: { type: 'string', minLength: 1 }, leaseMs: { type: 'integer', minimum: 1000, maximum: 86_400_000 } }, required: ['token'], additionalProperties: false },
      },
    },
    async (request) => {
      const { id } = request.params;
      const [outcome] = await leases.extend([{ id, token: request.body.token }], request.body.leaseMs ?? DEFAULT_LEASE_MS);
      expectLease(outcome!, id);
      return { id, expiresAt: outcome!.status === 'applied' ? outcome!.expiresAt : null };
    },
  );

  app.post<{ Params: { queue: string; id: string }; Body: { token: string; progress: unknown } }>(
    '/api/v1/queues/:queue/jobs/:id/progress',
    {
      config: { scope: 'consume' },
      preHandler: jobInQueue,
      schema: {
        tags: ['workers'],
        summary: 'Report progress of a claimed job',
        params: jobParams,
        body: { type: 'object', properties: { token: { type: 'string', minLength: 1 }, progress: {} }, required: ['token', 'progress'], additionalProperties: false },
      },
    },
    async (request) => {
      const { queue, id } = request.params;
      checkQueueName(queue);
      const progress = serializeJson(request.body.progress, ctx.conveyor.maxPayloadBytes, 'progress');
      const outcome = await ctx.conveyor.store.updateProgress({ queue, id, token: request.body.token, progress });
      expectLease(outcome, id);
      return { id };
    },
  );

  app.post<{ Params: { queue: string; id: string }; Body: { token: string; messages: string[] } }>(
    '/api/v1/queues/:queue/jobs/:id/logs',
    {
      config: { scope: 'consume' },
      preHandler: jobInQueue,
      schema: {
        tags: ['workers'],
        summary: 'Append log lines to a claimed job',
        params: jobParams,
        body: {
          type: 'object',
          properties: { token: { type: 'string', minLength: 1 }, messages: { type: 'array', items: { type: 'string', maxLength: 100_000 }, minItems: 1, maxItems: 1000 } },
          required: ['token', 'messages'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { queue, id } = request.params;
      checkQueueName(queue);
      const at = Date.now();
      const outcome = await ctx.conveyor.store.addLogs({ queue, id, token: request.body.token, entries: request.body.messages.map((message) => ({ at, message })) });
      expectLease(outcome, id);
      return { id, added: request.body.messages.length };
    },
  );

  // ---- the worker registry

  app.post<{ Body: { id: string; host: string; pid: number; queues: string[]; concurrency: number; active: number; startedAt?: number; lastClaimAt?: number | null } }>(
    '/api/v1/workers/report',
    {
      config: { scope: 'consume' },
      schema: {
        tags: ['workers'],
        summary: 'Report a remote worker alive (every ~15 s)',
        body: {
          type: 'object',
          properties: {
            id: { type: 'string', minLength: 1, maxLength: 200, pattern: PRINTABLE },
            host: { type: 'string', minLength: 1, maxLength: 255, pattern: PRINTABLE },
            pid: { type: 'integer', minimum: 0, maximum: 2_147_483_647 },
            queues: queuesSchema,
            concurrency: { type: 'integer', minimum: 1, maximum: 1_000_000 },
            active: { type: 'integer', minimum: 0, maximum: 1_000_000 },
            startedAt: { type: 'integer', minimum: 0, maximum: MAX_EPOCH_MS },
            lastClaimAt: { type: ['integer', 'null'], minimum: 0, maximum: MAX_EPOCH_MS },
          },
          required: ['id', 'host', 'pid', 'queues', 'concurrency', 'active'],
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const b = request.body;
      for (const q of b.queues) checkQueueName(q);
      const now = Date.now();
      await ctx.conveyor.store.reportWorker({
        id: b.id,
        kind: 'remote',
        host: b.host,
        pid: b.pid,
        queues: b.queues,
        concurrency: b.concurrency,
        active: b.active,
        startedAt: b.startedAt ?? now,
        lastSeenAt: now,
        lastClaimAt: b.lastClaimAt ?? null,
        ...(request.apiKey ? { meta: { keyId: request.apiKey.id } } : {}),
      });
      return { id: b.id, lastSeenAt: now };
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/workers/:id',
    { config: { scope: 'consume' }, schema: { tags: ['workers'], summary: 'A closing remote worker removes itself', params: { type: 'object', properties: { id: { type: 'string', minLength: 1, pattern: PRINTABLE } }, required: ['id'] } } },
    async (request, reply) => {
      // A consume key may remove only the workers it reported (admin keys any).
      const key = request.apiKey;
      if (key && !key.scopes.includes('admin')) {
        const row = (await ctx.conveyor.store.listWorkers({ since: 0 })).find((w) => w.id === request.params.id);
        if (row && row.meta?.keyId !== key.id) throw new ConveyorError('FORBIDDEN', `worker ${request.params.id} was reported with another API key`, { details: { needs: 'admin' } });
      }
      await ctx.conveyor.store.removeWorker({ id: request.params.id });
      return reply.code(204).send();
    },
  );
}
