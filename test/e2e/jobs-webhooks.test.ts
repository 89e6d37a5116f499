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
  json: { id: number | string; event: string; sequence: number; state?: string | null; status: string };
  signature: string | undefined;
}

/** A webhook receiver on 127.0.0.1 that records every POST; `failFirst` paths answer 500 once. */
async function receiver(): Promise<{ url: string; received: Received[]; failFirst: Set<string>; server: Server }> {
  const received: Received[] = [];
  const failFirst = new Set<string>();
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d.toString()));
    req.on('end', () => {
      const path = req.url ?? '';
      if (failFirst.delete(path)) {
        res.writeHead(500).end('not now');
        return;
      }
      received.push({ path, body, json: JSON.parse(body) as Received['json'], signature: req.headers['x-yunji-signature'] as string | undefined });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, received, failFirst, server };
}

describe.each(kinds)('job webhooks on %s', (kind) => {
  let server: RunningServer;
  let api: ReturnType<typeof client>;
  let hook: Awaited<ReturnType<typeof receiver>>;
  let secret: string;

  beforeAll(async () => {
    hook = await receiver();
    server = await startServer(kind, { env: { YUNJI_WEBHOOK_ALLOW_PRIVATE: '1', YUNJI_JOB_POLL: '100' } });
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

  const of = (path: string) => hook.received.filter((r) => r.path === path);
  const sign = (body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

  it('posts every state change and progress step of a job, signed and in order', async () => {
    const job = (await api.post('/api/jobs', { action: 'noop', params: { ms: 500 }, notify_hook: `${hook.url}/one`, state: 'st-1' })).body;
    const got = await eventually(async () => (of('/one').some((r) => r.json.event === 'jobEnd') ? of('/one') : undefined), 'jobEnd delivered');
    for (const r of got) expect(r.signature).toBe(sign(r.body));
    const events = got.map((r) => r.json.event);
    expect(events[0]).toBe('jobCreated');
    expect(events[1]).toBe('jobBegin');
    expect(events).toContain('jobProgress');
    expect(events[events.length - 1]).toBe('jobEnd');
    expect(events).not.toContain('jobLog');
    const sequences = got.map((r) => r.json.sequence);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(new Set(sequences).size).toBe(sequences.length);
    expect(got[got.length - 1]!.json).toMatchObject({ id: job.id, status: 'succeeded', state: 'st-1' });

    const deliveries = await api.get(`/api/jobs/${job.id}/deliveries`);
    expect(deliveries.status).toBe(200);
    expect(deliveries.body.items.length).toBe(got.length);
    expect(deliveries.body.items.every((d: { status: string; attempts: number; last_status_code: number }) => d.status === 'delivered' && d.attempts === 1 && d.last_status_code === 204)).toBe(true);
  });

  it('retries a delivery the receiver refused, and keeps the order behind it', async () => {
    hook.failFirst.add('/flaky');
    const job = (await api.post('/api/jobs', { action: 'noop', notify_hook: `${hook.url}/flaky` })).body;
    const got = await eventually(async () => (of('/flaky').some((r) => r.json.event === 'jobEnd') ? of('/flaky') : undefined), 'jobEnd after a retry');
    expect(got.map((r) => r.json.event)).toEqual(['jobCreated', 'jobBegin', 'jobEnd']);
    const deliveries = (await api.get(`/api/jobs/${job.id}/deliveries`)).body.items;
    expect(deliveries[0]).toMatchObject({ event: 'jobCreated', status: 'delivered', attempts: 2, last_status_code: 204 });
  });

  it('sends tasks made by a follow-up action as tasks, with the caller state', async () => {
    const job = (await api.post('/api/jobs', { action: 'noop' })).body;
    await eventually(async () => ((await api.get(`/api/jobs/${job.id}`)).body.status === 'succeeded' ? true : undefined), 'the job');
    const submitted = await api.post('/mj/submit/action', { chooseSameChannel: true, customId: `yunji::rerun::${job.id}`, taskId: String(job.id), notifyHook: `${hook.url}/task`, state: 'caller-state' });
    expect(submitted.body.code).toBe(1);
    const got = await eventually(async () => (of('/task').some((r) => r.json.event === 'jobEnd') ? of('/task') : undefined), 'the task events');
    const last = got[got.length - 1]!.json as unknown as Record<string, unknown>;
    expect(last).toMatchObject({ id: submitted.body.result, status: 'SUCCESS', state: 'caller-state', progress: '100%', properties: { parentId: String(job.id) } });
  });

  it("uses the tenant's default hook for jobs without their own, and refuses hooks to the metadata address", async () => {
    const set = await api.put('/api/webhook', { url: `${hook.url}/default` });
    expect(set.status).toBe(200);
    expect(set.body).toEqual({ url: `${hook.url}/default`, secret });
    // The default hook is read at most a second late.
    await new Promise((r) => setTimeout(r, 1100));
    const job = (await api.post('/api/jobs', { action: 'noop' })).body;
    await eventually(async () => (of('/default').some((r) => r.json.id === job.id && r.json.event === 'jobEnd') ? true : undefined), 'default hook');
    expect((await api.put('/api/webhook', { url: 'ftp://example.com/' })).status).toBe(400);
    const rotated = await api.put('/api/webhook', { url: null, rotate_secret: true });
    expect(rotated.body.url).toBeNull();
    expect(rotated.body.secret).not.toBe(secret);
  });
});

describe.each(kinds.slice(0, 1))('job webhooks without YUNJI_WEBHOOK_ALLOW_PRIVATE (%s)', (kind) => {
  let server: RunningServer;
  beforeAll(async () => {
    server = await startServer(kind);
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('refuses hooks to loopback, private and link-local addresses', async () => {
    const api = client(server.url, await login(server.url));
    for (const url of ['http://127.0.0.1:1/', 'http://localhost:8080/x', 'http://10.0.0.5/', 'http://169.254.169.254/latest/meta-data', 'http://[::1]:80/', 'http://[::ffff:127.0.0.1]/']) {
      const res = await api.post('/api/jobs', { action: 'noop', notify_hook: url });
      expect(res.status, url).toBe(400);
      expect(res.body.message, url).toMatch(/private|loopback|link-local|resolve/);
    }
    expect((await api.put('/api/webhook', { url: 'http://127.0.0.1:9/' })).status).toBe(400);
  });
});
