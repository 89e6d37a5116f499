import type { Logger } from 'pino';
import type { Config } from '../lib/settings.ts';
import { buildApp } from '../http/app.ts';
import { startJobEngine } from '../jobs/engine.ts';
import { bootstrapIfEmpty, createLogger, logFsWork, openRuntime } from './runtime.ts';
import { startSweeper } from '../storage/sweeper.ts';
import { startWriteFence } from '../spaces/writeFence.ts';
import { recountUsage } from '../storage/quota.ts';

/**
 * `yunji serve`: migrate, bootstrap, run jobs, listen. SIGTERM/SIGINT drain in-flight requests (new
 * ones get 503), give running jobs the rest of the shutdown time (then hand them back to the
 * queue) and close the database; a second signal exits at once.
 */
export async function serve(config: Config): Promise<void> {
  const log = createLogger(config);
  const { core, database, fsWork } = await openRuntime(config, log);
  log.info({ database: database.dialect, location: database.location }, 'database ready');
  logFsWork(log, fsWork);
  await bootstrapIfEmpty(core);
  // Before any write: what this process writes is fenced off from every sweeper while in flight.
  const stopFence = await startWriteFence(core);
  // Bytes left by uploads that never committed, or no longer referenced, go once they are old enough.
  const stopSweeper = startSweeper(core);
  // Tenants' usage counts, recounted from their objects and local spaces (a crash, or files
  // changed outside Yunji, may have left them off).
  void recountUsage(core).then(
    (recounts) => {
      const changed = recounts.filter(
        (r) => r.before.used_bytes !== r.after.used_bytes || r.before.used_objects !== r.after.used_objects,
      ).length;
      log.info({ tenants: recounts.length, changed }, 'recounted tenant usage');
    },
    (err: unknown) => log.error({ err }, 'recounting tenant usage failed'),
  );
  const engine = await startJobEngine(core);
  const app = await buildApp(core);
  const address = await app.listen({ host: config.host, port: config.port });
  log.info({ address }, `yunji listening on ${address}`);

  onStopSignals(log, config, async () => {
    stopSweeper();
    log.info('draining in-flight requests');
    await app.close();
    await engine.stop(Math.max(0, config.shutdownTimeout * 1000 - 2000));
    await stopFence();
    await database.close();
  });
}

/**
 * On SIGTERM or SIGINT: runs `stop` and exits 0, or 1 if it fails or takes longer than
 * `YUNJI_SHUTDOWN_TIMEOUT`; a second signal exits 1 at once.
 */
function onStopSignals(log: Logger, config: Config, stop: () => Promise<void>): void {
  let stopping = false;
  const handle = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    setTimeout(() => {
      log.error('stopping timed out; exiting');
      process.exit(1);
    }, config.shutdownTimeout * 1000).unref();
    stop().then(
      () => {
        log.info('stopped');
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'error while stopping');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => handle('SIGTERM'));
  process.on('SIGINT', () => handle('SIGINT'));
}

/** `yunji worker`: runs jobs (and interval triggers and webhooks) without serving HTTP. */
export async function work(config: Config): Promise<void> {
  const log = createLogger(config);
  const { core, database, fsWork } = await openRuntime(config, log);
  logFsWork(log, fsWork);
  if (config.workers === 0) throw new Error('YUNJI_WORKERS is 0: a worker process with no workers would do nothing');
  const stopFence = await startWriteFence(core);
  const engine = await startJobEngine(core);
  log.info({ database: database.dialect }, 'yunji worker running');
  onStopSignals(log, config, async () => {
    log.info('letting running jobs finish');
    await engine.stop(Math.max(0, config.shutdownTimeout * 1000 - 2000));
    await stopFence();
    await database.close();
  });
}
