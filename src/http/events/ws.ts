import type { FastifyPluginAsync } from 'fastify';
import { requireRole } from '../../accounts/actor.ts';
import type { Core } from '../../core.ts';
import { actorOf } from '../auth.ts';
import { subscribeTenant } from './subscribe.ts';

/** A client this far behind is cut off rather than buffered without end. */
const MAX_BUFFERED = 4 * 1024 * 1024;
const PING_MS = 30_000;

/**
 * `GET /ws`: the tenant's job events as they happen, one JSON message each
 * (`{cmd, code, msg, data}`). The token comes as a header, the session cookie or `?token=`.
 * Messages from the client are ignored.
 */
export const wsRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  // OpenAPI cannot describe a WebSocket; the README does.
  app.get('/ws', { websocket: true, config: { queryToken: true }, schema: { hide: true } }, (socket, request) => {
    const actor = actorOf(request);
    requireRole(actor, 'viewer');
    const stop = subscribeTenant(
      core,
      actor,
      (m) => {
        if (socket.readyState !== socket.OPEN) return;
        if (socket.bufferedAmount > MAX_BUFFERED) {
          socket.close(1013, 'too far behind; reconnect');
          return;
        }
        socket.send(JSON.stringify(m));
      },
      // 1008: policy violation. A close reason is at most 123 bytes: 120 and a cut character's U+FFFD fit.
      (reason) => socket.close(1008, Buffer.from(reason).subarray(0, 120).toString()),
    );
    let alive = true;
    socket.on('pong', () => (alive = true));
    const ping = setInterval(() => {
      if (!alive) return socket.terminate();
      alive = false;
      socket.ping();
    }, PING_MS);
    ping.unref();
    socket.on('message', () => undefined);
    socket.on('close', () => {
      clearInterval(ping);
      stop();
    });
    socket.on('error', () => socket.terminate());
  });
};
