import { Type, type Static } from '@sinclair/typebox';
import { Id } from '../lib/schema.ts';

/** What a sync compares and copies: the settings shared by every kind of sync (space tasks, sources, workspace). */
const strict = { additionalProperties: false } as const;
const Bytes = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER });
const Patterns = Type.Array(Type.String({ minLength: 1, maxLength: 1024 }), { minItems: 1, maxItems: 1000 });
const Time = Type.String({ format: 'date-time', description: 'ISO-8601 with offset' });

export const MAX_INTERVAL = 366 * 24 * 3600;

export const SyncTrigger = Type.Union(
  [
    Type.Object(
      {
        type: Type.Literal('Interval'),
        interval: Type.Integer({ minimum: 1, maximum: MAX_INTERVAL, description: 'Seconds between runs' }),
      },
      strict,
    ),
    Type.Object({ type: Type.Literal('Once') }, strict),
    Type.Object({ type: Type.Literal('Manual') }, strict),
  ],
  { title: 'SyncTrigger' },
);
export type SyncTrigger = Static<typeof SyncTrigger>;

export const SyncMode = Type.Union(
  [
    Type.Object(
      { type: Type.Literal('Diff'), includeSize: Type.Boolean({ default: true }), includeModTime: Type.Boolean({ default: true }) },
      strict,
    ),
    Type.Object({ type: Type.Literal('Full') }, strict),
  ],
  { title: 'SyncMode' },
);
export type SyncMode = Static<typeof SyncMode>;

export const SyncFilter = Type.Union(
  [
    Type.Object({ type: Type.Literal('Size'), minSize: Type.Optional(Bytes), maxSize: Type.Optional(Bytes) }, strict),
    Type.Object({ type: Type.Literal('Include'), patterns: Patterns }, strict),
    Type.Object({ type: Type.Literal('Exclude'), patterns: Patterns }, strict),
    Type.Object({ type: Type.Literal('ModTime'), newerThan: Type.Optional(Time), olderThan: Type.Optional(Time) }, strict),
  ],
  { title: 'SyncFilter' },
);
export type SyncFilter = Static<typeof SyncFilter>;

export const SyncOptions = Type.Object(
  {
    noEmptyDirectories: Type.Optional(
      Type.Boolean({ description: 'Do not make empty source folders at the destination (default false: make them)' }),
    ),
    delete: Type.Optional(Type.Boolean({ description: 'Remove destination files the source lacks (a mirror); default false' })),
    maxDelete: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: Number.MAX_SAFE_INTEGER,
        description: 'Fail before deleting anything when more deletions are needed',
      }),
    ),
    dryRun: Type.Optional(Type.Boolean({ description: 'Plan and report only; change nothing' })),
  },
  { ...strict, title: 'SyncOptions', default: {} },
);
export type SyncOptions = Static<typeof SyncOptions>;

const SpacePath = Type.String({ maxLength: 1024, description: "Relative to the space's root; empty: the root" });

export const SpaceSyncTaskFields = {
  trigger: SyncTrigger,
  mode: SyncMode,
  filters: Type.Array(SyncFilter, { maxItems: 100, default: [] }),
  options: Type.Optional(SyncOptions),
  srcUserSpaceID: Id,
  srcPath: SpacePath,
  destUserSpaceIDs: Type.Array(Id, { minItems: 1, maxItems: 16 }),
  destPathes: Type.Array(SpacePath, { minItems: 1, maxItems: 16 }),
};

export const CreateSpaceSyncTaskBody = Type.Object(
  { userID: Type.Optional(Id), ...SpaceSyncTaskFields },
  { ...strict, title: 'CreateSpaceSyncTaskBody' },
);
export type CreateSpaceSyncTaskBody = Static<typeof CreateSpaceSyncTaskBody>;

export const SpaceSyncTask = Type.Object(
  { taskID: Id, ...SpaceSyncTaskFields, filters: Type.Array(SyncFilter), options: SyncOptions },
  { title: 'SpaceSyncTask' },
);
export type SpaceSyncTask = Static<typeof SpaceSyncTask>;

/** Counters of one run (and of each destination). */
export interface SyncStats {
  checked: number;
  copied: number;
  updated: number;
  deleted: number;
  skipped: number;
  failed: number;
  bytes: number;
}

export const emptyStats = (): SyncStats => ({ checked: 0, copied: 0, updated: 0, deleted: 0, skipped: 0, failed: 0, bytes: 0 });
