import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { loadConfig } from '../../src/app/config.ts';
import { openRuntime, type Runtime } from '../../src/app/runtime.ts';
import { createPgDatabase, type DbKind } from './databases.ts';

/** The real core (migrated database, config) in-process, on a fresh SQLite file or PostgreSQL database. */
export async function openTestRuntime(kind: DbKind, env: Record<string, string> = {}): Promise<Runtime & { dispose(): Promise<void> }> {
  const dataDir = mkdtempSync(join(tmpdir(), 'yunji-core-'));
  const pgDb = kind === 'postgres' ? await createPgDatabase() : undefined;
  const config = loadConfig({ YUNJI_DATA_DIR: dataDir, YUNJI_DATABASE_URL: pgDb?.url ?? '', ...env }, dataDir);
  const runtime = await openRuntime(config, pino({ level: 'silent' }));
  return {
    ...runtime,
    dispose: async () => {
      await runtime.database.close();
      rmSync(dataDir, { recursive: true, force: true });
      await pgDb?.drop();
    },
  };
}
