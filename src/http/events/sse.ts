import type { ServerResponse } from 'node:http';
import type { FastifyPluginAsync } from 'fastify';
import { requireRole } from '../../accounts/actor.ts';
import type { Core } from '../../core.ts';
import { errorResponses } from '../api/envelope.ts';
import { actorOf } from '../auth.ts';
import { subscribeTenant } from './subscribe.ts';

const KEEPALIVE_MS = 15_000;
const MAX_BUFFERED = 4 * 1024 * 1024;

/**
 * `GET /api/events`: the same events as `/ws`, as Server-Sent Events (`event: <cmd>`, `data:
 * <the message as JSON>`), for clients without WebSocket.
 */
export const sseRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  // Streams never end on their own: on shutdown they are ended so the server can close.
  const open = new Set<ServerResponse>();
  app.addHook('preClose', async () => {
    for (const res of open) res.end();
  });
  app.get('/events', { config: { queryToken: true }, schema: {
        tags: ['Jobs'],
        summary: "The tenant's job events as Server-Sent Events",
        description: 'A `text/event-stream`: `event: <cmd>`, `id: <job id>-<sequence>`, `data: {cmd, code, msg, data}` as on `/ws`. Token: header, cookie or `?token=`.',
        security: [{ bearer: [] }],
        response: errorResponses,
      },
    }, (request, reply) => {
    const actor = actorOf(request);
    requireRole(actor, 'viewer');
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache, no-transform', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    res.write(': connected\n\n');
    open.add(res);
    const stop = subscribeTenant(
      core,
      actor,
      (m) => {
        if (res.writableLength > MAX_BUFFERED) return void res.destroy();
        res.write(`event: ${m.cmd}\nid: ${String(m.data.id)}-${String(m.data.sequence)}\ndata: ${JSON.stringify(m)}\n\n`);
      },
      () => res.end(),
    );
    const keepalive = setInterval(() => res.write(': keepalive\n\n'), KEEPALIVE_MS);
    keepalive.unref();
    res.on('close', () => {
      open.delete(res);
      clearInterval(keepalive);
      stop();
    });
  });
};
