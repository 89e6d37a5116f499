import type { Config } from './config.ts';
import { buildApp } from './http/app.ts';
import { bootstrapIfEmpty, createLogger, openRuntime } from './runtime.ts';
import { startSweeper } from './spaces/sweeper.ts';

/**
 * `yunji serve`: migrate, bootstrap, listen. SIGTERM/SIGINT drain in-flight requests (new ones get
 * 503) and close the database; a second signal exits at once.
 */
export async function serve(config: Config): Promise<void> {
  const log = createLogger(config);
  const { core, database } = await openRuntime(config, log);
  log.info({ database: database.dialect, location: database.location }, 'database ready');
  await bootstrapIfEmpty(core);
  // Bytes left by uploads that never committed, or no longer referenced, go once they are old enough.
  const stopSweeper = startSweeper(core);
  const app = await buildApp(core);
  const address = await app.listen({ host: config.host, port: config.port });
  log.info({ address }, `yunji listening on ${address}`);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    stopSweeper();
    log.info({ signal }, 'draining in-flight requests');
    const deadline = setTimeout(() => {
      log.error('drain timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeout * 1000);
    deadline.unref();
    app
      .close()
      .then(() => database.close())
      .then(() => {
        log.info('stopped');
        process.exit(0);
      })
      .catch((err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}
