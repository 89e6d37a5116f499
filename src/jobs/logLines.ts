import { sql } from 'kysely';
import type { Core } from './core.ts';

/** A numbered log line of one run, with the lease the run holds (see worker.ts). */
export interface RunLine {
  job_id: number;
  line: number;
  level: string;
  message: string;
  at: number;
  lease: string;
}

/**
 * Inserts runs' log lines, each only while its job is running under that run's lease: a run that
 * lost its lease (its process stalled past it) adds nothing to the log of the job's next run. One
 * statement whatever the number of lines or jobs; returns how many lines were written.
 */
export async function insertRunLines(core: Core, lines: RunLine[]): Promise<number> {
  if (lines.length === 0) return 0;
  const values = JSON.stringify(lines);
  const result =
    core.dialect === 'postgres'
      ? await sql`insert into job_logs (job_id, line, level, message, at)
          select v.job_id, v.line, v.level, v.message, v.at
          from json_to_recordset(${values}::json) as v(job_id bigint, line integer, level text, message text, at bigint, lease text)
          where exists (select 1 from jobs j where j.id = v.job_id and j.lease_owner = v.lease and j.status = 'running')`.execute(core.db)
      : await sql`insert into job_logs (job_id, line, level, message, at)
          select json_extract(value, '$.job_id'), json_extract(value, '$.line'), json_extract(value, '$.level'), json_extract(value, '$.message'), json_extract(value, '$.at')
          from json_each(${values})
          where exists (select 1 from jobs j where j.id = json_extract(value, '$.job_id') and j.lease_owner = json_extract(value, '$.lease') and j.status = 'running')`.execute(
          core.db,
        );
  return Number(result.numAffectedRows ?? 0);
}
