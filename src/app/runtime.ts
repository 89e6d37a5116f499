import pino, { type Logger } from 'pino';
import { bootstrap } from '../accounts/bootstrap.ts';
import type { Config } from '../lib/settings.ts';
import type { Core } from '../jobs/core.ts';
import { migrateToLatest, openDatabase, type DatabaseHandle } from '../db/index.ts';
import { actionCatalog } from './actions.ts';
import { JobEvents } from '../jobs/events.ts';
import type { JobEvent } from '../jobs/models.ts';
import { jobById } from '../jobs/store.ts';
import { eventName, webhookPayload } from '../http/jobViews.ts';
import { sealerFor } from '../lib/sealing.ts';
import { chooseFsWork, type FsChoice } from '../backends/fsThreads.ts';
import { defaultSpace } from '../spaces/spaces.ts';

export interface Runtime {
  core: Core;
  database: DatabaseHandle;
  /** The small local file system work this process uses (`YUNJI_NATIVE`). */
  fsWork: FsChoice;
}

/** A `token…=` query parameter's value in a URL (`?token=` carries a credential for clients that cannot set headers). */
const QUERY_TOKEN = /([?&]token[^=&#\s"\\]*=)[^&#\s"\\]+/gi;

/** `text` with the value of every `token` query parameter replaced. */
function redactQueryTokens(text: string): string {
  return text.replace(QUERY_TOKEN, '$1[Redacted]');
}

export function createLogger(config: Config): Logger {
  return pino({
    level: config.logLevel,
    // Credentials never reach the logs, whatever a future log line includes.
    redact: ['req.headers.authorization', 'req.headers.cookie', 'headers.authorization', 'headers.cookie', 'password', '*.password'],
    // URLs appear in request lines, messages and error stacks alike: their tokens go from the finished line.
    hooks: { streamWrite: redactQueryTokens },
  });
}

/**
 * Chooses the local file system work (`YUNJI_NATIVE`), opens the database and brings its schema up
 * to date: what every command needs before it works.
 */
export async function openRuntime(config: Config, log: Logger = createLogger(config)): Promise<Runtime> {
  const fsWork = chooseFsWork(config.native);
  const database = openDatabase(config.databaseUrl, config.dataDir);
  try {
    const applied = await migrateToLatest(database.db);
    if (applied.length > 0) log.info({ migrations: applied }, 'database migrated');
  } catch (err) {
    await database.close();
    throw err;
  }
  const events = new JobEvents(database.db, database.dialect, config.databaseUrl, log, (id) => jobById(core, id));
  const actions = actionCatalog();
  const hooks = { eventName: (e: JobEvent) => eventName(e.type, e.job, actions), payload: (e: JobEvent) => webhookPayload(actions, e) };
  const core: Core = {
    db: database.db,
    dialect: database.dialect,
    config,
    log,
    sealer: sealerFor(config),
    jobs: { actions, events, hooks },
  };
  const close = database.close;
  database.close = async () => {
    await core.jobs.events.close();
    await close();
  };
  return { database, core, fsWork };
}

/** The start-up log line that says which local file system work this process uses. */
export function logFsWork(log: Logger, fsWork: FsChoice): void {
  if (fsWork.using === 'native') log.info({ fsWork: 'native' }, 'local file work: native module (yunji-fs-work)');
  else log.info({ fsWork: 'portable', reason: fsWork.reason }, `local file work: pure Node (${fsWork.reason})`);
}

/** First start: creates the default tenant and admin, and shows a generated password once. */
export async function bootstrapIfEmpty(core: Core): Promise<void> {
  const result = await bootstrap(core);
  if (!result) return;
  await defaultSpace(core, result.tenantId);
  core.log.info({ tenantId: result.tenantId, adminEmail: result.adminEmail }, 'bootstrapped: tenant "default" and its admin');
  if (result.generatedPassword) {
    process.stdout.write(
      `\n  Yunji admin created: ${result.adminEmail}\n  Password (shown only now): ${result.generatedPassword}\n` +
        `  Set YUNJI_ADMIN_PASSWORD before the first start to choose it instead.\n\n`,
    );
  }
}
