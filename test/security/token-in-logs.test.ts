import WebSocket from 'ws';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, waitForOutput, type RunningServer } from '../helpers/server.ts';
import { asStream, openSse, openWs } from '../helpers/streams.ts';

const kinds = await databaseKinds();

/**
 * WebSocket and EventSource clients cannot set headers, so they send their token as `?token=`. The
 * request URL is in every request's log lines (and in error logs); a token there would be readable by
 * whoever reads the logs. Whatever the route and whatever becomes of the request, the token's value
 * never reaches the server's output.
 */
describe.each(kinds)('tokens given as ?token= stay out of the logs, on %s', (kind) => {
  let server: RunningServer;
  let session: string;
  let key: string;

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_LOG_LEVEL: 'trace' } });
    session = await login(server.url);
    key = (await client(server.url, session).post('/api/keys', { name: 'logged?', role: 'viewer' })).body.key;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('never prints a ?token= value, on streams, refused requests, unknown routes and upgrades', async () => {
    const bogus = 'ys_bogus-token-that-must-not-be-logged-0123456789';
    const ws = asStream(await openWs(server.url, { token: session, via: 'query' }));
    const sse = asStream(await openSse(server.url, { token: key, via: 'query' }));
    ws.close();
    sse.close();
    await ws.ended;
    await sse.ended;
    const q = (t: string) => `token=${encodeURIComponent(t)}`;
    // A WebSocket to a route that has none, and one refused for its token.
    for (const path of [`/api/events?${q(session)}`, `/nowhere?${q(key)}`, `/ws?${q(bogus)}`]) {
      const socket = new WebSocket(`${server.url.replace(/^http/, 'ws')}${path}`);
      await new Promise<void>((resolve) => {
        socket.once('unexpected-response', () => resolve());
        socket.once('error', () => resolve());
        socket.once('close', () => resolve());
      });
      socket.terminate();
    }
    const refused = [
      await call(server.url, 'GET', `/api/events?${q(bogus)}`),
      await call(server.url, 'GET', `/api/events?a=1&${q(bogus)}&b=2`),
      await call(server.url, 'GET', `/api/jobs?${q(session)}`),
      await call(server.url, 'GET', `/no/such/route?${q(key)}`),
      await call(server.url, 'POST', `/api/events?${q(key)}`),
      await call(server.url, 'GET', `/v1/bucket/list?${q(session)}&${q(bogus)}`),
      await call(server.url, 'GET', `/api/events?token[]=${encodeURIComponent(bogus)}`),
      await call(server.url, 'GET', `/api/events?TOKEN=${encodeURIComponent(bogus)}`),
    ];
    expect(refused.map((r) => r.status)).toEqual([401, 401, 401, 404, 405, 401, 401, 401]);
    // Log lines are written in order: once the last request's completion is out, all are.
    const lastId = refused[refused.length - 1]!.headers.get('x-request-id')!;
    await waitForOutput(server, new RegExp(`"reqId":"${lastId}"[^\\n]*"msg":"request completed"`));
    const output = server.output();
    expect(output).toContain('token=');
    for (const [name, token] of Object.entries({ session, key, bogus })) {
      expect(output.includes(token), `${name} token in the output`).toBe(false);
      expect(output.includes(encodeURIComponent(token)), `${name} token, URL-encoded, in the output`).toBe(false);
    }
  });
});
