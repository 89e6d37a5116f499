import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import type { Core } from '../../core.ts';

/** The task surface (002-task-action): `/mj/task/{id}/fetch`, `/mj/task/list-by-condition`, `/mj/submit/action`. */
export const taskRoutes: FastifyPluginAsyncTypebox<{ core: Core }> = async () => {};
