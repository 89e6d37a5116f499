import type { Core } from './core.ts';
import type { JobContext } from './actions.ts';
import { announce } from './announce.ts';
import { insertRunLines, type RunLine } from './logLines.ts';
import { keepError, type Job, type JobError, type JobLogLine, type JobProgress } from './models.ts';
import { toJob } from './store.ts';

/** Progress is saved (and announced) at most this often; the last report is always saved. */
const FLUSH_MS = 250;
/** Log lines kept per job; later ones are dropped (and that is said once). */
const MAX_LOG_LINES = 10_000;

export class CancelledError extends Error {
  override name = 'CancelledError';
}

/**
 * A running job's reporting: progress, stats, per-item errors and log lines are buffered and
 * written together, so a handler may report on every file without a write per call.
 */
export class RunContext implements JobContext {
  private pendingProgress: JobProgress | undefined;
  private stats_: Record<string, number> | null;
  private errors: JobError[];
  private errorCount: number;
  private lines: JobLogLine[] = [];
  private nextLine = 1;
  private dirty = false;
  /** Stats or errors changed since the last write (log lines alone need no update of the job). */
  private stateChanged = false;
  private timer: NodeJS.Timeout | undefined;
  private flushing: Promise<void> = Promise.resolve();

  constructor(
    readonly core: Core,
    public job: Job,
    readonly signal: AbortSignal,
    /** The lease this run holds: its writes apply only while the job's row still carries it. */
    readonly lease: string,
  ) {
    this.stats_ = job.stats;
    this.errors = [...job.errors];
    this.errorCount = job.errorCount;
  }

  get params(): unknown {
    return this.job.params;
  }

  /** Continues the log numbering of earlier attempts. */
  async init(): Promise<void> {
    if (this.job.attempts <= 1) return;
    const row = await this.core.db
      .selectFrom('job_logs')
      .select((eb) => eb.fn.max('line').as('last'))
      .where('job_id', '=', this.job.id)
      .executeTakeFirst();
    this.nextLine = Number(row?.last ?? 0) + 1;
  }

  progress(current: number, total: number, info = ''): void {
    this.pendingProgress = { current, total, info };
    this.touch();
  }

  stats(values: Record<string, number>): void {
    this.stats_ = { ...this.stats_, ...values };
    this.stateChanged = true;
    this.touch();
  }

  log(message: string, level: JobLogLine['level'] = 'info'): void {
    if (this.nextLine + this.lines.length > MAX_LOG_LINES + 1) return;
    const text =
      this.nextLine + this.lines.length === MAX_LOG_LINES + 1 ? `(more than ${MAX_LOG_LINES} lines; the rest are not kept)` : message;
    this.lines.push({ level, message: text.slice(0, 4000), at: Date.now() });
    this.touch();
  }

  error(message: string, item?: string, code?: string): void {
    this.errorCount++;
    this.stateChanged = true;
    keepError(this.errors, {
      message: message.slice(0, 2000),
      at: Date.now(),
      ...(item !== undefined ? { item } : {}),
      ...(code !== undefined ? { code } : {}),
    });
    this.touch();
  }

  checkpoint(): void {
    if (this.signal.aborted) throw new CancelledError('cancelled');
  }

  /** The job's kept errors and their count, as the final write records them. */
  errorState(extra?: string, code?: string): { errors_json: string | null; error_count: number } {
    if (extra !== undefined) this.error(extra, undefined, code);
    return { errors_json: this.errors.length ? JSON.stringify(this.errors) : null, error_count: this.errorCount };
  }

  get statsJson(): string | null {
    return this.stats_ ? JSON.stringify(this.stats_) : null;
  }

  private touch(): void {
    this.dirty = true;
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush().catch((err: unknown) => this.core.log.warn({ err, jobId: this.job.id }, 'saving job progress failed'));
    }, FLUSH_MS);
  }

  /**
   * For the final write of a job that completed: its unwritten log lines (numbered), after any
   * progress or stats still to be saved have been written the usual way.
   */
  async finalLines(): Promise<RunLine[]> {
    clearTimeout(this.timer);
    this.timer = undefined;
    await this.flushing;
    if (this.pendingProgress !== undefined || this.stateChanged) await this.flush();
    this.dirty = false;
    const lines = this.lines.splice(0);
    const first = this.nextLine;
    this.nextLine += lines.length;
    return lines.map((l, i) => ({ job_id: this.job.id, line: first + i, level: l.level, message: l.message, at: l.at, lease: this.lease }));
  }

  /** Writes what was reported since the last write (one at a time, in order). */
  flush(): Promise<void> {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.flushing = this.flushing.then(() => this.write());
    return this.flushing;
  }

  private async write(): Promise<void> {
    if (!this.dirty) return;
    this.dirty = false;
    const lines = this.lines.splice(0);
    const progressChanged = this.pendingProgress !== undefined;
    let written = 0;
    if (lines.length > 0) {
      const first = this.nextLine;
      this.nextLine += lines.length;
      written = await insertRunLines(
        this.core,
        lines.map((l, i) => ({ job_id: this.job.id, line: first + i, level: l.level, message: l.message, at: l.at, lease: this.lease })),
      );
    }
    if (!progressChanged && !this.stateChanged) {
      if (written > 0) await Promise.all(lines.map((line) => announce(this.core, { type: 'log', job: this.job, line })));
      return;
    }
    this.stateChanged = false;
    const now = Date.now();
    const row = await this.core.db
      .updateTable('jobs')
      .set((eb) => ({
        ...(this.pendingProgress ? { progress_json: JSON.stringify(this.pendingProgress) } : {}),
        stats_json: this.statsJson,
        ...this.errorState(),
        updated_at: now,
        ...(progressChanged ? { sequence: eb('sequence', '+', 1) } : {}),
      }))
      .where('id', '=', this.job.id)
      .where('lease_owner', '=', this.lease)
      .where('status', '=', 'running')
      .returningAll()
      .executeTakeFirst();
    this.pendingProgress = undefined;
    if (!row) return;
    this.job = toJob(row);
    // One turn, in order: one pg_notify for all of them.
    await Promise.all([
      ...lines.map((line) => announce(this.core, { type: 'log', job: this.job, line })),
      progressChanged ? announce(this.core, { type: 'progress', job: this.job }) : undefined,
    ]);
  }

  dispose(): void {
    clearTimeout(this.timer);
  }
}
