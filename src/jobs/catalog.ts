import { ActionCatalog } from './actions.ts';
import { noop } from './noop.ts';

/** Every kind of job this build runs. */
export function actionCatalog(): ActionCatalog {
  return new ActionCatalog([noop]);
}
