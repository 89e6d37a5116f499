import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import { TERMINAL_STATUSES, until, type Api } from '../helpers/sync.ts';
import { queryDb } from '../helpers/workers.ts';

const kinds = await databaseKinds();

/**
 * What a tenant's jobs leave behind does not grow forever: a finished job is deleted with its logs
 * and webhook deliveries once YUNJI_JOB_RETENTION has passed since it ended (here 2 s), and so are
 * the finished deliveries of a job still kept. A running or scheduled job is never deleted.
 */
describe.each(kinds)('retention of finished jobs on %s', (kind) => {
  let server: RunningServer;
  let hooks: Server;
  let hookUrl: string;
  let tenant: Api;

  beforeAll(async () => {
    hooks = createServer((req, res) => {
      req.resume();
      req.on('end', () => res.writeHead(204).end());
    });
    await new Promise<void>((r) => hooks.listen(0, '127.0.0.1', () => r()));
    hookUrl = `http://127.0.0.1:${(hooks.address() as AddressInfo).port}/hook`;
    server = await startServer(kind, {
      env: { YUNJI_JOB_RETENTION: '2', YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_JOB_POLL: '100' },
    });
    tenant = await newTenantClient(server.url, 'Busy');
  });
  afterAll(async () => {
    await server?.dispose();
    hooks?.closeAllConnections();
    await new Promise<void>((r) => (hooks ? hooks.close(() => r()) : r()));
  });

  const rows = async (table: 'job_logs' | 'job_deliveries', jobId: number) =>
    Number((await queryDb<{ n: string | number }>(server, `select count(*) as n from ${table} where job_id = ${jobId}`))[0]!.n);
  const submit = async (body: Record<string, unknown>) => {
    const res = await tenant.post('/api/jobs', { action: 'noop', notify_hook: hookUrl, ...body });
    expect(res.status, res.text).toBe(201);
    return res.body.id as number;
  };

  it('deletes a finished job with its logs and deliveries after the retention; keeps running and scheduled jobs', async () => {
    const finished = await submit({ params: { ms: 0 } });
    const running = await submit({ params: { ms: 600_000 } });
    const scheduled = await submit({ params: { ms: 0 }, start_at: new Date(Date.now() + 3_600_000).toISOString() });

    const done = await until('the short job to end and its webhooks to be sent', async () => {
      const job = (await tenant.get(`/api/jobs/${finished}`)).body;
      if (!TERMINAL_STATUSES.includes(job.status)) return undefined;
      const deliveries = (await tenant.get(`/api/jobs/${finished}/deliveries`)).body.items as { status: string }[];
      return deliveries.length > 0 && deliveries.every((d) => d.status === 'delivered') ? job : undefined;
    });
    expect(done.status).toBe('succeeded');
    expect(await rows('job_logs', finished)).toBeGreaterThan(0);
    expect(await rows('job_deliveries', finished)).toBeGreaterThan(0);
    await until('the long job to run', async () =>
      (await tenant.get(`/api/jobs/${running}`)).body.status === 'running' ? true : undefined,
    );

    // Gone after the retention: the job (404 on every view), its logs and its deliveries.
    await until('the finished job to be purged', async () =>
      (await tenant.get(`/api/jobs/${finished}`)).status === 404 ? true : undefined,
    );
    expect((await tenant.get(`/api/jobs/${finished}/logs`)).status).toBe(404);
    expect(await rows('job_logs', finished)).toBe(0);
    expect(await rows('job_deliveries', finished)).toBe(0);

    // The running job's delivered webhooks go too; the job, its logs and the scheduled job stay.
    await until('the running job’s sent deliveries to be purged', async () =>
      (await rows('job_deliveries', running)) === 0 ? true : undefined,
    );
    const still = await tenant.get(`/api/jobs/${running}`);
    expect([still.status, still.body.status]).toEqual([200, 'running']);
    expect(await rows('job_logs', running)).toBeGreaterThan(0);
    const waiting = await tenant.get(`/api/jobs/${scheduled}`);
    expect([waiting.status, waiting.body.status]).toEqual([200, 'pending']);
    expect((await tenant.post(`/api/jobs/${running}/cancel`)).status).toBe(200);
  });
});
