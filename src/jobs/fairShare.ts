import { sql } from 'kysely';
import type { Db } from '../db/index.ts';

/**
 * Which due jobs a claim takes, shared fairly between tenants: one job at a time goes to the tenant
 * with the fewest jobs running (counting those just taken), the oldest due job of each tenant first,
 * so a tenant with a thousand queued jobs cannot hold every worker while another tenant waits.
 * Within a tenant, jobs run in order (start time, then id).
 */
export async function fairCandidates(
  db: Db,
  opts: {
    now: number;
    /** How many jobs to take at most. */
    room: number;
    /** Jobs running per tenant now. */
    running: Map<number, number>;
    /** Most jobs of one tenant running at once. */
    cap: number;
    /** PostgreSQL: lock the rows read (`FOR UPDATE SKIP LOCKED`). */
    lockRows: boolean;
  },
): Promise<number[]> {
  const { now, room, running, cap } = opts;
  const full = new Set([...running].filter(([, n]) => n >= cap).map(([tenant]) => tenant));
  // Each tenant with a scheduled job, found by one index probe per tenant (the index on status,
  // tenant, start), and its oldest due job's time: the cost grows with the number of tenants
  // waiting, not with how many jobs they queued.
  const { rows } = await sql<{ tenant_id: number; first: number | string | null }>`
    with recursive waiting(tenant_id) as (
      select (select tenant_id from jobs where status = 'scheduled' order by tenant_id limit 1)
      union all
      select (select j.tenant_id from jobs j where j.status = 'scheduled' and j.tenant_id > w.tenant_id order by j.tenant_id limit 1)
      from waiting w where w.tenant_id is not null
    )
    select tenant_id, (select min(start_at) from jobs where status = 'scheduled' and tenant_id = waiting.tenant_id and start_at <= ${now}) as first
    from waiting where tenant_id is not null`.execute(db);
  const tenants = rows
    .filter((t) => t.first !== null && !full.has(t.tenant_id))
    .map((t) => ({ id: t.tenant_id, first: Number(t.first), running: running.get(t.tenant_id) ?? 0 }));
  // The `room` tenants served first (fewest running, then the longest waiting) are all that can get a job.
  tenants.sort((a, b) => a.running - b.running || a.first - b.first || a.id - b.id);
  const queues: { running: number; jobs: { id: number; start_at: number }[] }[] = [];
  for (const t of tenants.slice(0, room)) {
    const q = db
      .selectFrom('jobs')
      .select(['id', 'start_at'])
      .where('tenant_id', '=', t.id)
      .where('status', '=', 'scheduled')
      .where('start_at', '<=', now)
      .orderBy('start_at')
      .orderBy('id')
      .limit(Math.min(room, cap - t.running));
    queues.push({ running: t.running, jobs: await (opts.lockRows ? q.forUpdate().skipLocked() : q).execute() });
  }
  const chosen: number[] = [];
  while (chosen.length < room) {
    let next: (typeof queues)[number] | undefined;
    for (const q of queues) {
      const head = q.jobs[0];
      if (head === undefined || q.running >= cap) continue;
      const best = next?.jobs[0];
      if (
        !next ||
        !best ||
        q.running < next.running ||
        (q.running === next.running && (head.start_at < best.start_at || (head.start_at === best.start_at && head.id < best.id)))
      )
        next = q;
    }
    if (!next) break;
    chosen.push(next.jobs.shift()!.id);
    next.running++;
  }
  return chosen;
}
