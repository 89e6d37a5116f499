import Fastify from 'fastify';

/**
 * The peer for the session benchmark: Fastify with one route that returns a fixed JSON body (the
 * body Yunji returned for the same request), serialized by Fastify's default JSON serializer.
 */
const port = Number(process.env.PORT);
const body = JSON.parse(process.env.BODY ?? '{}') as unknown;
const app = Fastify({ logger: false });
app.get('/healthz', async () => ({ status: 'ok' }));
app.get('/api/auth/session', async () => body);
await app.listen({ host: '127.0.0.1', port });
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
