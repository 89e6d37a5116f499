import type { JobAction } from '../jobs/actions.ts';
import { packageFromSpace, packageToSpace } from './transfer.ts';
import { deleteUserData } from './userData.ts';

/** The kinds of job the storage layer defines, for the composition root to register (app/actions.ts). */
export const storageActions: JobAction[] = [deleteUserData, packageFromSpace, packageToSpace];
