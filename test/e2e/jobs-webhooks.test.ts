import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually } from '../helpers/workers.ts';

const kinds = await databaseKinds();

interface Received {
  path: string;
  body: string;
  json: { id: number | string; event: string; sequence: number; state?: string | null; status: string } & Record<string, unknown>;
  signature: string | undefined;
  contentType: string | undefined;
  /** When it arrived (this process's clock). */
  at: number;
  /** What the receiver answered. */
  answered: number;
}

/**
 * A webhook receiver on 127.0.0.1 that records every POST. Paths in `failFirst` answer 500 once;
 * paths in `down` always answer 500. `received` holds the accepted requests, `all` every one.
 */
async function receiver() {
  const all: Received[] = [];
  const failFirst = new Set<string>();
  const down = new Set<string>();
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      const answered = down.has(path) || failFirst.delete(path) ? 500 : 204;
      all.push({
        path,
        body,
        json: JSON.parse(body) as Received['json'],
        signature: req.headers['x-yunji-signature'] as string | undefined,
        contentType: req.headers['content-type'],
        at: Date.now(),
        answered,
      });
      res.writeHead(answered).end(answered === 500 ? 'not now' : undefined);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    all,
    failFirst,
    down,
    server,
    /** Accepted requests to one path, in arrival order. */
    of: (path: string) => all.filter((r) => r.path === path && r.answered === 204),
  };
}

