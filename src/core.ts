import type { Logger } from 'pino';
import type { Config } from './lib/settings.ts';
import type { Db } from './db/index.ts';
import type { DialectName } from './db/dialect.ts';
import type { ActionCatalog } from './jobs/actions.ts';
import type { JobEvents } from './jobs/events.ts';
import type { Sealer } from './lib/sealing.ts';

/** What every core operation runs against: the database, the settings, a logger, the key for stored secrets, and the job engine's parts. */
export interface Core {
  db: Db;
  dialect: DialectName;
  config: Config;
  log: Logger;
  sealer: Sealer;
  jobs: {
    actions: ActionCatalog;
    events: JobEvents;
  };
}
