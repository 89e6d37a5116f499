import type { Logger } from 'pino';
import type { Sealer } from '../lib/sealing.ts';
import type { Config } from '../lib/settings.ts';
import type { DialectName } from './dialect.ts';
import type { Db } from './index.ts';

/** What an operation on the database runs against: the database, the settings, a logger and the key for stored secrets. */
export interface DbCore {
  db: Db;
  dialect: DialectName;
  config: Config;
  log: Logger;
  sealer: Sealer;
}
