import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually, queryDb, startWorker, type RunningWorker } from '../helpers/workers.ts';
import type { Api } from '../helpers/sync.ts';

/**
 * A run whose lease was lost (its process stalled past the lease, and the job was handed back to
 * the queue) must not record anything over a later run of the same job, even when the later run
 * is the same worker's: a stalled worker that wakes up re-claims the job before its next
 * heartbeat, and the old run, still going, then finishes too. Only the newest run's outcome counts.
 *
 * The API process runs one job slot, kept busy by a long job, so it only reaps the stalled
 * worker's lease and cannot take the job itself; the worker (two slots, a short poll) takes it
 * back when it wakes. That claim must come before the worker's first heartbeat after waking: a
 * heartbeat that still found the job queued would stop the old run, and the fault would not show.
 * - PostgreSQL, where a claim takes several round trips and a heartbeat one: the worker is stopped
 *   while a heartbeat waits on the job's row (which the test holds, and lets go once the worker
 *   is stopped). On waking, that heartbeat's answer is still unread, so the overdue one is
 *   skipped; the next comes a second later, the claim's few round trips long before.
 * - SQLite: stopped at any point. On waking the 10 ms poll usually runs before the overdue
 *   heartbeat, and a claim on SQLite runs to its end in that turn; usually, not always.
 */
const kinds = await databaseKinds();
const LEASE = { YUNJI_JOB_LEASE: '3', YUNJI_JOB_POLL: '10' };

describe.each(kinds)('a lost lease fences the old run on %s', (kind) => {
  let server: RunningServer;
  let worker: RunningWorker | undefined;
  let api: Api;

  const job = async (id: number) => {
    const res = await api.get(`/api/jobs/${id}`);
    expect(res.status, res.text).toBe(200);
    return res.body;
  };

  beforeAll(async () => {
    server = await startServer(kind, { env: { ...LEASE, YUNJI_WORKERS: '1' } });
    api = client(server.url, await login(server.url));
    // The API process's only slot is busy for the whole file: it reaps, it does not claim.
    const blocker = await api.post('/api/jobs', { action: 'noop', params: { ms: 3_600_000 } });
    expect(blocker.status, blocker.text).toBe(201);
    await eventually(async () => ((await job(blocker.body.id)).status === 'running' ? true : undefined), 'the blocker to run');
    worker = await startWorker(server, { ...LEASE, YUNJI_WORKERS: '2' });
  });
  afterAll(async () => {
    worker?.proc.kill('SIGCONT');
    await worker?.stop();
    await server?.dispose();
  });

  it("the old run of a job re-claimed by the same worker does not record its outcome over the new run's", async () => {
    const w = worker!;
    const submitted = await api.post('/api/jobs', { action: 'noop', params: { ms: 8000 } });
    expect(submitted.status, submitted.text).toBe(201);
    const id = submitted.body.id as number;
    // The first run has started (its first log line is written) in the worker.
    await eventually(
      async () => ((await api.get(`/api/jobs/${id}/logs`)).body.items.length === 1 ? true : undefined),
      'the first run to start',
    );
    const [held] = await queryDb<{ lease_owner: string }>(server, `select lease_owner from jobs where id = ${id}`);
    expect(Number(held!.lease_owner.split(':')[1])).toBe(w.proc.pid);

    // The worker stalls past its lease; the API process hands the job back to the queue.
    if (kind === 'postgres') await stopDuringHeartbeat(server, w, id);
    else w.proc.kill('SIGSTOP');
    try {
      await eventually(
        async () => {
          const j = await job(id);
          return j.status === 'pending' || j.status === 'scheduled' ? true : undefined;
        },
        'the stale lease to be reaped',
        30_000,
      );
    } finally {
      w.proc.kill('SIGCONT');
    }

    const done = await eventually(
      async () => {
        const j = await job(id);
        return ['succeeded', 'failed', 'cancelled'].includes(j.status) ? j : undefined;
      },
      'the job to end',
      60_000,
    );
    // The outcome is the newest run's (a busy machine may make a later lease lapse too, so the
    // attempts are counted, not assumed): it reports the attempt the job counts, and it started
    // from the job as the reapers left it, so it keeps their note on each earlier attempt. An
    // outcome recorded by the first run would carry neither.
    expect(done.status, JSON.stringify(done)).toBe('succeeded');
    expect(done.attempts).toBeGreaterThanOrEqual(2);
    expect(done.result, JSON.stringify(done)).toEqual({ attempts: done.attempts });
    expect(done.error_count, JSON.stringify(done)).toBe(done.attempts - 1);
    expect(done.errors[0], JSON.stringify(done)).toMatchObject({ message: expect.stringMatching(/^attempt 1: .*lease expired/) });
    // And no run wrote a log line twice, or one for an attempt that never was.
    const logs = ((await api.get(`/api/jobs/${id}/logs`)).body.items as { message: string }[]).map((l) => l.message);
    expect(new Set(logs).size).toBe(logs.length);
    for (const line of logs) expect(Number(/^attempt (\d+)$/.exec(line)?.[1])).toBeLessThanOrEqual(done.attempts);
  });
});

/** PostgreSQL: stops the worker while its heartbeat waits on the row of job `id`, then lets the heartbeat through. */
async function stopDuringHeartbeat(server: RunningServer, w: RunningWorker, id: number): Promise<void> {
  const holder = new pg.Client({ connectionString: server.databaseUrl });
  await holder.connect();
  try {
    await holder.query('begin');
    await holder.query(`select id from jobs where id = ${id} for share`);
    await eventually(
      async () =>
        (
          await queryDb(
            server,
            `select pid from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock' and query like 'update "jobs" set "lease_expires_at"%'`,
          )
        ).length > 0
          ? true
          : undefined,
      'a heartbeat to wait on the job',
    );
    w.proc.kill('SIGSTOP');
    await holder.query('rollback');
  } finally {
    await holder.end();
  }
}
