import type { DbCore } from '../db/core.ts';
import type { ActionCatalog } from './actions.ts';
import type { JobEvents } from './events.ts';

/**
 * What every operation above the job engine runs against: the database context and the engine's
 * parts (the actions registered by the composition root, and the job events). The accounts layer,
 * below the engine, takes only `DbCore`.
 */
export interface Core extends DbCore {
  jobs: {
    actions: ActionCatalog;
    events: JobEvents;
  };
}
