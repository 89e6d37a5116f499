import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { newTenantClient, startServer, type RunningServer } from '../helpers/server.ts';
import { TERMINAL_STATUSES, until, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * One tenant cannot take every worker: with a tenant's 50 jobs queued on 4 workers, another
 * tenant's job is started before the first tenant's queue drains (workers go to the tenant with
 * the fewest running first), not after all 50 (oldest first).
 */
describe.each(kinds)('fair share of workers between tenants on %s', (kind) => {
  let server: RunningServer;
  let hog: Api;
  let other: Api;

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_WORKERS: '4', YUNJI_JOB_POLL: '100' } });
    hog = await newTenantClient(server.url, 'Hog');
    other = await newTenantClient(server.url, 'Other');
  });
  afterAll(async () => {
    await server?.dispose();
  });

  const count = async (api: Api, status: string) => {
    const res = await api.get(`/api/jobs?status=${status}&page_size=1`);
    expect(res.status, res.text).toBe(200);
    return res.body.meta.total as number;
  };

  it("another tenant's job runs while the first tenant still has jobs queued", async () => {
    // One after another: within a tenant the longest waiting runs first, which is then id order.
    for (let i = 0; i < 50; i++) {
      const res = await hog.post('/api/jobs', { action: 'noop', params: { ms: 2000 } });
      expect(res.status, res.text).toBe(201);
    }
    await until('the first tenant to fill the workers', async () => ((await count(hog, 'running')) === 4 ? true : undefined));

    const mine = await other.post('/api/jobs', { action: 'noop', params: { ms: 0 } });
    expect(mine.status, mine.text).toBe(201);
    const done = await until('the other tenant’s job to end', async () => {
      const res = await other.get(`/api/jobs/${mine.body.id}`);
      expect(res.status, res.text).toBe(200);
      return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
    });
    expect(done.status).toBe('succeeded');
    // Started when a worker came free, ahead of the first tenant's older jobs.
    expect(await count(hog, 'pending')).toBeGreaterThan(30);

    // Within a tenant, jobs still run oldest first.
    const running = await hog.get('/api/jobs?status=running&page_size=10');
    const pending = await hog.get('/api/jobs?status=pending&page_size=200');
    const newestRunning = Math.max(...running.body.items.map((j: any) => j.id));
    const oldestPending = Math.min(...pending.body.items.map((j: any) => j.id));
    expect(oldestPending).toBeGreaterThan(newestRunning);
    for (const j of pending.body.items) await hog.post(`/api/jobs/${j.id}/cancel`);
  });
});
