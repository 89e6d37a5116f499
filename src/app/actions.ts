import { ActionCatalog } from '../jobs/actions.ts';
import { noop } from '../jobs/noop.ts';
import { storageActions } from '../storage/actions.ts';
import { syncActions } from '../sync/actions.ts';

/**
 * Every kind of job this build runs: the job engine knows none of them; each layer exports its own
 * and they are registered here, once, when the runtime is opened.
 */
export function actionCatalog(): ActionCatalog {
  return new ActionCatalog([noop, ...storageActions, ...syncActions]);
}
