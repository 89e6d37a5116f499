import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { sql } from 'kysely';
import type { Core } from './core.ts';
import { AppError } from '../lib/errors.ts';
import { PermanentJobError } from './actions.ts';
import { announce } from './announce.ts';
import { Completions } from './completions.ts';
import { fairCandidates } from './fairShare.ts';
import { OneAtATime } from './oneAtATime.ts';
import { CancelledError, RunContext } from './context.ts';
import { keepError, type Job, type JobEventType } from './models.ts';
import { purgeExpiredJobs, purgeIntervalMs } from './retention.ts';
import { runDueTriggers } from './scheduler.ts';
import { toJob, type JobRow } from './store.ts';
import { deliverDue } from './webhooks.ts';

// Serializes claims across PostgreSQL processes, so per-tenant and global caps hold exactly.
const CLAIM_LOCK = 0x59756e6a;

const WAKE_GATHER_MS = 5;

type StopReason = 'cancel' | 'lease' | 'shutdown';

interface Running {
  job: Job;
  /** This run's hold on the job (the row's `lease_owner` while the lease is the run's): every write of the run is fenced by it. */
  lease: string;
  controller: AbortController;
  reason?: StopReason;
  done: Promise<void>;
}

/** Delay before retry `attempts + 1`: 2 s, 4 s, 8 s … up to 5 minutes, ±25 % jitter. */
export const retryDelayMs = (attempts: number) => Math.round(Math.min(300_000, 2000 * 2 ** (attempts - 1)) * (0.75 + Math.random() * 0.5));

/**
 * Runs jobs in this process: claims due ones under a lease, heartbeats them, runs their action
 * with an AbortSignal, and records the outcome (completed, retried with backoff, failed or
 * cancelled). Also, in every process that runs jobs: expires other processes' stale leases, fires
 * interval triggers, sends webhooks and deletes finished jobs past their retention.
 */
export class Worker {
  readonly id = `${hostname()}:${process.pid}:${randomBytes(4).toString('hex')}`;
  /** Claims made so far: a claim's leases are `<id>/<claim number>`, so no two runs of a job share one. */
  private claims = 0;
  private readonly running = new Map<number, Running>();
  private stopped = false;
  private wakeUp: (() => void) | undefined;
  private woken = false;
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly offs: (() => void)[] = [];
  private loop: Promise<void> = Promise.resolve();
  private readonly completions: Completions;
  /** Heartbeats and recorded outcomes, which update the same rows, one at a time. */
  private readonly rowWrites = new OneAtATime();

  constructor(
    private readonly core: Core,
    private readonly concurrency = core.config.workers,
  ) {
    this.completions = new Completions(core, this.rowWrites);
  }

  private get leaseMs(): number {
    return this.core.config.jobLease * 1000;
  }

  start(): void {
    const { events } = this.core.jobs;
    this.offs.push(events.on('wake', () => this.wake()));
    this.offs.push(
      events.on('cancel', (jobId) => {
        const r = this.running.get(jobId);
        if (r) this.abort(r, 'cancel');
      }),
    );
    const every = (ms: number, task: () => Promise<unknown>, what: string) => {
      let busy = false;
      const t = setInterval(() => {
        if (busy || this.stopped) return;
        busy = true;
        task()
          .catch((err: unknown) => this.core.log.warn({ err }, `jobs: ${what} failed`))
          .finally(() => (busy = false));
      }, ms);
      t.unref();
      this.timers.push(t);
    };
    // Heartbeats well inside the lease, and often enough that a cancel noticed here (SQLite, or a
    // lost notification) stops the job within about a second.
    every(Math.min(1000, this.leaseMs / 3), () => this.heartbeat(), 'heartbeat');
    every(Math.max(1000, this.leaseMs / 4), () => this.reapExpired(), 'expiring stale leases');
    every(1000, () => runDueTriggers(this.core), 'interval triggers');
    every(250, () => deliverDue(this.core), 'webhook delivery');
    every(purgeIntervalMs(this.core.config.jobRetention), () => purgeExpiredJobs(this.core), 'purging finished jobs');
    this.loop = this.claimLoop();
  }

