import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();

type Client = ReturnType<typeof client>;

/**
 * The task surface (002-task-action) over jobs. The server lets a tenant run 2 jobs at once, so a
 * test can fill its workers and see `/mj/submit/action` answer code 22.
 */
describe.each(kinds)('/mj tasks on %s', (kind) => {
  let server: RunningServer;
  let api: Client;
  /** Alone in another tenant, by session and by API key. */
  let stranger: Client;
  let strangerKey: Client;
  /** A read-only key of the admin's tenant. */
  let viewer: Client;

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_JOB_POLL: '100', YUNJI_TENANT_JOB_CONCURRENCY: '2' } });
    api = client(server.url, await login(server.url));
    const invite = await api.post('/api/users/invitations', { email: 'stranger@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'stranger-pass' },
    });
    await client(server.url, accepted.body.token).post('/api/tenants', { name: 'Elsewhere' });
    await api.delete(`/api/users/${accepted.body.user.id}`);
    stranger = client(server.url, await login(server.url, 'stranger@example.com', 'stranger-pass'));
    const key = await stranger.post('/api/keys', { name: 'stranger-key', role: 'admin' });
    expect(key.status).toBe(201);
    strangerKey = client(server.url, key.body.key);
    const viewerKey = await api.post('/api/keys', { name: 'viewer-key', role: 'viewer' });
    expect(viewerKey.status).toBe(201);
    viewer = client(server.url, viewerKey.body.key);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const fetchTask = async (id: string | number) => (await api.get(`/mj/task/${id}/fetch`)).body;
  const until = (id: string | number, statuses: string[], timeoutMs?: number) =>
    eventually(
      async () => {
        const t = await fetchTask(id);
        return statuses.includes(t.status) ? t : undefined;
      },
      `task ${id} to be ${statuses.join(' or ')}`,
      timeoutMs,
    );
  const finished = (id: string | number, timeoutMs?: number) => until(id, ['SUCCESS', 'FAILURE', 'CANCEL'], timeoutMs);
  const submit = (body: Record<string, unknown>, as: Client = api) => as.post('/mj/submit/action', { chooseSameChannel: true, ...body });

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
    const cancelled = await fetchTask(later.id);
    expect(cancelled).toMatchObject({ status: 'CANCEL', failReason: 'cancelled', startTime: null, finishTime: expect.any(Number) });
    expect(cancelled.buttons.map((b: { customId: string }) => b.customId)).toEqual([
      `yunji::rerun::${later.id}`,
      `yunji::retry::${later.id}`,
    ]);
    expect(cancelled.buttons[0]).toEqual({ customId: `yunji::rerun::${later.id}`, label: 'Run again', emoji: '🔄', style: 2, type: 2 });

    const running = (await api.post('/api/jobs', { action: 'noop', params: { ms: 1500 }, state: 'mine' })).body;
    const inProgress = await eventually(async () => {
      const t = await fetchTask(running.id);
      return t.status === 'IN_PROGRESS' && t.progress !== '0%' ? t : undefined;
    }, 'progress');
    expect(inProgress.progress).toMatch(/^\d{1,3}%$/);
    expect(inProgress.startTime).toEqual(expect.any(Number));
    expect(inProgress.buttons).toEqual([]);
    expect(inProgress.properties.progress).toMatchObject({ current: expect.any(Number), total: expect.any(Number) });
    const done = await finished(running.id);
    expect(done).toMatchObject({
      status: 'SUCCESS',
      progress: '100%',
      state: 'mine',
      failReason: null,
      finishTime: expect.any(Number),
      properties: { result: { attempts: 1 } },
    });
    expect(done.finishTime).toBeGreaterThanOrEqual(done.startTime);
    expect(done.buttons.map((b: { customId: string }) => b.customId)).toEqual([`yunji::rerun::${running.id}`]);
    // A viewer may read tasks.
    expect((await viewer.get(`/mj/task/${running.id}/fetch`)).body).toEqual(done);
  });

  it('lists tasks by id, in the order asked, leaving out what is not a task of the tenant', async () => {
    // Not due for an hour: each task stays as it is between the list and the fetch compared below
    // (a job that finished in between made the two differ).
    const later = { action: 'noop', start_at: new Date(Date.now() + 3_600_000).toISOString() };
    const a = (await api.post('/api/jobs', later)).body.id;
    const b = (await api.post('/api/jobs', later)).body.id;
    const theirs = (await stranger.post('/api/jobs', later)).body.id;
    const res = await api.post('/mj/task/list-by-condition', {
      ids: [
        String(b),
        'nope',
        String(theirs),
        String(a),
        '99999999',
        String(b),
        '-1',
        '0',
        `0${a}`,
        `${a}.0`,
        '9007199254740993',
        '99999999999999999999',
        '',
      ],
    });
    expect(res.status).toBe(200);
    expect(res.body.map((t: { id: string }) => t.id)).toEqual([String(b), String(a), String(b)]);
    expect(res.body[1]).toEqual(await fetchTask(a));
    expect((await api.post('/mj/task/list-by-condition', { ids: [] })).body).toEqual([]);
    // The other tenant sees its own and nothing of ours, by session or key.
    for (const other of [stranger, strangerKey]) {
      const seen = await other.post('/mj/task/list-by-condition', { ids: [String(a), String(theirs), String(b)] });
      expect(seen.status).toBe(200);
      expect(seen.body.map((t: { id: string }) => t.id)).toEqual([String(theirs)]);
    }
    // 1,000 ids are fine.
    const many = await api.post('/mj/task/list-by-condition', { ids: Array.from({ length: 1000 }, (_, i) => String(i + 1)) });
    expect(many.status).toBe(200);
    expect(many.body.every((t: { id: string }) => Number(t.id) !== theirs)).toBe(true);
    expect(many.body.map((t: { id: string }) => Number(t.id))).toEqual(
      [...many.body.map((t: { id: string }) => Number(t.id))].sort((x, y) => x - y),
    );
  });

  it('reruns and retries finished tasks as new tasks with their parent, and says why it will not', async () => {
    // A cancelled task offers retry; the new task runs now and succeeds.
    const cancelled = (await api.post('/api/jobs', { action: 'noop', start_at: new Date(Date.now() + 3600_000).toISOString() })).body;
    await api.post(`/api/jobs/${cancelled.id}/cancel`);
    const retry = await submit({
      chooseSameChannel: false,
      customId: `yunji::retry::${cancelled.id}`,
      taskId: String(cancelled.id),
      state: 'my-state',
    });
    expect(retry.status).toBe(200);
    expect(retry.body).toEqual({
      code: 1,
      description: 'Success',
      result: expect.stringMatching(/^\d+$/),
      properties: { parentId: String(cancelled.id), action: 'noop' },
    });
    const retried = await finished(retry.body.result);
    expect(retried).toMatchObject({
      id: retry.body.result,
      action: 'noop',
      status: 'SUCCESS',
      state: 'my-state',
      properties: { parentId: String(cancelled.id), attempts: 1 },
    });
    // The new task has its own buttons, naming itself; the original is unchanged.
    expect(retried.buttons.map((b: { customId: string }) => b.customId)).toEqual([`yunji::rerun::${retry.body.result}`]);
    expect((await fetchTask(cancelled.id)).status).toBe('CANCEL');
    expect((await api.get(`/api/jobs/${retry.body.result}`)).body).toMatchObject({
      trigger_type: 'action',
      parent_id: cancelled.id,
      state: 'my-state',
    });

    // A completed task offers rerun (not retry); rerunning the rerun works too.
    const ok = (await api.post('/api/jobs', { action: 'noop', state: 'original-state' })).body;
    await finished(ok.id);
    const rerun = await submit({ customId: `yunji::rerun::${ok.id}`, taskId: String(ok.id) });
    expect(rerun.body).toMatchObject({ code: 1, properties: { parentId: String(ok.id) } });
    const rerunDone = await finished(rerun.body.result);
    // The caller's state belongs to the call: a follow-up without one has none.
    expect(rerunDone).toMatchObject({ status: 'SUCCESS', state: null, properties: { parentId: String(ok.id) } });
    const again = await submit({ customId: `yunji::rerun::${rerun.body.result}`, taskId: rerun.body.result });
    expect(again.body).toMatchObject({ code: 1, properties: { parentId: rerun.body.result } });
    expect((await finished(again.body.result)).status).toBe('SUCCESS');
    const noRetry = await submit({ customId: `yunji::retry::${ok.id}`, taskId: String(ok.id) });
    expect(noRetry.status).toBe(200);
    expect(noRetry.body).toEqual({ code: 4, description: expect.stringContaining('not one of'), result: null, properties: {} });

    // A failed task: retry gives a new task with the same parameters (so it fails again here).
    const failed = (await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 10 } })).body;
    const end = await until(failed.id, ['FAILURE'], 60_000);
    expect(end.failReason).toMatch(/failing attempt 3/);
    expect(end.buttons.map((b: { customId: string }) => b.customId)).toEqual([`yunji::rerun::${failed.id}`, `yunji::retry::${failed.id}`]);
    const retryFailed = await submit({ customId: `yunji::retry::${failed.id}`, taskId: String(failed.id) });
    expect(retryFailed.body.code).toBe(1);
    expect(await fetchTask(retryFailed.body.result)).toMatchObject({ properties: { parentId: String(failed.id) } });
    await api.post(`/api/jobs/${retryFailed.body.result}/cancel`);

    // Not finished yet: no actions.
    const long = (await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 } })).body;
    const early = await submit({ customId: `yunji::rerun::${long.id}`, taskId: String(long.id) });
    expect(early.body).toMatchObject({ code: 4, result: null });
    expect(early.body.description).toMatch(/has finished/);
    await api.post(`/api/jobs/${long.id}/cancel`);
    // A button of another task, an unknown one, a missing task, ids that are no task.
    expect((await submit({ customId: `yunji::rerun::${failed.id}`, taskId: String(ok.id) })).body.code).toBe(4);
    expect(
      (await submit({ customId: 'MJ::JOB::upsample::2::3dbbd469-36af-4a0f-8f02-df6c579e7011', taskId: String(ok.id) })).body.code,
    ).toBe(4);
    expect((await submit({ customId: `yunji::explode::${ok.id}`, taskId: String(ok.id) })).body.code).toBe(4);
    expect((await submit({ customId: `yunji::rerun::${ok.id}x`, taskId: String(ok.id) })).body.code).toBe(4);
    for (const taskId of ['99999999', 'abc', '-1', '0', '1.5', '14001934816969359', '9007199254740993']) {
      const res = await submit({ customId: 'yunji::rerun::1', taskId });
      expect(res.status, taskId).toBe(200);
      expect(res.body, taskId).toEqual({ code: 3, description: expect.any(String), result: null, properties: {} });
    }
  });

  it("answers 22 with the queue length when the tenant's workers are busy, and still makes the task", async () => {
    const done = (await api.post('/api/jobs', { action: 'noop' })).body.id;
    await finished(done);
    const made: string[] = [];
    try {
      // Two long jobs fill the tenant's two workers; a third waits.
      for (let i = 0; i < 2; i++) made.push(String((await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 } })).body.id));
      for (const id of made) await until(id, ['IN_PROGRESS']);
      const waiting = String((await api.post('/api/jobs', { action: 'noop' })).body.id);
      made.push(waiting);
      expect((await fetchTask(waiting)).status).toBe('SUBMITTED');

      const first = await submit({ customId: `yunji::rerun::${done}`, taskId: String(done) });
      expect(first.status).toBe(200);
      expect(first.body).toEqual({
        code: 22,
        description: expect.any(String),
        result: expect.stringMatching(/^\d+$/),
        properties: { parentId: String(done), action: 'noop', numberOfQueues: expect.any(Number) },
      });
      made.push(first.body.result);
      expect(first.body.properties.numberOfQueues).toBeGreaterThan(0);
      expect(await fetchTask(first.body.result)).toMatchObject({ status: 'SUBMITTED', properties: { parentId: String(done) } });
      // One more behind it: the queue is one longer.
      const second = await submit({ customId: `yunji::rerun::${done}`, taskId: String(done) });
      made.push(second.body.result);
      expect(second.body).toMatchObject({ code: 22, properties: { numberOfQueues: first.body.properties.numberOfQueues + 1 } });
      // Another tenant's workers are its own: its follow-ups are not queued behind ours.
      const theirs = (await strangerKey.post('/api/jobs', { action: 'noop' })).body.id;
      await eventually(
        async () => ((await strangerKey.get(`/mj/task/${theirs}/fetch`)).body.status === 'SUCCESS' ? true : undefined),
        'their task',
      );
      const theirFollowUp = await submit({ customId: `yunji::rerun::${theirs}`, taskId: String(theirs) }, strangerKey);
      expect(theirFollowUp.body).toMatchObject({ code: 1, properties: { parentId: String(theirs) } });
    } finally {
      // The waiting ones first: cancelling a running one would let a waiting one run (and succeed at once).
      for (const id of [...made].reverse()) await api.post(`/api/jobs/${id}/cancel`);
    }
    for (const id of made) expect((await finished(id)).status, id).toBe('CANCEL');
  });

  it('refuses malformed, hostile and foreign input', async () => {
    const mine = (await api.post('/api/jobs', { action: 'noop' })).body.id;
    await finished(mine);
    for (const id of [
      'abc',
      '-1',
      '0',
      '1.5',
      '1e3',
      `0${mine}`,
      '9007199254740993',
      '99999999999999999999',
      '99999999',
      '9'.repeat(200),
      '%20',
      'null',
    ]) {
      const res = await api.get(`/mj/task/${id}/fetch`);
      expect(res.status, id).toBe(404);
      expect(res.body, id).toEqual({ code: 404, description: expect.any(String), result: null, properties: {} });
    }
    // Another tenant sees no such task, and cannot act on it: absent, as a missing one is.
    for (const other of [stranger, strangerKey]) {
      const fetched = await other.get(`/mj/task/${mine}/fetch`);
      expect(fetched.status).toBe(404);
      expect(fetched.body).toEqual({ code: 404, description: `job ${mine} not found`, result: null, properties: {} });
      expect((await other.post('/mj/task/list-by-condition', { ids: [String(mine)] })).body).toEqual([]);
      const acted = await submit({ customId: `yunji::rerun::${mine}`, taskId: String(mine) }, other);
      expect(acted.body).toEqual({ code: 3, description: `task ${mine} does not exist`, result: null, properties: {} });
    }
    // A viewer reads but does not act.
    expect((await viewer.post('/mj/task/list-by-condition', { ids: [String(mine)] })).body.map((t: { id: string }) => t.id)).toEqual([
      String(mine),
    ]);
    const viewerSubmit = await submit({ customId: `yunji::rerun::${mine}`, taskId: String(mine) }, viewer);
    expect(viewerSubmit.status).toBe(403);
    expect(viewerSubmit.body).toMatchObject({ code: 403, result: null });

    const bad = async (body: unknown, field: RegExp) => {
      const res = await api.post('/mj/submit/action', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body).toEqual({ code: 400, description: expect.stringMatching(field), result: null, properties: {} });
    };
    const rerun = { customId: `yunji::rerun::${mine}`, taskId: String(mine) };
    await bad(rerun, /chooseSameChannel/);
    await bad({ ...rerun, chooseSameChannel: 'yes' }, /chooseSameChannel/);
    await bad({ ...rerun, chooseSameChannel: null }, /chooseSameChannel/);
    await bad({ chooseSameChannel: true, customId: 'x'.repeat(5000), taskId: String(mine) }, /customId/);
    await bad({ chooseSameChannel: true, customId: '', taskId: String(mine) }, /customId/);
    await bad({ chooseSameChannel: true, taskId: String(mine) }, /customId/);
    await bad({ chooseSameChannel: true, customId: rerun.customId }, /taskId/);
    await bad({ ...rerun, chooseSameChannel: true, taskId: mine }, /taskId/);
    await bad({ ...rerun, chooseSameChannel: true, taskId: '1'.repeat(41) }, /taskId/);
    await bad({ ...rerun, chooseSameChannel: true, notifyHook: 'http://169.254.169.254/latest' }, /notifyHook/);
    await bad({ ...rerun, chooseSameChannel: true, notifyHook: 'ftp://example.com/' }, /notifyHook/);
    await bad({ ...rerun, chooseSameChannel: true, notifyHook: 'not a url' }, /notifyHook/);
    await bad({ ...rerun, chooseSameChannel: true, state: 's'.repeat(5000) }, /state/);
    await bad({ ...rerun, chooseSameChannel: true, extra: 1 }, /extra/);
    await bad([rerun], /body|object/);
    const notJson = await api.post('/mj/submit/action', undefined, {
      raw: '{"chooseSameChannel": tru',
      headers: { 'content-type': 'application/json' },
    });
    expect(notJson.status).toBe(400);
    expect(notJson.body).toMatchObject({ code: 400, result: null });
    // None of these made a task.
    expect((await api.get(`/api/jobs?limit=1`)).body.items[0].id).toBe(mine);

    const list = async (body: unknown) => {
      const res = await api.post('/mj/task/list-by-condition', body);
      expect(res.status, JSON.stringify(body).slice(0, 80)).toBe(400);
      expect(res.body).toMatchObject({ code: 400, description: expect.stringMatching(/ids/), result: null });
    };
    await list({ ids: 'all' });
    await list({ ids: { 0: String(mine) } });
    await list({ ids: [1, 2] });
    await list({ ids: [null] });
    await list({});
    await list({ ids: ['1'.repeat(41)] });
    await list({ ids: Array.from({ length: 1001 }, (_, i) => String(i + 1)) });
    await list({ ids: Array.from({ length: 10_001 }, (_, i) => String(i + 1)) });

    // Without a token, with a bad one, at a wrong method or path: the same envelope.
    for (const res of [
      await call(server.url, 'GET', `/mj/task/${mine}/fetch`),
      await call(server.url, 'POST', '/mj/submit/action', { token: 'ys_garbage', body: { chooseSameChannel: true, ...rerun } }),
    ]) {
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ code: 401, result: null, properties: {} });
    }
    const wrongMethod = await api.get('/mj/submit/action');
    expect(wrongMethod.status).toBe(405);
    expect(wrongMethod.body).toMatchObject({ code: 405, result: null });
    const unknown = await api.get('/mj/task/nothing-here');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ code: 404, result: null });
  });
});
