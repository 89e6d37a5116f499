import type { JobAction } from '../jobs/actions.ts';
import { sourceSync } from './sourceSync.ts';
import { spaceSync } from './spaceSync.ts';
import { workspaceSync } from './workspace.ts';

/** The kinds of job the sync layer defines, for the composition root to register (app/actions.ts). */
export const syncActions: JobAction[] = [spaceSync, sourceSync, workspaceSync];
