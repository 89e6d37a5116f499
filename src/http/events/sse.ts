import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import type { Core } from '../../jobs/core.ts';
import { errorResponses } from '../api/envelope.ts';
import { admitStream, LAPSE_CLOSE_CODE } from './streams.ts';
import { subscribeTenant } from './subscribe.ts';

const KEEPALIVE_MS = 15_000;
const MAX_BUFFERED = 4 * 1024 * 1024;

/**
 * `GET /api/events`: the same events as `/ws`, as Server-Sent Events (`event: <cmd>`, `data:
 * <the message as JSON>`), for clients without WebSocket. When the credential lapses the response
 * ends after a comment line saying why (`: end <code>: <reason>`, codes as on `/ws`).
 */
export const sseRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  // Streams never end on their own: on shutdown they are ended so the server can close.
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });
  app.get(
    '/events',
    {
      config: { queryToken: true },
      schema: {
        tags: ['Jobs'],
        summary: "The tenant's job events as Server-Sent Events",
        description:
          'A `text/event-stream`: `event: <cmd>`, `id: <job id>-<sequence>`, `data: {cmd, code, msg, data}` as on `/ws`. Token: header, cookie (not from another `Origin`) or `?token=`. Ends when the credential is revoked or loses read access; 429 past `YUNJI_MAX_STREAMS_PER_USER` open streams.',
        security: [{ bearer: [] }],
        response: errorResponses,
      },
    },
    (request, reply) => {
      const slot = admitStream(core, request, false);
      const res = reply.raw;
      res.on('close', () => slot.release());
      reply.hijack();
      res.writeHead(200, {
        'content-type': 'text/event-stream; charset=utf-8',
        'cache-control': 'no-cache, no-transform',
        connection: 'keep-alive',
        'x-accel-buffering': 'no',
      });
      res.write(': connected\n\n');
      open.add(res);
      slot.watch((lapse) => res.end(`: end ${LAPSE_CLOSE_CODE[lapse.reason]}: ${lapse.message}\n\n`));
      const stop = subscribeTenant(core, slot.actor.tenantId, (m) => {
        if (res.writableEnded) return;
        if (res.writableLength > MAX_BUFFERED) return void res.destroy();
        res.write(`event: ${m.cmd}\nid: ${String(m.data.id)}-${String(m.data.sequence)}\ndata: ${JSON.stringify(m)}\n\n`);
      });
      const keepalive = setInterval(() => res.writableEnded || res.write(': keepalive\n\n'), KEEPALIVE_MS);
      keepalive.unref();
      res.on('close', () => {
        open.delete(res);
        clearInterval(keepalive);
        stop();
      });
    },
  );
};
