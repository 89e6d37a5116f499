import { sql } from 'kysely';
import { TurnBatch } from '../lib/turnBatch.ts';
import type { Core } from './core.ts';
import { announce } from './announce.ts';
import type { RunContext } from './context.ts';
import { insertRunLines } from './logLines.ts';
import type { OneAtATime } from './oneAtATime.ts';
import { toJob, type JobRow } from './store.ts';

interface Pending {
  ctx: RunContext;
  result: unknown;
}

/** Completions written together at most; a bigger burst makes several statements. */
const MAX_BATCH = 200;

/**
 * Records completed jobs of one worker in batches: the jobs that end in the same turn of the event
 * loop get one insert for their log lines and one update for their outcomes (on PostgreSQL one
 * statement for both), instead of two statements each. Each job's row (and log) is still only
 * written while the run holds its lease.
 */
export class Completions {
  private readonly batch: TurnBatch<Pending, boolean>;

  constructor(
    private readonly core: Core,
    /** Shared with the worker's heartbeats (see OneAtATime). */
    private readonly rowWrites: OneAtATime,
  ) {
    this.batch = new TurnBatch(
      async (batch) => {
        const recorded = await this.write(batch);
        return batch.map((p) => recorded.has(p.ctx.job.id));
      },
      {
        max: MAX_BATCH,
        // A batch can fail as a whole where one job alone would not: each is recorded alone before
        // its job is left to its lease.
        onBatchFailed: (err, jobs) => {
          if (jobs > 1) core.log.warn({ err, jobs }, 'jobs: recording a batch of completions failed; recording each alone');
        },
      },
    );
  }

  /** Resolves once written and announced: true, or false when the run no longer held the job's lease. */
  add(ctx: RunContext, result: unknown): Promise<boolean> {
    return this.batch.submit({ ctx, result });
  }

  private async write(batch: Pending[]): Promise<Set<number>> {
    const { core } = this;
    const lines = (await Promise.all(batch.map((p) => p.ctx.finalLines()))).flat();
    const now = Date.now();
    const values = JSON.stringify(
      batch.map((p) => {
        const { errors_json, error_count } = p.ctx.errorState();
        return {
          id: p.ctx.job.id,
          lease: p.ctx.lease,
          result: JSON.stringify(p.result),
          stats: p.ctx.statsJson,
          errors: errors_json,
          error_count,
        };
      }),
    );
    const set = sql`status = 'completed', result_json = v.result, stats_json = v.stats, errors_json = v.errors, error_count = v.error_count,
      ended_at = ${now}, updated_at = ${now}, lease_owner = null, lease_expires_at = null, cancel_requested = 0`;
    let rows: JobRow[];
    if (core.dialect === 'postgres') {
      // One statement: the outcomes of the runs that still hold their leases, and those runs' lines.
      ({ rows } = await this.rowWrites.run(() =>
        sql<JobRow>`with done as (
            update jobs as j set ${set}, sequence = j.sequence + 1
            from json_to_recordset(${values}::json) as v(id bigint, lease text, result text, stats text, errors text, error_count integer)
            where j.id = v.id and j.lease_owner = v.lease and j.status = 'running'
            returning j.*
          ), logged as (
            insert into job_logs (job_id, line, level, message, at)
            select l.job_id, l.line, l.level, l.message, l.at
            from json_to_recordset(${JSON.stringify(lines)}::json) as l(job_id bigint, line integer, level text, message text, at bigint)
            where l.job_id in (select id from done)
          )
          select * from done`.execute(core.db),
      ));
    } else {
      await insertRunLines(core, lines);
      ({ rows } = await this.rowWrites.run(() =>
        sql<JobRow>`update jobs set ${set}, sequence = jobs.sequence + 1
            from (select json_extract(value, '$.id') as id, json_extract(value, '$.lease') as lease, json_extract(value, '$.result') as result,
                         json_extract(value, '$.stats') as stats, json_extract(value, '$.errors') as errors, json_extract(value, '$.error_count') as error_count
                  from json_each(${values})) as v
            where jobs.id = v.id and jobs.lease_owner = v.lease and jobs.status = 'running'
            returning *`.execute(core.db),
      ));
    }
    const byId = new Map(batch.map((p) => [p.ctx.job.id, p.ctx]));
    // Announced in one turn, in order, so the whole batch's notifications go in one pg_notify; the
    // lines of a run that no longer held its lease were not written.
    const recorded = new Set(rows.map((r) => r.id));
    await Promise.all([
      ...lines
        .filter((line) => recorded.has(line.job_id))
        .map((line) =>
          announce(core, {
            type: 'log',
            job: byId.get(line.job_id)!.job,
            line: { level: line.level as 'info', message: line.message, at: line.at },
          }),
        ),
      ...rows.map((row) => announce(core, { type: 'end', job: toJob(row) })),
    ]);
    return recorded;
  }
}
