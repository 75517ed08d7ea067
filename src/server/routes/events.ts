/**
 * Live events as Server-Sent Events: `GET /api/v1/events?queues=a,b`.
 *
 * Each SSE message is one stored event: `id` is its seq, `event` its type, `data` the JSON
 * `{ queue, at, jobs, count? }`. A client that reconnects with `Last-Event-ID` (browsers
 * do it by themselves) first gets the events it missed, read back from the store's log,
 * then the live ones, with no gap and no repeat: within the log's retention (one hour by
 * default). The client listens live before it reads its history, so nothing can slip
 * between the two.
 */
import type { FastifyInstance } from 'fastify';
import { ConveyorError } from '../../errors.ts';
import type { StoredEvent } from '../../store/contract.ts';
import type { ServerContext } from '../server.ts';

const HEARTBEAT_MS = 15_000;
const HISTORY_PAGE = 1000;

/** Progress is stored as JSON text; over the wire it is a JSON value, as everywhere in the API. */
function wireItems(e: StoredEvent): unknown {
  if (e.type !== 'progress') return e.jobs;
  return e.jobs.map((j) => (j.progress === undefined ? j : { ...j, progress: JSON.parse(j.progress) as unknown }));
}

function frame(e: StoredEvent): string {
  const data = { seq: e.seq, queue: e.queue, type: e.type, at: e.at, jobs: wireItems(e), ...(e.count === undefined ? {} : { count: e.count }) };
  return `id: ${e.seq}\nevent: ${e.type}\ndata: ${JSON.stringify(data)}\n\n`;
}

function parseLastId(value: unknown): number | null {
  if (value === undefined || value === null || value === '') return null;
  const text = String(value);
  if (!/^\d{1,16}$/.test(text)) throw new ConveyorError('INVALID_ARGUMENT', `Last-Event-ID must be an event id from this stream (digits), got ${JSON.stringify(text)}`);
  return Number(text);
}

export function registerEventRoutes(app: FastifyInstance, ctx: ServerContext): void {
  app.get<{ Querystring: { queues?: string; lastEventId?: string } }>(
    '/api/v1/events',
    {
      config: { scope: 'read' },
      schema: {
        tags: ['events'],
        summary: 'Server-Sent Events: job and queue events, resumable with Last-Event-ID',
        description:
          'Event types: added, active, progress, completed, failed, stalled, released, retried, cancelled, promoted, removed, paused, resumed. `queues` filters by queue (comma-separated). Resume with the `Last-Event-ID` header or the `lastEventId` query parameter.',
        querystring: {
          type: 'object',
          properties: { queues: { type: 'string', maxLength: 10_000 }, lastEventId: { type: 'string', maxLength: 20 } },
          additionalProperties: false,
        },
      },
    },
    async (request, reply) => {
      const filter = request.query.queues ? new Set(request.query.queues.split(',').map((q) => q.trim()).filter((q) => q !== '')) : null;
      const lastId = parseLastId(request.headers['last-event-id'] ?? request.query.lastEventId);
      const wanted = (e: StoredEvent) => filter === null || filter.has(e.queue);

      reply.hijack();
      const res = reply.raw;
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(`retry: 2000\n: connected\n\n`);

      let sent = lastId ?? ctx.feed.mark;
      let catchingUp = lastId !== null;
      const pending: StoredEvent[] = [];
      const send = (events: readonly StoredEvent[]) => {
        let out = '';
        for (const e of events) {
          if (e.seq <= sent) continue;
          sent = e.seq;
          if (wanted(e)) out += frame(e);
        }
        if (out !== '') res.write(out);
      };
      const unsubscribe = ctx.feed.subscribe((events) => {
        if (catchingUp) pending.push(...events);
        else send(events);
      });
      const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), HEARTBEAT_MS);
      heartbeat.unref();
      const end = () => res.end();
      const stop = () => {
        clearInterval(heartbeat);
        unsubscribe();
        ctx.streams.delete(end);
      };
      ctx.streams.add(end);
      res.on('close', stop);

      if (lastId !== null) {
        try {
          // Told, not silently skipped: events the log no longer holds (older than its
          // retention), or an id this store never issued (another database, or a reset).
          const first = (await ctx.conveyor.store.readEvents({ after: 0, limit: 1 }))[0];
          const pruned = first !== undefined && lastId + 1 < first.seq;
          const unknown = lastId > ctx.feed.mark && lastId > (await ctx.conveyor.store.lastEventSeq());
          if (pruned || unknown) {
            sent = unknown ? ctx.feed.mark : first!.seq - 1;
            // With an id, so a client that reconnects right away resumes from here, not from the lost id again.
            res.write(`id: ${sent}\nevent: reset\ndata: ${JSON.stringify({ reason: pruned ? 'pruned' : 'unknown_id', message: 'events since your Last-Event-ID are no longer available; reload the state, then follow the live events' })}\n\n`);
          }
          for (;;) {
            const page = await ctx.feed.history(sent, HISTORY_PAGE);
            send(page);
            if (page.length < HISTORY_PAGE) break;
          }
        } catch (err) {
          request.log.warn({ err }, 'event history read failed');
          res.write(`event: error\ndata: ${JSON.stringify({ message: 'could not read missed events; reload the state and reconnect' })}\n\n`);
        }
        catchingUp = false;
        send(pending.splice(0));
      }
    },
  );
}