describe.each(kinds)('job webhooks on %s', (kind) => {
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let secret: string;

  beforeAll(async () => {
    hook = await receiver();
    server = await startServer(kind, { env: { YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_JOB_POLL: '100' } });
    api = client(server.url, await login(server.url));
    const settings = await api.get('/api/webhook');
    expect(settings.status).toBe(200);
    expect(settings.body).toEqual({ url: null, secret: expect.stringMatching(/^whsec_/) });
    secret = settings.body.secret;
  });
  afterAll(async () => {
    await server?.dispose();
    hook?.server.close();
  });

  const sign = (body: string, key = secret) => `sha256=${createHmac('sha256', key).update(body).digest('hex')}`;
  /** The accepted deliveries to `path` once one of them is `event` (for job `id`, when given). */
  const delivered = (path: string, event: string, id?: number | string, timeoutMs?: number) =>
    eventually(
      async () => (hook.of(path).some((r) => r.json.event === event && (id === undefined || r.json.id === id)) ? hook.of(path) : undefined),
      `${event} at ${path}`,
      timeoutMs,
    );
  const expectInOrder = (got: Received[]) => {
    const sequences = got.map((r) => r.json.sequence);
    for (let i = 1; i < sequences.length; i++)
      expect(sequences[i], `sequence after ${sequences[i - 1]}`).toBeGreaterThan(sequences[i - 1]!);
  };
  const jobStatus = async (id: number) => (await api.get(`/api/jobs/${id}`)).body.status as string;

  it('posts every state change and progress step of a job, signed and in order', async () => {
    const job = (await api.post('/api/jobs', { action: 'noop', params: { ms: 500 }, notify_hook: `${hook.url}/one`, state: 'st-1' })).body;
    const got = await delivered('/one', 'jobEnd');
    for (const r of got) {
      expect(r.signature).toBe(sign(r.body));
      expect(r.contentType).toBe('application/json');
      expect(r.json).toMatchObject({ id: job.id, state: 'st-1', job_type: 'noop' });
    }
    const events = got.map((r) => r.json.event);
    expect(events[0]).toBe('jobCreated');
    expect(events[1]).toBe('jobBegin');
    expect(events.slice(2, -1).length).toBeGreaterThan(0);
    expect(events.slice(2, -1).every((e) => e === 'jobProgress')).toBe(true);
    expect(events[events.length - 1]).toBe('jobEnd');
    expectInOrder(got);
    expect(got[0]!.json).toMatchObject({ status: 'pending', sequence: 1 });
    expect(got[1]!.json).toMatchObject({ status: 'running' });
    expect(got[got.length - 1]!.json).toMatchObject({
      status: 'succeeded',
      result: { attempts: 1 },
      buttons: [{ customId: `yunji::rerun::${job.id}` }],
    });
    // The last payload is the job as GET /api/jobs/{id} shows it, plus the event and its number.
    const { event: _event, sequence: _sequence, ...last } = got[got.length - 1]!.json;
    expect(last).toEqual((await api.get(`/api/jobs/${job.id}`)).body);

    const deliveries = await api.get(`/api/jobs/${job.id}/deliveries`);
    expect(deliveries.status).toBe(200);
    expect(deliveries.body.items.map((d: { event: string }) => d.event)).toEqual(events);
    for (const d of deliveries.body.items) {
      expect(d).toMatchObject({
        url: `${hook.url}/one`,
        status: 'delivered',
        attempts: 1,
        last_status_code: 204,
        last_error: null,
        delivered_at: expect.any(String),
      });
    }
  });

  it('retries a delivery the receiver refused, after about a second, and keeps the order behind it', async () => {
    hook.failFirst.add('/flaky');
    const job = (await api.post('/api/jobs', { action: 'noop', notify_hook: `${hook.url}/flaky` })).body;
    const got = await delivered('/flaky', 'jobEnd');
    expect(got.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
    expectInOrder(got);
    // The same delivery again, byte for byte, signed the same; nothing after it went first.
    const attempts = hook.all.filter((r) => r.path === '/flaky');
    expect(attempts.map((r) => [r.json.event, r.answered])).toEqual([
      ['jobCreated', 500],
      ['jobCreated', 204],
      ['jobBegin', 204],
      ['jobEnd', 204],
    ]);
    expect(attempts[1]!.body).toBe(attempts[0]!.body);
    expect(attempts[1]!.signature).toBe(sign(attempts[0]!.body));
    // Backoff: 1 s ± 25 % before the second attempt.
    expect(attempts[1]!.at - attempts[0]!.at).toBeGreaterThanOrEqual(700);
    const deliveries = (await api.get(`/api/jobs/${job.id}/deliveries`)).body.items;
    expect(
      deliveries.map((d: { event: string; status: string; attempts: number; last_status_code: number }) => [
        d.event,
        d.status,
        d.attempts,
        d.last_status_code,
      ]),
    ).toEqual([
      ['jobCreated', 'delivered', 2, 204],
      ['jobBegin', 'delivered', 1, 204],
      ['jobEnd', 'delivered', 1, 204],
    ]);
  });

  it('holds back later events while a receiver keeps failing, and says so in the deliveries', async () => {
    hook.down.add('/down');
    const job = (await api.post('/api/jobs', { action: 'noop', notify_hook: `${hook.url}/down` })).body;
    await eventually(async () => ((await jobStatus(job.id)) === 'succeeded' ? true : undefined), 'the job');
    // Two refused attempts seen by the receiver (a delivery counts its attempt when it starts one).
    await eventually(async () => (hook.all.filter((r) => r.path === '/down').length >= 2 ? true : undefined), 'a second attempt');
    const deliveries = await eventually(async () => {
      const items = (await api.get(`/api/jobs/${job.id}/deliveries`)).body.items;
      return items.length === 3 && items[0].attempts >= 2 ? items : undefined;
    }, 'the attempts recorded');
    expect(deliveries[0]).toMatchObject({
      event: 'jobCreated',
      status: 'pending',
      last_status_code: 500,
      last_error: 'the receiver answered 500',
      next_attempt_at: expect.any(String),
      delivered_at: null,
    });
    for (const d of deliveries.slice(1)) expect(d).toMatchObject({ status: 'pending', attempts: 0, last_status_code: null });
    const sent = hook.all.filter((r) => r.path === '/down');
    expect(sent.length).toBeGreaterThanOrEqual(2);
    expect(sent.every((r) => r.json.event === 'jobCreated' && r.body === sent[0]!.body)).toBe(true);
    hook.down.delete('/down');
    // Once the receiver is back, everything arrives, in order.
    const got = await delivered('/down', 'jobEnd');
    expect(got.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
  });

  it('posts retries, failures and cancels', async () => {
    const flaky = (await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 1 }, notify_hook: `${hook.url}/retry` })).body;
    const retried = await delivered('/retry', 'jobEnd');
    expect(retried.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobRetry', 'jobBegin', 'jobEnd']);
    expectInOrder(retried);
    expect(retried[2]!.json).toMatchObject({ id: flaky.id, status: 'pending', attempts: 1 });
    expect(retried[4]!.json).toMatchObject({ status: 'succeeded', attempts: 2 });

    const doomed = (await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 3 }, notify_hook: `${hook.url}/fail` })).body;
    const failed = await delivered('/fail', 'jobFail', doomed.id, 60_000);
    expect(failed.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobRetry', 'jobBegin', 'jobRetry', 'jobBegin', 'jobFail']);
    expectInOrder(failed);
    expect(failed[failed.length - 1]!.json).toMatchObject({ status: 'failed', error_message: expect.stringMatching(/failing attempt 3/) });

    const long = (await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 }, notify_hook: `${hook.url}/cancel` })).body;
    await delivered('/cancel', 'jobBegin');
    expect((await api.post(`/api/jobs/${long.id}/cancel`)).status).toBe(200);
    const cancelled = await delivered('/cancel', 'jobCancel');
    expectInOrder(cancelled);
    expect(cancelled[cancelled.length - 1]!.json).toMatchObject({ id: long.id, status: 'cancelled' });
  });

  it('sends tasks made by a follow-up action as tasks, with the caller state', async () => {
    const job = (await api.post('/api/jobs', { action: 'noop', state: 'the original state' })).body;
    await eventually(async () => ((await jobStatus(job.id)) === 'succeeded' ? true : undefined), 'the job');
    const submitted = await api.post('/mj/submit/action', {
      chooseSameChannel: true,
      customId: `yunji::rerun::${job.id}`,
      taskId: String(job.id),
      notifyHook: `${hook.url}/task`,
      state: 'caller-state',
    });
    expect(submitted.body.code).toBe(1);
    const got = await delivered('/task', 'jobEnd');
    expect(got.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
    expectInOrder(got);
    for (const r of got) {
      expect(r.signature).toBe(sign(r.body));
      expect(r.json).toMatchObject({
        id: submitted.body.result,
        action: 'noop',
        state: 'caller-state',
        properties: { parentId: String(job.id) },
      });
    }
    expect(got.map((r) => r.json.status)).toEqual(['SUBMITTED', 'IN_PROGRESS', 'SUCCESS']);
    const { event: _event, sequence: _sequence, ...last } = got[got.length - 1]!.json;
    expect(last).toEqual((await api.get(`/mj/task/${submitted.body.result}/fetch`)).body);
    expect(last).toMatchObject({ status: 'SUCCESS', progress: '100%' });

    // Without a notifyHook of its own, the follow-up keeps the original's hook.
    const hooked = (await api.post('/api/jobs', { action: 'noop', notify_hook: `${hook.url}/inherited` })).body;
    await delivered('/inherited', 'jobEnd', hooked.id);
    const again = await api.post('/mj/submit/action', {
      chooseSameChannel: true,
      customId: `yunji::rerun::${hooked.id}`,
      taskId: String(hooked.id),
      notifyHook: '',
      state: 's2',
    });
    expect(again.body.code).toBe(1);
    const inherited = (await delivered('/inherited', 'jobEnd', again.body.result)).filter((r) => r.json.id === again.body.result);
    expect(inherited.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
    expect(
      inherited.every(
        (r) =>
          r.json.state === 's2' &&
          r.json.status !== undefined &&
          (r.json.properties as { parentId: string }).parentId === String(hooked.id),
      ),
    ).toBe(true);
  });

  it("uses the tenant's default hook for jobs without their own, signed with the tenant's current secret", async () => {
    const set = await api.put('/api/webhook', { url: `${hook.url}/default` });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ url: `${hook.url}/default`, secret });
    expect((await api.get('/api/webhook')).body).toEqual({ url: `${hook.url}/default`, secret });
    const job = (await api.post('/api/jobs', { action: 'noop', state: 'by-default' })).body;
    const own = (await api.post('/api/jobs', { action: 'noop', notify_hook: `${hook.url}/own` })).body;
    const got = (await delivered('/default', 'jobEnd', job.id)).filter((r) => r.json.id === job.id);
    expect(got.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
    for (const r of got) expect(r.signature).toBe(sign(r.body));
    expect(got[2]!.json).toMatchObject({ state: 'by-default', status: 'succeeded' });
    // A job with its own hook uses only that.
    await delivered('/own', 'jobEnd', own.id);
    expect(hook.all.some((r) => r.path === '/default' && r.json.id === own.id)).toBe(false);

    // A new secret signs what is sent from then on.
    const rotated = await api.put('/api/webhook', { url: `${hook.url}/default`, rotate_secret: true });
    expect(rotated.body).toEqual({ url: `${hook.url}/default`, secret: expect.stringMatching(/^whsec_/) });
    expect(rotated.body.secret).not.toBe(secret);
    const after = (await api.post('/api/jobs', { action: 'noop' })).body;
    const signed = (await delivered('/default', 'jobEnd', after.id)).filter((r) => r.json.id === after.id);
    for (const r of signed) {
      expect(r.signature).toBe(sign(r.body, rotated.body.secret));
      expect(r.signature).not.toBe(sign(r.body));
    }

    // Bad URLs are refused; clearing the default stops deliveries for jobs without a hook.
    for (const url of ['ftp://example.com/', 'not a url', `http://example.com/${'x'.repeat(2100)}`])
      expect((await api.put('/api/webhook', { url })).status, url.slice(0, 40)).toBe(400);
    const cleared = await api.put('/api/webhook', { url: null });
    expect(cleared.body).toEqual({ url: null, secret: rotated.body.secret });
    const silent = (await api.post('/api/jobs', { action: 'noop' })).body;
    await eventually(async () => ((await jobStatus(silent.id)) === 'succeeded' ? true : undefined), 'the silent job');
    expect((await api.get(`/api/jobs/${silent.id}/deliveries`)).body.items).toEqual([]);
    secret = rotated.body.secret;
  });
});

