import type { DbCore } from '../db/core.ts';
import type { ActionCatalog } from './actions.ts';
import type { JobEvents } from './events.ts';
import type { HookShapes } from './webhooks.ts';

/**
 * What every operation above the job engine runs against: the database context and the engine's
 * parts (the actions registered by the composition root, the job events, and the shapes webhooks
 * post). The accounts layer, below the engine, takes only `DbCore` (docs/DECISIONS.md).
 */
export interface Core extends DbCore {
  jobs: {
    actions: ActionCatalog;
    events: JobEvents;
    /** How events look in webhook deliveries (http/jobViews.ts, given by the composition root). */
    hooks: HookShapes;
  };
}
