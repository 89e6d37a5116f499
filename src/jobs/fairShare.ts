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
  const full = [...running].filter(([, n]) => n >= cap).map(([tenant]) => tenant);
  let waiting = db
    .selectFrom('jobs')
    .select(['tenant_id', (eb) => eb.fn.min('start_at').as('first')])
    .where('status', '=', 'scheduled')
    .where('start_at', '<=', now);
  if (full.length > 0) waiting = waiting.where('tenant_id', 'not in', full);
  const tenants = (await waiting.groupBy('tenant_id').execute()).map((t) => ({ id: t.tenant_id, first: Number(t.first), running: running.get(t.tenant_id) ?? 0 }));
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
      if (!next || !best || q.running < next.running || (q.running === next.running && (head.start_at < best.start_at || (head.start_at === best.start_at && head.id < best.id)))) next = q;
    }
    if (!next) break;
    chosen.push(next.jobs.shift()!.id);
    next.running++;
  }
  return chosen;
}
