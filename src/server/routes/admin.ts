/**
 * Administration, all through the library's `Queue` methods: queues with counts, jobs by
 * state with cursor paging, job detail, retry/cancel/promote/remove, pause/resume, bulk
 * retry, clean and drain; the worker registry; API keys. Reads need scope `read`,
 * changes need `admin`.
 *
 * Queue-level reads and bulk changes on a queue that does not exist (no jobs, no pause
 * flag) answer 404, so a typo in a queue name is never a silent no-op. Pausing a queue
 * that has no jobs yet is allowed: it creates the flag, so workers never start on it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ConveyorError } from '../../errors.ts';
import { createApiKey, describeKey } from '../../engine/api-keys.ts';
import type { JobState } from '../../job.ts';
import { JOB_STATES } from '../../job.ts';
import { checkQueueName } from '../../options.ts';
import type { ServerContext } from '../server.ts';
import { jobParams, jobView, PRINTABLE, queueParam, workerView } from '../views.ts';

/** Workers report every 15 s; one silent for 3 reports is shown stale, for 60 s gone. */
const REPORT_EVERY_MS = 15_000;
const LISTED_FOR_MS = 60_000;

async function requireQueue(ctx: ServerContext, name: string): Promise<{ name: string; paused: boolean; counts: Record<JobState, number> }> {
  checkQueueName(name);
  const queues = await ctx.conveyor.store.listQueues();
  const info = queues.find((q) => q.name === name);
  if (!info) {
    throw new ConveyorError('NOT_FOUND', `no queue named '${name}' (a queue exists once it has jobs or was paused)`, { details: { queue: name, known: queues.slice(0, 50).map((q) => q.name) } });
  }
  return info;
}

/** Bulk operations whose fields are all optional may be sent without a body. */
async function emptyBodyIsEmptyObject(request: FastifyRequest): Promise<void> {
  if (request.body === undefined || request.body === null) request.body = {};
}