  private wake(): void {
    // Remembered when the loop is busy claiming, so no wake-up is lost.
    this.woken = true;
    this.wakeUp?.();
  }

  private async claimLoop(): Promise<void> {
    while (!this.stopped) {
      const free = this.concurrency - this.running.size;
      let claimed: [Job, string][] = [];
      if (free > 0) {
        try {
          claimed = await this.claim(free);
        } catch (err) {
          this.core.log.warn({ err }, 'jobs: claiming failed');
        }
      }
      for (const [job, lease] of claimed) this.start1(job, lease);
      // A full batch: more may be due. Otherwise wait for a job to end, a wake-up or the poll.
      if (claimed.length > 0 && claimed.length === free) continue;
      if (!this.woken) {
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, this.core.config.jobPoll);
          this.wakeUp = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        this.wakeUp = undefined;
      }
      // Wake-ups come in bursts (a job submitted, another ended): gathering them for a moment makes
      // one claim of many jobs instead of many claims of one.
      if (this.woken) await new Promise((r) => setTimeout(r, WAKE_GATHER_MS));
      this.woken = false;
    }
  }

  /** Takes up to `n` due jobs, within the per-tenant and global caps, shared fairly between tenants; each with the lease its run holds. */
  private async claim(n: number): Promise<[Job, string][]> {
    const { core } = this;
    const lease = `${this.id}/${++this.claims}`;
    const pg = core.dialect === 'postgres';
    const work = async (db: typeof core.db): Promise<JobRow[]> => {
      const now = Date.now();
      if (pg) await sql`select pg_advisory_xact_lock(${CLAIM_LOCK})`.execute(db);
      const busy = await db
        .selectFrom('jobs')
        .select(['tenant_id', (eb) => eb.fn.countAll<number>().as('n')])
        .where('status', '=', 'running')
        .groupBy('tenant_id')
        .execute();
      const runningOf = new Map(busy.map((b) => [b.tenant_id, Number(b.n)]));
      let room = n;
      if (core.config.globalJobConcurrency > 0) {
        const total = busy.reduce((s, b) => s + Number(b.n), 0);
        room = Math.min(room, core.config.globalJobConcurrency - total);
      }
      if (room <= 0) return [];
      const chosen = await fairCandidates(db, { now, room, running: runningOf, cap: core.config.tenantJobConcurrency, lockRows: pg });
      if (chosen.length === 0) return [];
      return db
        .updateTable('jobs')
        .set((eb) => ({
          status: 'running',
          lease_owner: lease,
          lease_expires_at: now + this.leaseMs,
          attempts: eb('attempts', '+', 1),
          started_at: eb.fn.coalesce('started_at', eb.val(now)),
          updated_at: now,
          sequence: eb('sequence', '+', 1),
        }))
        .where('id', 'in', chosen)
        .where('status', '=', 'scheduled')
        .returningAll()
        .execute();
    };
    // SQLite: one process writes at a time anyway, and the final update re-checks each row's status.
    const rows = pg ? await core.db.transaction().execute(work) : await work(core.db);
    return rows.sort((a, b) => a.start_at - b.start_at || a.id - b.id).map((row) => [toJob(row), lease]);
  }

  private start1(job: Job, lease: string): void {
    // A run of this job still here lost its lease (this process stalled past it): it stops, and its writes no longer apply.
    const stale = this.running.get(job.id);
    if (stale) this.abort(stale, 'lease');
    const controller = new AbortController();
    const entry: Running = { job, lease, controller, done: Promise.resolve() };
    this.running.set(job.id, entry);
    entry.done = this.execute(entry)
      .catch((err: unknown) => this.core.log.error({ err, jobId: job.id }, 'jobs: recording an outcome failed'))
      .finally(() => {
        if (this.running.get(job.id) === entry) this.running.delete(job.id);
        this.wake();
      });
  }

  private abort(r: Running, reason: StopReason): void {
    if (r.controller.signal.aborted) return;
    r.reason = reason;
    r.controller.abort(new CancelledError(reason === 'cancel' ? 'cancelled' : reason === 'lease' ? 'lease lost' : 'shutting down'));
  }

  private async execute(r: Running): Promise<void> {
    const { core } = this;
    const job = r.job;
    await announce(core, { type: 'begin', job });
    const ctx = new RunContext(core, job, r.controller.signal, r.lease);
    if (job.cancelRequested) this.abort(r, 'cancel');
    let result: unknown = null;
    let failure: unknown;
    try {
      await ctx.init();
      const action = core.jobs.actions.get(job.action);
      if (!action) throw new PermanentJobError(`this build has no action '${job.action}'`);
      result = (await action.run(ctx)) ?? null;
    } catch (err) {
      failure = err;
    }
    ctx.dispose();
    const reason = r.reason;
    if (failure === undefined && reason === undefined) {
      // The common case, written together with other jobs ending now.
      if (!(await this.completions.add(ctx, result)))
        core.log.warn({ jobId: job.id }, 'jobs: the job was taken over before its outcome was recorded');
      return;
    }
    await ctx.flush().catch(() => undefined);
    if (reason === 'lease') {
      core.log.warn({ jobId: job.id }, 'jobs: lease lost while running; another process owns the job now');
      return;
    }
    if (reason === 'shutdown') {
      // Not the job's fault: back to the queue without spending an attempt.
      await this.finish(ctx, 'retry', { status: 'scheduled', start_at: Date.now(), attempts: job.attempts - 1 });
      return;
    }
    if (reason === 'cancel') {
      await this.finish(ctx, 'cancel', { status: 'cancelled' });
      return;
    }
    if (failure === undefined) {
      await this.finish(ctx, 'end', { status: 'completed', result_json: JSON.stringify(result) });
      return;
    }
    const message = failure instanceof Error ? failure.message : String(failure);
    const code = failure instanceof AppError ? failure.kind : undefined;
    // A client's mistake (a missing package, a bad path) fails the same way every time; a backend may recover.
    const permanent =
      failure instanceof PermanentJobError ||
      (failure instanceof AppError && failure.kind !== 'backend_failed' && failure.kind !== 'unavailable');
    if (!permanent && job.attempts < job.maxAttempts) {
      core.log.info({ jobId: job.id, attempt: job.attempts, err: failure }, 'jobs: attempt failed; retrying');
      await this.finish(
        ctx,
        'retry',
        { status: 'scheduled', start_at: Date.now() + retryDelayMs(job.attempts) },
        `attempt ${job.attempts} failed: ${message}`,
      );
      return;
    }
    core.log.info({ jobId: job.id, attempts: job.attempts, err: failure }, 'jobs: failed');
    await this.finish(ctx, 'fail', { status: 'failed' }, message, code);
  }

  /** Records the outcome, if this run still holds the job's lease, and announces it. */
  private async finish(
    ctx: RunContext,
    event: JobEventType,
    set: { status: string; start_at?: number; attempts?: number; result_json?: string },
    error?: string,
    code?: string,
  ): Promise<void> {
    const now = Date.now();
    const terminal = set.status !== 'scheduled';
    const row = await this.core.db
      .updateTable('jobs')
      .set((eb) => ({
        ...set,
        ...ctx.errorState(error, code),
        stats_json: ctx.statsJson,
        ended_at: terminal ? now : null,
        updated_at: now,
        lease_owner: null,
        lease_expires_at: null,
        cancel_requested: 0,
        sequence: eb('sequence', '+', 1),
      }))
      .where('id', '=', ctx.job.id)
      .where('lease_owner', '=', ctx.lease)
      .where('status', '=', 'running')
      .returningAll()
      .executeTakeFirst();
    ctx.dispose();
    if (!row) {
      this.core.log.warn({ jobId: ctx.job.id }, 'jobs: the job was taken over before its outcome was recorded');
      return;
    }
    await announce(this.core, { type: event, job: toJob(row) });
    if (set.status === 'scheduled') await this.core.jobs.events.wake();
  }

  /** Extends the leases of this process's runs; stops those cancelled elsewhere or whose lease was lost. */
  private async heartbeat(): Promise<void> {
    const runs = [...this.running];
    if (runs.length === 0) return;
    const ids = runs.map(([id]) => id);
    // A job's row carries at most one of these, the one of its run here (a claim of the job replaces the run it had).
    const leases = [...new Set(runs.map(([, r]) => r.lease))];
    const rows = await this.rowWrites.run(() =>
      this.core.db
        .updateTable('jobs')
        .set({ lease_expires_at: Date.now() + this.leaseMs })
        .where('id', 'in', ids)
        .where('lease_owner', 'in', leases)
        .where('status', '=', 'running')
        .returning(['id', 'cancel_requested'])
        .execute(),
    );
    const held = new Map(rows.map((r) => [r.id, r.cancel_requested]));
    for (const [id, r] of runs) {
      // A run that ended meanwhile, or was replaced by a new claim of its job (which this query did not see), is left alone.
      if (this.running.get(id) !== r) continue;
      if (!held.has(id)) this.abort(r, 'lease');
      else if (held.get(id) === 1) this.abort(r, 'cancel');
    }
  }

  /**
   * Jobs whose worker stopped heartbeating (it died or hung): retried if attempts remain,
   * otherwise failed; cancelled if a cancel was asked for. Never left running.
   */
  private async reapExpired(): Promise<void> {
    const { core } = this;
    const now = Date.now();
    const stale = await core.db
      .selectFrom('jobs')
      .selectAll()
      .where('status', '=', 'running')
      .where('lease_expires_at', '<', now)
      .limit(100)
      .execute();
    for (const s of stale) {
      const job = toJob(s);
      const status = job.cancelRequested ? 'cancelled' : job.attempts < job.maxAttempts ? 'scheduled' : 'failed';
      const errors = [...job.errors];
      keepError(errors, { message: `attempt ${job.attempts}: the process running it stopped responding (lease expired)`, at: now });
      const row = await core.db
        .updateTable('jobs')
        .set((eb) => ({
          status,
          start_at: status === 'scheduled' ? now : job.startAt,
          ended_at: status === 'scheduled' ? null : now,
          errors_json: JSON.stringify(errors),
          error_count: job.errorCount + 1,
          lease_owner: null,
          lease_expires_at: null,
          cancel_requested: 0,
          updated_at: now,
          sequence: eb('sequence', '+', 1),
        }))
        .where('id', '=', job.id)
        .where('status', '=', 'running')
        .where('lease_expires_at', '<', now)
        .returningAll()
        .executeTakeFirst();
      if (!row) continue;
      core.log.warn({ jobId: job.id, status }, 'jobs: lease expired');
      await announce(core, { type: status === 'scheduled' ? 'retry' : status === 'failed' ? 'fail' : 'cancel', job: toJob(row) });
      if (status === 'scheduled') await core.jobs.events.wake();
    }
  }

  /**
   * Stops claiming; running jobs get until `graceMs` to finish, then are stopped and go back to
   * the queue for another process (their attempt not counted).
   */
  async stop(graceMs: number): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.wake();
    for (const t of this.timers) clearInterval(t);
    for (const off of this.offs) off();
    await this.loop;
    const all = () => Promise.all([...this.running.values()].map((r) => r.done));
    const timeout = new Promise<'timeout'>((res) => setTimeout(() => res('timeout'), graceMs).unref());
    if ((await Promise.race([all(), timeout])) === 'timeout') {
      for (const r of this.running.values()) this.abort(r, 'shutdown');
      await all();
    }
  }

  /** Jobs running in this process now. */
  get active(): number {
    return this.running.size;
  }
}
