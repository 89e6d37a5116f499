import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();

/** The task surface (002-task-action) over jobs. */
describe.each(kinds)('/mj tasks on %s', (kind) => {
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let stranger: ReturnType<typeof client>;

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_JOB_POLL: '100' } });
    api = client(server.url, await login(server.url));
    const invite = await api.post('/api/users/invitations', { email: 'stranger@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', { body: { token: invite.body.invitation_token, password: 'stranger-pass' } });
    await client(server.url, accepted.body.token).post('/api/tenants', { name: 'Elsewhere' });
    await api.delete(`/api/users/${accepted.body.user.id}`);
    stranger = client(server.url, await login(server.url, 'stranger@example.com', 'stranger-pass'));
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const finished = (id: string | number) =>
    eventually(async () => {
      const t = (await api.get(`/mj/task/${id}/fetch`)).body;
      return ['SUCCESS', 'FAILURE', 'CANCEL'].includes(t.status) ? t : undefined;
    }, `task ${id} to finish`);

  it('shows a job as a task while it waits, runs and ends', async () => {
    const later = (await api.post('/api/jobs', { action: 'noop', start_at: new Date(Date.now() + 3600_000).toISOString() })).body;
    const waiting = await api.get(`/mj/task/${later.id}/fetch`);
    expect(waiting.status).toBe(200);
    expect(waiting.body).toEqual({
      id: String(later.id),
      action: 'noop',
      status: 'NOT_START',
      progress: '0%',
      description: 'Do nothing',
      state: null,
      submitTime: expect.any(Number),
      startTime: null,
      finishTime: null,
      failReason: null,
      properties: { parentId: null, referenceId: null, attempts: 0 },
      buttons: [],
    });
    await api.post(`/api/jobs/${later.id}/cancel`);
    const cancelled = (await api.get(`/mj/task/${later.id}/fetch`)).body;
    expect(cancelled).toMatchObject({ status: 'CANCEL', failReason: 'cancelled' });
    expect(cancelled.buttons.map((b: { customId: string }) => b.customId)).toEqual([`yunji::rerun::${later.id}`, `yunji::retry::${later.id}`]);
    expect(cancelled.buttons[0]).toEqual({ customId: `yunji::rerun::${later.id}`, label: 'Run again', emoji: '🔄', style: 2, type: 2 });

    const running = (await api.post('/api/jobs', { action: 'noop', params: { ms: 1500 } })).body;
    const inProgress = await eventually(async () => {
      const t = (await api.get(`/mj/task/${running.id}/fetch`)).body;
      return t.status === 'IN_PROGRESS' && t.progress !== '0%' ? t : undefined;
    }, 'progress');
    expect(inProgress.progress).toMatch(/^\d{1,3}%$/);
    expect(inProgress.startTime).toEqual(expect.any(Number));
    const done = await finished(running.id);
    expect(done).toMatchObject({ status: 'SUCCESS', progress: '100%', finishTime: expect.any(Number), properties: { result: { attempts: 1 } } });
  });

  it('lists tasks by id, in the order asked, leaving out what is not a task of the tenant', async () => {
    const a = (await api.post('/api/jobs', { action: 'noop' })).body.id;
    const b = (await api.post('/api/jobs', { action: 'noop' })).body.id;
    const theirs = (await stranger.post('/api/jobs', { action: 'noop' })).body.id;
    const res = await api.post('/mj/task/list-by-condition', { ids: [String(b), 'nope', String(theirs), String(a), '99999999', String(b)] });
    expect(res.status).toBe(200);
    expect(res.body.map((t: { id: string }) => t.id)).toEqual([String(b), String(a), String(b)]);
    expect((await api.post('/mj/task/list-by-condition', { ids: [] })).body).toEqual([]);
  });

  it('reruns and retries finished tasks as new tasks with their parent, and says why it will not', async () => {
    const failed = (await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 10 } })).body;
    const end = await eventually(async () => {
      const t = (await api.get(`/mj/task/${failed.id}/fetch`)).body;
      return t.status === 'FAILURE' ? t : undefined;
    }, 'failure', 60_000);
    expect(end.failReason).toMatch(/failing attempt 3/);

    const retry = await api.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::retry::${failed.id}`, taskId: String(failed.id), state: 'my-state' });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({ code: 1, description: 'Success', result: expect.stringMatching(/^\d+$/), properties: { parentId: String(failed.id), action: 'noop' } });
    const child = (await api.get(`/mj/task/${retry.body.result}/fetch`)).body;
    expect(child).toMatchObject({ action: 'noop', state: 'my-state', properties: { parentId: String(failed.id) } });

    const ok = (await api.post('/api/jobs', { action: 'noop' })).body;
    await finished(ok.id);
    const rerun = await api.post('/mj/submit/action', { chooseSameChannel: false, customId: `yunji::rerun::${ok.id}`, taskId: String(ok.id) });
    expect(rerun.body.code).toBe(1);
    expect((await finished(rerun.body.result)).status).toBe('SUCCESS');
    // retry is offered only after a failure or a cancel.
    const noRetry = await api.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::retry::${ok.id}`, taskId: String(ok.id) });
    expect(noRetry.body).toMatchObject({ code: 4, result: null });
    // Not finished yet: no actions.
    const long = (await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 } })).body;
    const early = await api.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::rerun::${long.id}`, taskId: String(long.id) });
    expect(early.body.code).toBe(4);
    expect(early.body.description).toMatch(/has finished/);
    await api.post(`/api/jobs/${long.id}/cancel`);
    // A button of another task, an unknown one, a missing task.
    expect((await api.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::rerun::${failed.id}`, taskId: String(ok.id) })).body.code).toBe(4);
    expect((await api.post('/mj/submit/action', { chooseSameChannel: true, customId: 'MJ::JOB::upsample::2::3dbbd469', taskId: String(ok.id) })).body.code).toBe(4);
    expect((await api.post('/mj/submit/action', { chooseSameChannel: true, customId: 'yunji::rerun::1', taskId: '99999999' })).body.code).toBe(3);
    expect((await api.post('/mj/submit/action', { chooseSameChannel: true, customId: 'yunji::rerun::1', taskId: 'abc' })).body.code).toBe(3);
  });

  it('refuses malformed, hostile and foreign input', async () => {
    const mine = (await api.post('/api/jobs', { action: 'noop' })).body.id;
    await finished(mine);
    for (const id of ['abc', '-1', '0', '1.5', '99999999999999999999', '99999999']) {
      const res = await api.get(`/mj/task/${id}/fetch`);
      expect(res.status, id).toBe(404);
      expect(res.body, id).toEqual({ code: 404, description: expect.any(String), result: null, properties: {} });
    }
    // Another tenant sees no such task, and cannot act on it.
    expect((await stranger.get(`/mj/task/${mine}/fetch`)).status).toBe(404);
    expect((await stranger.post('/mj/task/list-by-condition', { ids: [String(mine)] })).body).toEqual([]);
    expect((await stranger.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::rerun::${mine}`, taskId: String(mine) })).body.code).toBe(3);

    const bad = async (body: unknown) => {
      const res = await api.post('/mj/submit/action', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body).toMatchObject({ code: 400, result: null });
    };
    await bad({ customId: `yunji::rerun::${mine}`, taskId: String(mine) });
    await bad({ chooseSameChannel: 'yes', customId: `yunji::rerun::${mine}`, taskId: String(mine) });
    await bad({ chooseSameChannel: true, customId: 'x'.repeat(5000), taskId: String(mine) });
    await bad({ chooseSameChannel: true, customId: `yunji::rerun::${mine}`, taskId: String(mine), notifyHook: 'http://169.254.169.254/latest' });
    await bad({ chooseSameChannel: true, customId: `yunji::rerun::${mine}`, taskId: String(mine), extra: 1 });
    expect((await api.post('/mj/task/list-by-condition', { ids: 'all' })).status).toBe(400);
    expect((await api.post('/mj/task/list-by-condition', { ids: Array.from({ length: 1001 }, (_, i) => String(i + 1)) })).status).toBe(400);
    expect((await api.post('/mj/task/list-by-condition', { ids: [1, 2] })).status).toBe(400);
    expect((await call(server.url, 'GET', `/mj/task/${mine}/fetch`)).status).toBe(401);
  });
});
