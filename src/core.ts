import type { Logger } from 'pino';
import type { Config } from './config.ts';
import type { Db } from './db/index.ts';
import type { DialectName } from './db/dialect.ts';
import type { Sealer } from './sealing.ts';

/** What every core operation runs against: the database, the settings, a logger and the key for stored secrets. */
export interface Core {
  db: Db;
  dialect: DialectName;
  config: Config;
  log: Logger;
  sealer: Sealer;
}
