import PgBoss from 'pg-boss';

/**
 * A pg-boss worker process for bench/jobs.ts: `BENCH_LOOPS` `work()` loops on one queue, each
 * fetching up to `BENCH_BATCH` jobs at a time (polling every `BENCH_POLL` seconds when idle) and
 * completing them without doing anything.
 */
const url = process.env.DATABASE_URL!;
const queue = process.env.QUEUE ?? 'noop';
const loops = Number(process.env.BENCH_LOOPS ?? 4);
const batchSize = Number(process.env.BENCH_BATCH ?? 100);
const pollingIntervalSeconds = Number(process.env.BENCH_POLL ?? 0.5);

const boss = new PgBoss({ connectionString: url, max: 10, supervise: false, schedule: false });
boss.on('error', (err) => process.stderr.write(`pg-boss: ${String(err)}\n`));
await boss.start();
for (let i = 0; i < loops; i++) await boss.work(queue, { batchSize, pollingIntervalSeconds }, async () => {});
process.stdout.write('ready\n');
process.on('SIGTERM', () => {
  void boss.stop({ graceful: false, wait: true }).then(() => process.exit(0));
});
