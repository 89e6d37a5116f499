import type { Static, TSchema } from '@sinclair/typebox';
import type { Actor } from '../accounts/actor.ts';
import type { UserRole } from '../accounts/roles.ts';
import type { Core } from './core.ts';
import type { Job, JobButton, JobLogLine } from './models.ts';

/** What a running handler gets: its job, its parameters, a signal that fires on cancel, and ways to report. */
export interface JobContext<P = unknown> {
  readonly core: Core;
  readonly job: Job;
  readonly params: P;
  /** Fires when the job is cancelled (from any process) or this process loses the job's lease. */
  readonly signal: AbortSignal;
  /** Saved at most a few times a second (always the last one). */
  progress(current: number, total: number, info?: string): void;
  /** Counters shown with the job (`checked`, `copied`, …); merged into what was reported before. */
  stats(values: Record<string, number>): void;
  log(message: string, level?: JobLogLine['level']): void;
  /** An error about one item that does not stop the job (kept with the job, first 100). */
  error(message: string, item?: string): void;
  /** Throws the cancellation at a safe point. */
  checkpoint(): void;
}

/**
 * How a job of an action may be asked for through the generic paths (`POST /api/jobs`, interval
 * triggers, follow-up buttons), which know nothing of the action's own route.
 */
export interface DirectSubmit<P = unknown> {
  /** The least role that may ask (interval triggers need an admin whatever this says). */
  role: UserRole;
  /**
   * Throws when the (validated) params name what is not the actor's tenant's (404) or what the
   * action's own route would refuse (400). The handler checks again when it runs.
   */
  check?(core: Core, actor: Actor, params: P): Promise<void>;
  /** The concurrency key the action's own route holds for these params, held on every path; null: the caller's. */
  concurrencyKey?(tenantId: number, params: P): string | null;
}

/** A kind of job: what it takes, who may ask for it, how often it may be tried, and what it does. */
export interface JobAction<P = unknown> {
  name: string;
  /** Validates `params` when a job is submitted. */
  params: TSchema;
  /**
   * Who may ask for it through the generic paths and with which checks; `false`: only through
   * the action's own route (which holds its admin check, delay or one-at-a-time key), and its
   * jobs offer no follow-up actions.
   */
  direct: DirectSubmit<P> | false;
  /** Runs (first one included) before the job fails. */
  maxAttempts: number;
  /** Sync actions announce themselves with the sync events (`syncBegin` …), others with `jobBegin` …. */
  family: 'sync' | 'job';
  describe(params: P): string;
  /** Follow-up actions beyond `rerun` and `retry`, and what submitting one does. */
  extraButtons?: { button: JobButton; offered(job: Job): boolean; params(job: Job): P }[];
  run(ctx: JobContext<P>): Promise<unknown>;
}

/** Defines an action whose handler sees its parameters typed by the schema. */
export function defineAction<S extends TSchema>(params: S, action: Omit<JobAction<Static<S>>, 'params'>): JobAction {
  return { ...action, params } as JobAction;
}

/** A failure that running again would not fix (bad parameters, a missing package): no retries. */
export class PermanentJobError extends Error {
  override name = 'PermanentJobError';
}

/** The actions the composition root registered (app/actions.ts), by name. */
export class ActionCatalog {
  private readonly byName = new Map<string, JobAction>();

  constructor(actions: JobAction[]) {
    for (const a of actions) this.byName.set(a.name, a);
  }

  get(name: string): JobAction | undefined {
    return this.byName.get(name);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }
}
