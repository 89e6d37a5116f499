import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { Core } from '../../jobs/core.ts';
import { admitStream, LAPSE_CLOSE_CODE, type StreamSlot } from './streams.ts';
import { subscribeTenant } from './subscribe.ts';

/** A client this far behind is cut off rather than buffered without end. */
const MAX_BUFFERED = 4 * 1024 * 1024;
const PING_MS = 30_000;
/** The WebSocket protocol's limit on a close reason, in bytes. */
const MAX_REASON = 123;

/**
 * `GET /ws`: the tenant's job events as they happen, one JSON message each
 * (`{cmd, code, msg, data}`). The token comes as a header, the session cookie (from this server's
 * own origin only) or `?token=`. Messages from the client are ignored. When the credential lapses
 * the server closes with 4001 (revoked or expired), 4002 (session switched tenant) or 4003
 * (membership disabled or without read access).
 */
export const wsRoutes: FastifyPluginAsync<{ core: Core }> = async (app, { core }) => {
  const slots = new WeakMap<FastifyRequest, StreamSlot>();
  // OpenAPI cannot describe a WebSocket; the README does.
  app.get(
    '/ws',
    {
      websocket: true,
      config: { queryToken: true },
      schema: { hide: true },
      // Refusals (origin, role, too many streams) are answered before the upgrade.
      preHandler: async (request) => {
        // A plain GET (no upgrade) gets the plugin's 404 and holds no slot.
        if (!request.ws) return;
        const slot = admitStream(core, request, true);
        slots.set(request, slot);
        // The connection's end frees the slot, whether the upgrade happens or not.
        request.raw.socket.once('close', () => slot.release());
      },
    },
    (socket, request) => {
      const slot = slots.get(request);
      if (!slot) return socket.terminate();
      slot.watch((lapse) => socket.close(LAPSE_CLOSE_CODE[lapse.reason], Buffer.from(lapse.message).subarray(0, MAX_REASON).toString()));
      const stop = subscribeTenant(core, slot.actor.tenantId, (m) => {
        if (socket.readyState !== socket.OPEN) return;
        if (socket.bufferedAmount > MAX_BUFFERED) {
          socket.close(1013, 'too far behind; reconnect');
          return;
        }
        socket.send(JSON.stringify(m));
      });
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
        slot.release();
      });
      socket.on('error', () => socket.terminate());
    },
  );
};
