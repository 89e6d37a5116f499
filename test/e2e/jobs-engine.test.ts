import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually, queryDb, startWorker, type RunningWorker } from '../helpers/workers.ts';

const kinds = await databaseKinds();

type Client = ReturnType<typeof client>;

async function jobOf(c: Client, id: number) {
  const res = await c.get(`/api/jobs/${id}`);
  expect(res.status).toBe(200);
  return res.body;
}

function untilStatus(c: Client, id: number, statuses: string[], timeoutMs = 30_000) {
  return eventually(
    async () => {
      const job = await jobOf(c, id);
      return statuses.includes(job.status) ? job : undefined;
    },
    `job ${id} to be ${statuses.join(' or ')}`,
    timeoutMs,
  );
}

/** The job engine through /api/jobs on one server process: retries, cancels, keys, leases, triggers. */
describe.each(kinds)('job engine on %s', (kind) => {
  let server: RunningServer;
  let api: Client;

  beforeAll(async () => {
    // A short lease, so a killed process's job is taken over within seconds.
    server = await startServer(kind, { env: { YUNJI_JOB_LEASE: '3', YUNJI_JOB_POLL: '200', YUNJI_MIN_TRIGGER_INTERVAL: '1' } });
    api = client(server.url, await login(server.url));
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('runs a job, retrying failed attempts with their errors kept', async () => {
    const created = await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 1 } });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ job_type: 'noop', status: 'pending', attempts: 0, max_attempts: 3, trigger_type: 'manual' });
    const done = await untilStatus(api, created.body.id, ['succeeded', 'failed']);
    expect(done, JSON.stringify(done.errors)).toMatchObject({ status: 'succeeded', attempts: 2, result: { attempts: 2 }, error_count: 1 });
    expect(done.errors[0].message).toMatch(/attempt 1 failed/);
    const logs = (await api.get(`/api/jobs/${done.id}/logs`)).body.items.map((l: { message: string }) => l.message);
    expect(logs).toEqual(['attempt 1', 'attempt 2']);
  });

  it('fails a job whose attempts run out', async () => {
    const created = await api.post('/api/jobs', { action: 'noop', params: { failAttempts: 5 } });
    const done = await untilStatus(api, created.body.id, ['succeeded', 'failed'], 60_000);
    expect(done).toMatchObject({ status: 'failed', attempts: 3, error_count: 3 });
    expect(done.error_message).toMatch(/failing attempt 3/);
    expect(done.buttons.map((b: { customId: string }) => b.customId)).toEqual([`yunji::rerun::${done.id}`, `yunji::retry::${done.id}`]);
  });

  it('cancels a scheduled job at once, a running one through its signal, and refuses a finished one', async () => {
    const later = await api.post('/api/jobs', { action: 'noop', start_at: new Date(Date.now() + 3600_000).toISOString() });
    const cancelled = await api.post(`/api/jobs/${later.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body).toMatchObject({ status: 'cancelled', attempts: 0 });

    const long = await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 } });
    await untilStatus(api, long.body.id, ['running']);
    const stopped = await api.post(`/api/jobs/${long.body.id}/cancel`);
    expect(stopped.status).toBe(200);
    expect(stopped.body.status).toBe('cancelled');
    expect(stopped.body.ended_at).not.toBeNull();

    const again = await api.post(`/api/jobs/${long.body.id}/cancel`);
    expect(again.status).toBe(409);
    expect(again.body.message).toMatch(/already cancelled/);
  });

  it('allows one unfinished job per concurrency key', async () => {
    const first = await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 }, concurrency_key: 'nightly' });
    expect(first.status).toBe(201);
    const second = await api.post('/api/jobs', { action: 'noop', concurrency_key: 'nightly' });
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ code: 'conflict' });
    expect(second.body.message).toContain(`job ${first.body.id}`);
    await api.post(`/api/jobs/${first.body.id}/cancel`);
    // The key is free once the job has ended (the cancel answer may come before, under load).
    await untilStatus(api, first.body.id, ['cancelled']);
    const third = await api.post('/api/jobs', { action: 'noop', concurrency_key: 'nightly' });
    expect(third.status).toBe(201);
  });

  it('submits sent together keep their own outcome: one job per key, every other job created with the id it answered', async () => {
    // Sent at once, these reach the database as one multi-row insert, which the taken key fails whole.
    const keyed = Array.from({ length: 6 }, () =>
      api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 }, concurrency_key: 'together' }),
    );
    const plain = Array.from({ length: 10 }, (_, i) => api.post('/api/jobs', { action: 'noop', reference_id: `plain-${i}` }));
    const [keyedAnswers, plainAnswers] = await Promise.all([Promise.all(keyed), Promise.all(plain)]);
    expect(keyedAnswers.map((a) => a.status).sort()).toEqual([201, 409, 409, 409, 409, 409]);
    expect(plainAnswers.map((a) => a.status)).toEqual(Array(10).fill(201));
    // Each answer is the job stored under its id.
    for (const [i, a] of plainAnswers.entries())
      expect((await api.get(`/api/jobs/${a.body.id}`)).body).toMatchObject({ id: a.body.id, reference_id: `plain-${i}` });
    const winner = keyedAnswers.find((a) => a.status === 201)!.body;
    await api.post(`/api/jobs/${winner.id}/cancel`);
    await untilStatus(api, winner.id, ['cancelled']);
  });

  it('lists jobs newest first with filters, and refuses bad input', async () => {
    const page = await api.get('/api/jobs?page=1&page_size=2&status=cancelled');
    expect(page.status).toBe(200);
    expect(page.body.items).toHaveLength(2);
    expect(page.body.items[0].id).toBeGreaterThan(page.body.items[1].id);
    expect(page.body.items.every((j: { status: string }) => j.status === 'cancelled')).toBe(true);
    expect(page.body.meta).toMatchObject({ page: 1, page_size: 2, total: expect.any(Number) });
    expect((await api.get('/api/jobs?status=bogus')).status).toBe(400);
    expect((await api.get('/api/jobs?page_size=10000')).status).toBe(400);
    expect((await api.get('/api/jobs/abc')).status).toBe(400);
    expect((await api.get('/api/jobs/-5')).status).toBe(400);
    expect((await api.get('/api/jobs/999999999')).status).toBe(404);
    expect((await api.post('/api/jobs', { action: 'noop', params: { ms: 'soon' } })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'noop', params: { ms: 1e12 } })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'rm -rf' })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'noop', extra: 1 })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'noop', notify_hook: 'http://169.254.169.254/latest/meta-data' })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'noop', notify_hook: 'file:///etc/passwd' })).status).toBe(400);
    expect((await api.post('/api/jobs', { action: 'noop', start_at: 'tomorrow' })).status).toBe(400);
  });

  it('runs an interval trigger once per tick, and stops when it is deleted', async () => {
    const trigger = await api.post('/api/jobs/triggers', { action: 'noop', interval: 1, run_now: true });
    expect(trigger.status).toBe(201);
    await new Promise((r) => setTimeout(r, 3500));
    expect((await api.delete(`/api/jobs/triggers/${trigger.body.id}`)).status).toBe(204);
    const made = await queryDb<{ created_at: number | string }>(
      server,
      `select created_at from jobs where trigger_id = ${trigger.body.id} order by created_at`,
    );
    expect(made.length).toBeGreaterThanOrEqual(3);
    expect(made.length).toBeLessThanOrEqual(5);
    // One job per tick: k jobs need k - 1 ticks between the first and the last (a tick made late by a
    // busy machine may sit closer to the next one, so gaps between jobs prove nothing; a second job
    // for the same tick would push the count past the ticks its span holds).
    const times = made.map((r) => Number(r.created_at));
    expect(made.length).toBeLessThanOrEqual(Math.ceil((times.at(-1)! - times[0]!) / 1000) + 1);
    expect((await api.post('/api/jobs/triggers', { action: 'noop', interval: 0 })).status).toBe(400);
  });

  it('kill -9 mid-job: after restart the job is run again and completes, once', async () => {
    const job = await api.post('/api/jobs', { action: 'noop', params: { ms: 4000 } });
    // Running, and its first run's log line saved.
    await eventually(
      async () => ((await api.get(`/api/jobs/${job.body.id}/logs`)).body.items.length === 1 ? true : undefined),
      'the first run to start',
    );
    server.proc.kill('SIGKILL');
    await new Promise((r) => server.proc.once('exit', r));
    const restarted = await startServer(kind, {
      dataDir: server.dataDir,
      databaseUrl: server.databaseUrl,
      env: { YUNJI_JOB_LEASE: '3', YUNJI_JOB_POLL: '200', YUNJI_MIN_TRIGGER_INTERVAL: '1' },
    });
    const old = server;
    server = { ...restarted, dispose: async () => (await restarted.dispose(), await old.dispose()) };
    api = client(server.url, await login(server.url));
    const done = await untilStatus(api, job.body.id, ['succeeded', 'failed'], 60_000);
    expect(done.status).toBe('succeeded');
    expect(done.attempts).toBe(2);
    expect(done.errors.map((e: { message: string }) => e.message)).toEqual([expect.stringMatching(/lease expired/)]);
    const runs = await queryDb<{ n: number | string }>(server, `select count(*) as n from job_logs where job_id = ${job.body.id}`);
    expect(Number(runs[0]!.n)).toBe(2);
  });
});

const pgOnly = kinds.includes('postgres') ? ['postgres' as const] : [];

/** Several processes on one PostgreSQL database. */
describe.each(pgOnly)('job engine across processes on %s', (kind) => {
  let server: RunningServer;
  let api: Client;
  const workers: RunningWorker[] = [];

  beforeAll(async () => {
    // The API process runs no jobs: everything runs in the worker processes.
    server = await startServer(kind, { env: { YUNJI_WORKERS: '0', YUNJI_JOB_LEASE: '3', YUNJI_MIN_TRIGGER_INTERVAL: '1' } });
    api = client(server.url, await login(server.url));
    const env = { YUNJI_WORKERS: '16', YUNJI_JOB_LEASE: '3', YUNJI_TENANT_JOB_CONCURRENCY: '64' };
    workers.push(await startWorker(server, env), await startWorker(server, env));
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await server?.dispose();
  });

  it('runs 2,000 jobs over two processes: none lost, none run twice', async () => {
    const before = await queryDb<{ n: string }>(server, `select coalesce(max(id), 0) as n from jobs`);
    const first = Number(before[0]!.n) + 1;
    const total = 2000;
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < total) {
          next++;
          const res = await api.post('/api/jobs', { action: 'noop' });
          expect(res.status).toBe(201);
        }
      }),
    );
    await eventually(
      async () => {
        const [row] = await queryDb<{ n: string }>(server, `select count(*) as n from jobs where id >= ${first} and status = 'completed'`);
        return Number(row!.n) === total ? true : undefined;
      },
      '2,000 jobs to complete',
      120_000,
    );
    const [runs] = await queryDb<{ runs: string; jobs: string; attempts: string }>(
      server,
      `select count(*) as runs, count(distinct l.job_id) as jobs, (select sum(attempts) from jobs where id >= ${first}) as attempts from job_logs l where l.job_id >= ${first}`,
    );
    expect(Number(runs!.jobs)).toBe(total);
    expect(Number(runs!.runs)).toBe(total);
    expect(Number(runs!.attempts)).toBe(total);
    // Both processes took part.
    expect(workers.every((w) => /job worker started/.test(w.output()))).toBe(true);
  });

  it('cancel from the API process stops a job running in a worker process', async () => {
    const job = await api.post('/api/jobs', { action: 'noop', params: { ms: 600_000 } });
    await untilStatus(api, job.body.id, ['running']);
    const cancelled = await api.post(`/api/jobs/${job.body.id}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
  });

  it('kill -9 a worker mid-job: the other worker finishes it, once', async () => {
    const job = await api.post('/api/jobs', { action: 'noop', params: { ms: 3000 } });
    await eventually(
      async () => ((await api.get(`/api/jobs/${job.body.id}/logs`)).body.items.length === 1 ? true : undefined),
      'the first run to start',
    );
    expect((await jobOf(api, job.body.id)).attempts).toBe(1);
    const [owner] = await queryDb<{ lease_owner: string }>(server, `select lease_owner from jobs where id = ${job.body.id}`);
    const pid = Number(owner!.lease_owner.split(':')[1]);
    const victim = workers.find((w) => w.proc.pid === pid)!;
    expect(victim).toBeDefined();
    await victim.kill9();
    const done = await untilStatus(api, job.body.id, ['succeeded', 'failed'], 60_000);
    expect(done).toMatchObject({ status: 'succeeded', attempts: 2 });
    const [runs] = await queryDb<{ n: string }>(server, `select count(*) as n from job_logs where job_id = ${job.body.id}`);
    expect(Number(runs!.n)).toBe(2);
    workers.splice(workers.indexOf(victim), 1);
  });

  it('an interval trigger makes one job per tick with two processes looking', async () => {
    workers.push(await startWorker(server, { YUNJI_WORKERS: '4', YUNJI_JOB_LEASE: '3' }));
    const trigger = await api.post('/api/jobs/triggers', { action: 'noop', interval: 1, run_now: true });
    await new Promise((r) => setTimeout(r, 4500));
    await api.delete(`/api/jobs/triggers/${trigger.body.id}`);
    const made = await queryDb<{ created_at: string }>(
      server,
      `select created_at from jobs where trigger_id = ${trigger.body.id} order by created_at`,
    );
    expect(made.length).toBeGreaterThanOrEqual(4);
    expect(made.length).toBeLessThanOrEqual(6);
    // One job per tick: k jobs need k - 1 ticks between the first and the last (a tick made late by a
    // busy machine may sit closer to the next one, so gaps between jobs prove nothing; a second job
    // for the same tick would push the count past the ticks its span holds).
    const times = made.map((r) => Number(r.created_at));
    expect(made.length).toBeLessThanOrEqual(Math.ceil((times.at(-1)! - times[0]!) / 1000) + 1);
  });
});
