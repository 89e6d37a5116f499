import type { Core } from './core.ts';

/** Rows deleted per statement, and statements per purge: a purge is short, the next one goes on. */
const BATCH = 500;
const BATCHES_PER_PURGE = 20;

/** How often a process running jobs purges: often enough for the retention, at most once a minute. */
export const purgeIntervalMs = (retentionSeconds: number) => Math.min(60_000, Math.max(1000, (retentionSeconds * 1000) / 2));

/**
 * Deletes what is older than `YUNJI_JOB_RETENTION` (0: keeps everything): finished jobs (their logs
 * and webhook deliveries go with them; a job whose parent is deleted keeps running, without the
 * link), and the finished webhook deliveries of jobs still kept. Scheduled and running jobs, and
 * deliveries still to be sent, are never deleted. Returns how many jobs it deleted.
 */
export async function purgeExpiredJobs(core: Core): Promise<number> {
  const retention = core.config.jobRetention;
  if (retention === 0) return 0;
  const cutoff = Date.now() - retention * 1000;
  let jobs = 0;
  for (let i = 0; i < BATCHES_PER_PURGE; i++) {
    const deleted = await core.db
      .deleteFrom('jobs')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('jobs')
          .select('id')
          .where('ended_at', '<', cutoff)
          .where('status', 'in', ['completed', 'failed', 'cancelled'])
          .limit(BATCH),
      )
      .executeTakeFirst();
    const n = Number(deleted.numDeletedRows);
    jobs += n;
    if (n < BATCH) break;
  }
  for (let i = 0; i < BATCHES_PER_PURGE; i++) {
    const deleted = await core.db
      .deleteFrom('job_deliveries')
      .where('id', 'in', (eb) =>
        eb
          .selectFrom('job_deliveries')
          .select('id')
          .where('created_at', '<', cutoff)
          .where('status', 'in', ['delivered', 'failed'])
          .limit(BATCH),
      )
      .executeTakeFirst();
    if (Number(deleted.numDeletedRows) < BATCH) break;
  }
  if (jobs > 0) core.log.info({ jobs }, 'jobs: finished jobs past their retention deleted');
  return jobs;
}
