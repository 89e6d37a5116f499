import { Type, type Static } from '@sinclair/typebox';

/**
 * The one job model behind every long operation (see DESIGN.md). Surfaces show it in their own
 * shapes (src/http/jobViews.ts); this is the core's.
 */
export const JobStatus = Type.Union(
  [Type.Literal('scheduled'), Type.Literal('running'), Type.Literal('completed'), Type.Literal('failed'), Type.Literal('cancelled')],
  { title: 'JobStatus' },
);
export type JobStatus = Static<typeof JobStatus>;
export const TERMINAL: readonly JobStatus[] = ['completed', 'failed', 'cancelled'];
export const isTerminal = (s: JobStatus) => TERMINAL.includes(s);

export type JobTrigger = 'manual' | 'interval' | 'action' | 'system';

export const JobProgress = Type.Object(
  { current: Type.Number(), total: Type.Number(), info: Type.String() },
  { title: 'JobProgress', description: 'How far the job is: `current` of `total` units (files, bytes, items), and what it is doing.' },
);
export type JobProgress = Static<typeof JobProgress>;

export const JobError = Type.Object(
  {
    message: Type.String(),
    at: Type.Integer({ description: 'Epoch ms.' }),
    item: Type.Optional(Type.String({ description: 'What the error is about (a file, an object), when it is about one thing.' })),
    code: Type.Optional(
      Type.String({ description: 'The kind of failure (bad_request, not_found, conflict, backend_failed, …) when known.' }),
    ),
  },
  { title: 'JobError' },
);
export type JobError = Static<typeof JobError>;

/** The errors kept per job; later ones are only counted. */
export const KEPT_ERRORS = 100;

/**
 * Adds `error` to a job's kept errors (at most KEPT_ERRORS). An error of the job itself (no `item`:
 * why an attempt failed) is kept even when errors about items filled the list, in place of the last
 * of those: it is what the job's views show as its failure.
 */
export function keepError(errors: JobError[], error: JobError): void {
  if (errors.length < KEPT_ERRORS) {
    errors.push(error);
    return;
  }
  if (error.item !== undefined) return;
  const last = errors.findLastIndex((e) => e.item !== undefined);
  if (last < 0) return;
  errors.splice(last, 1);
  errors.push(error);
}

export interface Job {
  id: number;
  tenantId: number;
  action: string;
  trigger: JobTrigger;
  description: string;
  referenceId: string | null;
  params: unknown;
  status: JobStatus;
  concurrencyKey: string | null;
  progress: JobProgress | null;
  stats: Record<string, number> | null;
  result: unknown;
  errors: JobError[];
  errorCount: number;
  notifyHook: string | null;
  state: string | null;
  parentId: number | null;
  triggerId: number | null;
  createdBy: number | null;
  attempts: number;
  maxAttempts: number;
  cancelRequested: boolean;
  sequence: number;
  startAt: number;
  startedAt: number | null;
  endedAt: number | null;
  createdAt: number;
  updatedAt: number | null;
}

/** What happened to a job; each is one event (WebSocket, SSE, webhook). */
export type JobEventType = 'created' | 'begin' | 'progress' | 'log' | 'retry' | 'end' | 'fail' | 'cancel';

export interface JobLogLine {
  level: 'info' | 'warn' | 'error';
  message: string;
  at: number;
}

export interface JobEvent {
  type: JobEventType;
  job: Job;
  /** For `log` events. */
  line?: JobLogLine;
}

/** A follow-up action offered on a job (the task surface's buttons). */
export interface JobButton {
  /** `rerun`, `retry`, or an action's own. */
  name: string;
  label: string;
  emoji: string;
}
