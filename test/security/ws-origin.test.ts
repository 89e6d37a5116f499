import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { login, startServer, type RunningServer } from '../helpers/server.ts';
import { isRefusal, openSse, openWs, type EventStream, type Refusal, type StreamOptions } from '../helpers/streams.ts';

const kinds = await databaseKinds();

/**
 * Cross-site WebSocket hijacking: a page on another site can open `ws://yunji/ws` from a victim's
 * browser, which sends the session cookie along (WebSockets are not bound by CORS). So a `/ws`
 * authenticated by the cookie must come from Yunji's own origin; a token given explicitly (header,
 * `?token=`) proves the client holds it and needs no Origin. `/api/events` refuses a cookie with a
 * foreign Origin too.
 */
describe.each(kinds)('/ws and /api/events refuse a cookie sent from another origin, on %s', (kind) => {
  let server: RunningServer;
  let proxied: RunningServer;
  let token: string;

  /** The status a stream open got: 101 (WebSocket) or 200 (SSE) when it opened. */
  const outcome = async (opening: Promise<EventStream | Refusal>, opened: number) => {
    const s = await opening;
    if (isRefusal(s)) return { status: s.status, code: s.body?.code as string };
    s.close();
    return { status: opened, code: 'opened' };
  };
  const ws = (base: string, o: StreamOptions) => outcome(openWs(base, o), 101);
  const sse = (base: string, o: StreamOptions) => outcome(openSse(base, o), 200);
  const refused = { status: 403, code: 'forbidden' };

  beforeAll(async () => {
    server = await startServer(kind);
    token = await login(server.url);
  });
  afterAll(async () => {
    await server?.dispose();
    await proxied?.dispose();
  });

  it('refuses a cookie-authenticated /ws from a foreign Origin, or without one, before upgrading', async () => {
    expect(await ws(server.url, { token, via: 'cookie', origin: 'http://evil.example' })).toEqual(refused);
    expect(await ws(server.url, { token, via: 'cookie', origin: server.url.replace('127.0.0.1', 'localhost') })).toEqual(refused);
    expect(await ws(server.url, { token, via: 'cookie', origin: server.url.replace(/:\d+$/, ':1') })).toEqual(refused);
    expect(await ws(server.url, { token, via: 'cookie', origin: server.url.replace('http:', 'https:') })).toEqual(refused);
    expect(await ws(server.url, { token, via: 'cookie' })).toEqual(refused);
    for (const hostile of ['null', 'not a url', `${server.url}/path`, `${server.url}@evil.example`, 'x'.repeat(8000), '']) {
      expect(await ws(server.url, { token, via: 'cookie', origin: hostile }), hostile.slice(0, 40)).toEqual(refused);
    }
  });

  it('accepts a cookie-authenticated /ws from its own origin', async () => {
    expect(await ws(server.url, { token, via: 'cookie', origin: server.url })).toEqual({ status: 101, code: 'opened' });
  });

  it('accepts a token given as a header or as ?token=, with or without an Origin', async () => {
    expect(await ws(server.url, { token, via: 'header' })).toEqual({ status: 101, code: 'opened' });
    expect(await ws(server.url, { token, via: 'header', origin: 'http://evil.example' })).toEqual({ status: 101, code: 'opened' });
    expect(await ws(server.url, { token, via: 'query' })).toEqual({ status: 101, code: 'opened' });
    expect(await ws(server.url, { token, via: 'query', origin: 'http://evil.example' })).toEqual({ status: 101, code: 'opened' });
  });

  it('refuses a cookie-authenticated /api/events from a foreign Origin, and accepts it without one or from its own', async () => {
    expect(await sse(server.url, { token, via: 'cookie', origin: 'http://evil.example' })).toEqual(refused);
    expect(await sse(server.url, { token, via: 'cookie', origin: 'null' })).toEqual(refused);
    expect(await sse(server.url, { token, via: 'cookie' })).toEqual({ status: 200, code: 'opened' });
    expect(await sse(server.url, { token, via: 'cookie', origin: server.url })).toEqual({ status: 200, code: 'opened' });
    expect(await sse(server.url, { token, via: 'header', origin: 'http://evil.example' })).toEqual({ status: 200, code: 'opened' });
  });

  it('behind a trusted proxy, compares with the origin the proxy forwarded', async () => {
    proxied = await startServer(kind, { env: { YUNJI_TRUST_PROXY: '1' } });
    const t = await login(proxied.url);
    const forwarded = { 'x-forwarded-proto': 'https', 'x-forwarded-host': 'yunji.example' };
    expect(await ws(proxied.url, { token: t, via: 'cookie', origin: 'https://yunji.example', headers: forwarded })).toEqual({
      status: 101,
      code: 'opened',
    });
    expect(await ws(proxied.url, { token: t, via: 'cookie', origin: proxied.url, headers: forwarded })).toEqual(refused);
    expect(await ws(proxied.url, { token: t, via: 'cookie', origin: 'https://evil.example', headers: forwarded })).toEqual(refused);
    // Without a trusted proxy, forwarded headers are anyone's to send: the request's own Host counts.
    expect(await ws(server.url, { token, via: 'cookie', origin: 'https://yunji.example', headers: forwarded })).toEqual(refused);
    expect(await ws(server.url, { token, via: 'cookie', origin: server.url, headers: forwarded })).toEqual({ status: 101, code: 'opened' });
  });
});
