import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { asStream, isRefusal, openSse, openWs, type EventStream, type Refusal } from '../helpers/streams.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();
const LIMIT = 3;

/**
 * Each open event stream holds a connection, a subscription and its buffers for as long as the
 * client likes. One user must not hold an unbounded number of them: past YUNJI_MAX_STREAMS_PER_USER
 * (counted over `/ws` and `/api/events`, whatever credential of the user opened them) a new stream
 * is refused with 429 before it starts.
 */
describe.each(kinds)('open event streams are capped per user, on %s', (kind) => {
  let server: RunningServer;
  let session: string;
  let key: string;
  let otherUser: string;

  const expectTooMany = (s: EventStream | Refusal) => {
    expect(isRefusal(s) && [s.status, s.body?.code]).toEqual([429, 'rate_limited']);
    expect(isRefusal(s) && s.body.message).toMatch(/YUNJI_MAX_STREAMS_PER_USER|at most 3/);
  };

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_MAX_STREAMS_PER_USER: String(LIMIT) } });
    session = await login(server.url);
    const admin = client(server.url, session);
    key = (await admin.post('/api/keys', { name: 'same user', role: 'viewer' })).body.key;
    const invite = await admin.post('/api/users/invitations', { email: 'other@example.com', role: 'viewer' });
    otherUser = (
      await call(server.url, 'POST', '/api/auth/invitations/accept', {
        body: { token: invite.body.invitation_token, password: 'other-password-1' },
      })
    ).body.token;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('refuses the stream past the limit with 429, over both transports and all of a user’s credentials, and frees a slot on close', async () => {
    const open = [
      asStream(await openWs(server.url, { token: session })),
      asStream(await openSse(server.url, { token: key, via: 'query' })),
      asStream(await openWs(server.url, { token: key, via: 'query' })),
    ];
    expectTooMany(await openWs(server.url, { token: session }));
    expectTooMany(await openSse(server.url, { token: key }));
    expectTooMany(await openWs(server.url, { token: session, via: 'query' }));

    // Another user has slots of their own.
    const theirs = asStream(await openSse(server.url, { token: otherUser }));
    theirs.close();

    // Closing one frees its slot (once the server has seen the close), for either transport.
    open.shift()!.close();
    const reopened = await eventually(async () => {
      const s = await openSse(server.url, { token: session });
      return isRefusal(s) ? undefined : s;
    }, 'a freed slot');
    expectTooMany(await openWs(server.url, { token: session }));
    reopened.close();
    open.shift()!.close();
    const ws = await eventually(async () => {
      const s = await openWs(server.url, { token: key });
      return isRefusal(s) ? undefined : s;
    }, 'a freed slot');
    ws.close();
    for (const s of open) s.close();
  });

  it('frees the slot of a stream refused after its slot was taken', async () => {
    // Streams that fail (bad token, foreign origin with the cookie) never hold a slot.
    for (let i = 0; i < LIMIT + 2; i++) {
      const bad = await openWs(server.url, { token: session, via: 'cookie', origin: 'http://evil.example' });
      expect(isRefusal(bad) && bad.status).toBe(403);
    }
    const streams = await eventually(async () => {
      const got: EventStream[] = [];
      for (let i = 0; i < LIMIT; i++) {
        const s = await openWs(server.url, { token: session });
        if (isRefusal(s)) {
          for (const g of got) g.close();
          return undefined;
        }
        got.push(s);
      }
      return got;
    }, `${LIMIT} streams at once`);
    expectTooMany(await openWs(server.url, { token: session }));
    for (const s of streams) s.close();
  });
});
