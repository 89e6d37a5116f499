import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { asStream, openSse, openWs, sawJob, type EventStream, type StreamOptions } from '../helpers/streams.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();

/**
 * An event stream (`/ws`, `/api/events`) is authenticated once, when it opens. A credential that
 * stops authenticating (logout, deleted key, removed member) or a membership that stops allowing
 * reads (disabled) must end every stream opened with it, so a revoked user does not keep watching
 * the tenant's jobs. Each case: the stream receives events, the credential loses its rights, the
 * server ends the stream (WebSocket: an application close code), and later jobs never reach it.
 */
describe.each(kinds)('event streams end when their credential is revoked, on %s', (kind) => {
  let server: RunningServer;
  let admin: ReturnType<typeof client>;
  /** The admin's own stream, which stays open throughout: it shows when a job's events have all been sent. */
  let control: EventStream;

  /** A `noop` job of the admin; resolves once `streams` have all received its end. */
  const jobSeenBy = async (streams: EventStream[]) => {
    const job = await admin.post('/api/jobs', { action: 'noop' });
    expect(job.status, job.text).toBe(201);
    const id = job.body.id as number;
    await eventually(
      async () => (streams.every((s) => s.messages.some((m) => m.data.id === id && m.cmd === 'jobEnd')) ? true : undefined),
      `job ${id} on every stream`,
    );
    return id;
  };

  /** One stream of each kind per credential, each proven to deliver events. */
  const openAll = async (credentials: string[]) => {
    const streams: { what: string; stream: EventStream; ws: boolean }[] = [];
    for (const token of credentials) {
      const o: StreamOptions = { token, via: streams.length % 4 < 2 ? 'header' : 'query' };
      streams.push({ what: `/ws with ${token.slice(0, 3)} via ${o.via}`, stream: asStream(await openWs(server.url, o)), ws: true });
      streams.push({
        what: `/api/events with ${token.slice(0, 3)} via ${o.via}`,
        stream: asStream(await openSse(server.url, o)),
        ws: false,
      });
    }
    await jobSeenBy([control, ...streams.map((s) => s.stream)]);
    return streams;
  };

  /** Every stream ends (WebSocket with `wsCode`), and a job submitted afterwards reaches none of them. */
  const expectAllEnded = async (streams: { what: string; stream: EventStream; ws: boolean }[], wsCode: number) => {
    for (const { what, stream, ws } of streams) {
      const end = await stream.ended;
      if (ws) expect([end.code, end.reason.length > 0], what).toEqual([wsCode, true]);
      else expect(end.code, `${what}: ${end.reason}`).toBe(0);
    }
    const later = await jobSeenBy([control]);
    for (const { what, stream } of streams) expect(sawJob(stream, later), what).toBe(false);
  };

  /** A new user of the admin's tenant with `role`: their session token and their own API key. */
  const newMember = async (email: string, role: string) => {
    const invite = await admin.post('/api/users/invitations', { email, role });
    expect(invite.status, invite.text).toBe(201);
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'member-password-1' },
    });
    expect(accepted.status, accepted.text).toBe(200);
    const session = accepted.body.token as string;
    const key = await client(server.url, session).post('/api/keys', { name: 'streams', role: 'viewer' });
    expect(key.status, key.text).toBe(201);
    return { userId: accepted.body.user.id as number, session, key: key.body.key as string };
  };

  beforeAll(async () => {
    server = await startServer(kind);
    admin = client(server.url, await login(server.url));
    control = asStream(await openWs(server.url, { token: (await admin.post('/api/keys', { name: 'control', role: 'viewer' })).body.key }));
  });
  afterAll(async () => {
    control?.close();
    await server?.dispose();
  });

  it('ends the streams of a session that logs out', async () => {
    const session = await login(server.url);
    const streams = await openAll([session]);
    expect((await client(server.url, session).post('/api/auth/logout')).status).toBe(204);
    await expectAllEnded(streams, 4001);
  });

  it('ends the streams of an API key that is deleted', async () => {
    const key = await admin.post('/api/keys', { name: 'doomed', role: 'viewer' });
    const streams = await openAll([key.body.key]);
    expect((await admin.delete(`/api/keys/${key.body.id}`)).status).toBe(204);
    await expectAllEnded(streams, 4001);
  });

  it('ends the streams of a member who is removed, by session and by key', async () => {
    const member = await newMember('removed@example.com', 'member');
    const streams = await openAll([member.session, member.key]);
    expect((await admin.delete(`/api/users/${member.userId}`)).status).toBe(204);
    await expectAllEnded(streams, 4001);
  });

  it('ends the streams of a member who is disabled, by session and by key', async () => {
    const member = await newMember('disabled@example.com', 'member');
    const streams = await openAll([member.session, member.key]);
    const disabled = await admin.patch(`/api/users/${member.userId}`, { status: 'disabled' });
    expect(disabled.status, disabled.text).toBe(200);
    await expectAllEnded(streams, 4003);
    // Still disabled: a new stream is refused before it opens.
    const again = await openWs(server.url, { token: member.key });
    expect('status' in again && again.status).toBe(403);
  });

  it('ends the streams of a session that switches to another tenant', async () => {
    const token = await login(server.url);
    const session = client(server.url, token);
    const streams = await openAll([token]);
    const tenant = await session.post('/api/tenants', { name: 'Elsewhere' });
    expect(tenant.status, tenant.text).toBe(201);
    expect((await session.put('/api/auth/tenant', { tenant_id: tenant.body.id })).status).toBe(200);
    await expectAllEnded(streams, 4002);
  });

  it('keeps streams open while their credential stays valid, when other users lose theirs', async () => {
    const member = await newMember('stays@example.com', 'member');
    const other = await newMember('goes@example.com', 'member');
    const staying = await openAll([member.session, member.key]);
    const going = await openAll([other.key]);
    expect((await admin.delete(`/api/users/${other.userId}`)).status).toBe(204);
    // The removed user's streams ending shows a re-check ran; the others still deliver after it.
    await expectAllEnded(going, 4001);
    await jobSeenBy(staying.map((s) => s.stream));
    for (const { stream } of staying) stream.close();
  });
});
