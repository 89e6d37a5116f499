import { ActionCatalog } from './actions.ts';
import { packageFromSpace, packageToSpace } from '../storage/transfer.ts';
import { deleteUserData } from '../storage/userData.ts';
import { noop } from './noop.ts';
import { spaceSync } from '../sync/spaceSync.ts';
import { sourceSync } from '../sync/sourceSync.ts';
import { workspaceSync } from '../sync/workspace.ts';

/** Every kind of job this build runs. */
export function actionCatalog(): ActionCatalog {
  return new ActionCatalog([noop, deleteUserData, packageFromSpace, packageToSpace, spaceSync, sourceSync, workspaceSync]);
}