export function registerAdminRoutes(app: FastifyInstance, ctx: ServerContext): void {
  const { conveyor } = ctx;

  app.get('/api/v1/queues', { config: { scope: 'read' }, schema: { tags: ['admin'], summary: 'Queues with counts by state and the paused flag' } }, async () => ({
    queues: await conveyor.store.listQueues(),
  }));

  app.get<{ Params: { queue: string } }>(
    '/api/v1/queues/:queue',
    { config: { scope: 'read' }, schema: { tags: ['admin'], summary: 'One queue with its counts', params: queueParam } },
    async (request) => requireQueue(ctx, request.params.queue),
  );

  app.get<{ Params: { queue: string }; Querystring: { state?: string; limit?: number; cursor?: string; order?: 'asc' | 'desc'; name?: string; id?: string } }>(
    '/api/v1/queues/:queue/jobs',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['admin'],
        summary: 'Jobs by state, newest first, with cursor paging',
        description: '`state` is one state or a comma-separated list (default all). Pass `nextCursor` back as `cursor` for the next page. `name` filters by exact job name; `id` looks up one job.',
        params: queueParam,
        querystring: {
          type: 'object',
          properties: {
            state: { type: 'string' },
            limit: { type: 'integer', minimum: 1, maximum: 1000, default: 50 },
            cursor: { type: 'string', maxLength: 200 },
            order: { type: 'string', enum: ['asc', 'desc'] },
            name: { type: 'string', minLength: 1, maxLength: 200, pattern: PRINTABLE },
            id: { type: 'string', minLength: 1, maxLength: 400, pattern: PRINTABLE },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const q = request.query;
      await requireQueue(ctx, request.params.queue);
      const states = (q.state ?? JOB_STATES.join(',')).split(',').map((s) => s.trim()) as JobState[];
      for (const s of states) {
        if (!JOB_STATES.includes(s)) throw new ConveyorError('INVALID_ARGUMENT', `unknown state '${s}'; states are ${JOB_STATES.join(', ')}`);
      }
      const queue = conveyor.queue(request.params.queue);
      if (q.id !== undefined) {
        const job = await queue.getJob(q.id);
        const hit = job !== null && states.includes(job.state) && (q.name === undefined || job.name === q.name);
        return { jobs: hit ? [job.toJSON()] : [], nextCursor: null };
      }
      const page = await queue.getJobs(states, {
        limit: q.limit ?? 50,
        ...(q.cursor === undefined ? {} : { cursor: q.cursor }),
        ...(q.order === undefined ? {} : { order: q.order }),
        ...(q.name === undefined ? {} : { name: q.name }),
      });
      return { jobs: page.jobs.map((j) => j.toJSON()), nextCursor: page.nextCursor };
    },
  );

  app.get<{ Params: { queue: string; id: string } }>(
    '/api/v1/queues/:queue/jobs/:id',
    { config: { scope: 'read' }, schema: { tags: ['admin'], summary: 'One job: data, options, attempts with errors, progress, result, lease, and its first 100 log lines', params: jobParams } },
    async (request) => {
      const { queue, id } = request.params;
      checkQueueName(queue);
      const record = await conveyor.store.getJob({ queue, id });
      if (record === null) throw new ConveyorError('JOB_NOT_FOUND', `no job ${id} in queue ${queue}`, { details: { queue, id } });
      const logs = await conveyor.store.getLogs({ queue, id, offset: 0, limit: 100 });
      return { job: jobView(record), logs };
    },
  );

  app.get<{ Params: { queue: string; id: string }; Querystring: { offset?: number; limit?: number } }>(
    '/api/v1/queues/:queue/jobs/:id/logs',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['admin'],
        summary: 'A job\'s log lines, oldest first',
        params: jobParams,
        querystring: {
          type: 'object',
          properties: { offset: { type: 'integer', minimum: 0, maximum: 1_000_000_000, default: 0 }, limit: { type: 'integer', minimum: 1, maximum: 1000, default: 100 } },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      const { queue, id } = request.params;
      checkQueueName(queue);
      if ((await conveyor.store.getJob({ queue, id })) === null) throw new ConveyorError('JOB_NOT_FOUND', `no job ${id} in queue ${queue}`, { details: { queue, id } });
      return conveyor.queue(queue).getJobLogs(id, { offset: request.query.offset ?? 0, limit: request.query.limit ?? 100 });
    },
  );

  const jobAction = (action: 'retry' | 'cancel' | 'promote', run: (queue: string, id: string) => Promise<void>) =>
    app.post<{ Params: { queue: string; id: string } }>(
      `/api/v1/queues/:queue/jobs/:id/${action}`,
      { config: { scope: 'admin' }, schema: { tags: ['admin'], summary: `${action[0]!.toUpperCase()}${action.slice(1)} one job`, params: jobParams } },
      async (request) => {
        const { queue, id } = request.params;
        await run(queue, id);
        const job = await conveyor.queue(queue).getJob(id);
        return { id, state: job?.state ?? null };
      },
    );
  jobAction('retry', (q, id) => conveyor.queue(q).retryJob(id));
  jobAction('cancel', (q, id) => conveyor.queue(q).cancel(id));
  jobAction('promote', (q, id) => conveyor.queue(q).promote(id));

  app.delete<{ Params: { queue: string; id: string } }>(
    '/api/v1/queues/:queue/jobs/:id',
    { config: { scope: 'admin' }, schema: { tags: ['admin'], summary: 'Remove a job that is not active (cancel an active one first)', params: jobParams } },
    async (request, reply) => {
      const { queue, id } = request.params;
      const removed = await conveyor.queue(queue).removeJob(id);
      if (!removed) throw new ConveyorError('JOB_NOT_FOUND', `no job ${id} in queue ${queue}`, { details: { queue, id } });
      return reply.code(204).send();
    },
  );

  app.post<{ Params: { queue: string } }>(
    '/api/v1/queues/:queue/pause',
    { config: { scope: 'admin' }, schema: { tags: ['admin'], summary: 'Pause a queue: workers stop claiming from it; running jobs finish', params: queueParam } },
    async (request) => {
      await conveyor.queue(request.params.queue).pause();
      return { name: request.params.queue, paused: true };
    },
  );

  app.post<{ Params: { queue: string } }>(
    '/api/v1/queues/:queue/resume',
    { config: { scope: 'admin' }, schema: { tags: ['admin'], summary: 'Resume a paused queue', params: queueParam } },
    async (request) => {
      await requireQueue(ctx, request.params.queue);
      await conveyor.queue(request.params.queue).resume();
      return { name: request.params.queue, paused: false };
    },
  );

  app.post<{ Params: { queue: string }; Body: { limit?: number } | undefined }>(
    '/api/v1/queues/:queue/retry-failed',
    {
      config: { scope: 'admin' },
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['admin'],
        summary: 'Retry every failed job (or up to `limit`)',
        params: queueParam,
        body: { type: 'object', properties: { limit: { type: 'integer', minimum: 1 } }, additionalProperties: false },
      },
    },
    async (request) => {
      await requireQueue(ctx, request.params.queue);
      const limit = request.body?.limit;
      const count = await conveyor.queue(request.params.queue).retryFailed(limit === undefined ? {} : { limit });
      return { count };
    },
  );

  app.post<{ Params: { queue: string }; Body: { state?: 'completed' | 'failed' | 'cancelled' | 'waiting' | 'delayed'; olderThanMs?: number; keep?: number; limit?: number } | undefined }>(
    '/api/v1/queues/:queue/clean',
    {
      config: { scope: 'admin' },
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['admin'],
        summary: 'Remove jobs of one state by age, keeping the newest `keep`',
        params: queueParam,
        body: {
          type: 'object',
          properties: {
            state: { type: 'string', enum: ['completed', 'failed', 'cancelled', 'waiting', 'delayed'] },
            olderThanMs: { type: 'integer', minimum: 0 },
            keep: { type: 'integer', minimum: 0 },
            limit: { type: 'integer', minimum: 1 },
          },
          additionalProperties: false,
        },
      },
    },
    async (request) => {
      await requireQueue(ctx, request.params.queue);
      const count = await conveyor.queue(request.params.queue).clean(request.body ?? {});
      return { count };
    },
  );

  app.post<{ Params: { queue: string }; Body: { delayed?: boolean } | undefined }>(
    '/api/v1/queues/:queue/drain',
    {
      config: { scope: 'admin' },
      preValidation: emptyBodyIsEmptyObject,
      schema: {
        tags: ['admin'],
        summary: 'Remove all waiting (and with `delayed: true` delayed) jobs; active jobs are never removed',
        params: queueParam,
        body: { type: 'object', properties: { delayed: { type: 'boolean' } }, additionalProperties: false },
      },
    },
    async (request) => {
      await requireQueue(ctx, request.params.queue);
      const count = await conveyor.queue(request.params.queue).drain({ delayed: request.body?.delayed === true });
      return { count };
    },
  );

  // ---- workers

  app.get('/api/v1/workers', { config: { scope: 'read' }, schema: { tags: ['admin'], summary: 'Live workers, direct and remote; `stale` ones missed three reports' } }, async () => {
    const now = Date.now();
    const workers = await conveyor.store.listWorkers({ since: now - LISTED_FOR_MS });
    return { workers: workers.map((w) => workerView(w, now, REPORT_EVERY_MS)) };
  });

  // ---- API keys

  app.get('/api/v1/keys', { config: { scope: 'admin' }, schema: { tags: ['keys'], summary: 'API keys (never their secrets)' } }, async () => ({
    keys: (await conveyor.store.listApiKeys()).map((k) => describeKey(k)),
  }));

  app.post<{ Body: { name: string; scopes: string[]; expiresAt?: number } }>(
    '/api/v1/keys',
    {
      config: { scope: 'admin' },
      schema: {
        tags: ['keys'],
        summary: 'Create an API key; the answer holds the key itself, shown this once',
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 200, pattern: PRINTABLE },
            scopes: { type: 'array', items: { type: 'string', enum: ['admin', 'produce', 'consume', 'read'] }, minItems: 1 },
            expiresAt: { type: 'integer', minimum: 1 },
          },
          required: ['name', 'scopes'],
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const created = await createApiKey(conveyor.store, request.body);
      ctx.keys.invalidate();
      return reply.code(201).send({ key: created.key, ...describeKey(created.record) });
    },
  );

  app.delete<{ Params: { id: string } }>(
    '/api/v1/keys/:id',
    { config: { scope: 'admin' }, schema: { tags: ['keys'], summary: 'Revoke an API key', params: { type: 'object', properties: { id: { type: 'string', minLength: 1, pattern: PRINTABLE } }, required: ['id'] } } },
    async (request, reply) => {
      const revoked = await conveyor.store.revokeApiKey({ id: request.params.id, now: Date.now() });
      if (!revoked) throw new ConveyorError('NOT_FOUND', `no active API key ${request.params.id}`, { details: { id: request.params.id } });
      ctx.keys.invalidate();
      return reply.code(204).send();
    },
  );
}