describe.each(kinds)('job webhooks without YUNJI_OUTBOUND_ALLOW (%s)', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_JOB_POLL: '100' } });
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('refuses hooks to loopback, private and link-local addresses on every surface', async () => {
    const api = client(server.url, await login(server.url));
    const privateUrls = [
      'http://127.0.0.1:1/',
      'http://169.254.169.254/latest/meta-data',
      'http://localhost:8080/x',
      'http://10.0.0.5/',
      'http://192.168.1.1/',
      'http://[::1]:80/',
      'http://[::ffff:127.0.0.1]/',
      'http://[fe80::1]/',
      'http://0.0.0.0/',
    ];
    for (const url of privateUrls) {
      const res = await api.post('/api/jobs', { action: 'noop', notify_hook: url });
      expect(res.status, url).toBe(400);
      expect(res.body.message, url).toMatch(/private|loopback|link-local|resolve/);
    }
    for (const url of ['http://127.0.0.1:9/', 'http://169.254.169.254/'])
      expect((await api.put('/api/webhook', { url })).status, url).toBe(400);
    expect((await api.get('/api/webhook')).body.url).toBeNull();
    // None of them made a job.
    expect((await api.get('/api/jobs')).body.items).toEqual([]);

    const done = (await api.post('/api/jobs', { action: 'noop' })).body;
    await eventually(async () => ((await api.get(`/api/jobs/${done.id}`)).body.status === 'succeeded' ? true : undefined), 'the job');
    for (const notifyHook of ['http://127.0.0.1:1/', 'http://169.254.169.254/']) {
      const res = await api.post('/mj/submit/action', {
        chooseSameChannel: true,
        customId: `yunji::rerun::${done.id}`,
        taskId: String(done.id),
        notifyHook,
      });
      expect(res.status, notifyHook).toBe(400);
      expect(res.body, notifyHook).toEqual({
        code: 400,
        description: expect.stringMatching(/notifyHook.*(loopback|private|link-local)/),
        result: null,
        properties: {},
      });
    }
    expect((await api.get('/api/jobs')).body.items.map((j: { id: number }) => j.id)).toEqual([done.id]);
  });
});
