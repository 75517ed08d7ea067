/**
 * Producers: add one job or a batch to a queue, with the library's options and the
 * library's validation (`queue.add` / `queue.addBulk`): single adds from many connections
 * are group-committed by the library's enqueue batcher, a batch is one atomic write.
 * A queue is created by its first job, as in the library.
 */
import type { FastifyInstance } from 'fastify';
import { ValidationError } from '../../errors.ts';
import type { JobOptions } from '../../options.ts';
import { wasDuplicate } from '../../engine/queue.ts';
import type { ServerContext } from '../server.ts';
import { newJobSchema, queueParam } from '../views.ts';

/** Largest batch in one request. */
export const MAX_BATCH = 10_000;

interface NewJobBody {
  readonly name: string;
  readonly data?: unknown;
  readonly opts?: Record<string, unknown>;
}

/** JSON has no dates: `runAt` may be epoch ms or an ISO 8601 string. */
function fromWire(opts: Record<string, unknown> | undefined, where: string): JobOptions | undefined {
  if (opts === undefined) return undefined;
  if (typeof opts.runAt === 'string') {
    const ms = Date.parse(opts.runAt);
    if (Number.isNaN(ms)) throw new ValidationError('INVALID_ARGUMENT', `${where}.runAt ${JSON.stringify(opts.runAt)} is not an ISO 8601 date or epoch milliseconds`);
    return { ...opts, runAt: ms } as JobOptions;
  }
  return opts as JobOptions;
}

const addedSchema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    queue: { type: 'string' },
    name: { type: 'string' },
    state: { type: 'string' },
    duplicate: { type: 'boolean', description: 'true: a live job had this jobId, nothing was added, and this is that job' },
  },
} as const;

export function registerProducerRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.post<{ Params: { queue: string }; Body: NewJobBody }>(
    '/api/v1/queues/:queue/jobs',
    {
      config: { scope: 'produce' },
      schema: {
        tags: ['producers'],
        summary: 'Add one job',
        description: 'With `opts.jobId` naming a live job (waiting, delayed or active), nothing is written and the existing job is returned.',
        params: queueParam,
        body: newJobSchema,
        response: { 201: addedSchema, 200: addedSchema },
      },
    },
    async (request, reply) => {
      const { name, data, opts } = request.body;
      const job = await ctx.conveyor.queue(request.params.queue).add(name, data === undefined ? null : data, fromWire(opts, 'opts'));
      const duplicate = wasDuplicate(job);
      return reply.code(duplicate ? 200 : 201).send({ id: job.id, queue: job.queueName, name: job.name, state: job.state, duplicate });
    },
  );

  app.post<{ Params: { queue: string }; Body: { jobs: NewJobBody[] } }>(
    '/api/v1/queues/:queue/jobs/bulk',
    {
      config: { scope: 'produce' },
      schema: {
        tags: ['producers'],
        summary: `Add up to ${MAX_BATCH} jobs atomically`,
        description: 'All jobs are written, or none. Answers the jobs in request order.',
        params: queueParam,
        body: {
          type: 'object',
          properties: { jobs: { type: 'array', items: newJobSchema, minItems: 1, maxItems: MAX_BATCH } },
          required: ['jobs'],
          additionalProperties: false,
        },
        response: { 201: { type: 'object', properties: { jobs: { type: 'array', items: addedSchema } } }, 200: { type: 'object', properties: { jobs: { type: 'array', items: addedSchema } } } },
      },
    },
    async (request, reply) => {
      const jobs = request.body.jobs.map((j, i) => ({ name: j.name, data: j.data === undefined ? null : j.data, opts: fromWire(j.opts, `jobs[${i}].opts`) }));
      const added = await ctx.conveyor.queue(request.params.queue).addBulk(jobs as Parameters<ReturnType<typeof ctx.conveyor.queue>['addBulk']>[0]);
      const out = added.map((job) => ({ id: job.id, queue: job.queueName, name: job.name, state: job.state, duplicate: wasDuplicate(job) }));
      // 201 when at least one job was added; 200 when every one named a live jobId.
      return reply.code(out.some((j) => !j.duplicate) ? 201 : 200).send({ jobs: out });
    },
  );
}
