import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import PgBoss from 'pg-boss';
import pino from 'pino';
import WebSocket from 'ws';
import { loadConfig } from '../src/config.ts';
import { submitJob } from '../src/jobs/store.ts';
import { openRuntime } from '../src/runtime.ts';
import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { loginToken, percentile, ROOT, round, startYunji } from './lib.ts';

/**
 * Issue 4's job benchmark. Throughput: `BENCH_JOBS` no-op jobs submitted (16 at a time) and completed,
 * from the first submit to the last completion. Yunji on SQLite is one `yunji serve` process
 * (jobs submitted over HTTP to it); on PostgreSQL two `yunji worker` processes, and pg-boss with two
 * worker processes on the same PostgreSQL server, one after the other, jobs submitted from this
 * process through each one's own API. Event latency: a WebSocket client's receipt of `jobEnd`
 * minus the job's `updated_at` (the moment the server decided the state change, same clock).
 */
const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const IN_FLIGHT = 16;
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 1000);
const YUNJI_WORKER_ENV = { YUNJI_WORKERS: '32', YUNJI_TENANT_JOB_CONCURRENCY: '128', YUNJI_JOB_POLL: '200' };

/** Runs `submit` for 0 … n−1 with `IN_FLIGHT` at once. */
async function submitAll(n: number, submit: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < n) await submit(next++);
    }),
  );
}

async function until(what: string, probe: () => Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** A background process (no HTTP) that is ready once its output shows `ready`. */
async function startBackground(args: string[], env: Record<string, string>, ready: RegExp): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const child = spawn(process.execPath, args, { cwd: ROOT, env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  const collect = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  await until(`${args.join(' ')} to be ready:\n${out}`, async () => {
    if (child.exitCode !== null) throw new Error(`exited early:\n${out}`);
    return ready.test(out);
  }, 30_000);
  return {
    child,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);

async function countWhere(url: string, sql: string): Promise<number> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  try {
    return Number((await c.query(sql)).rows[0].n);
  } finally {
    await c.end();
  }
}

/** Latency of `jobEnd` to a WebSocket client of `apiUrl`, over `LATENCY_JOBS` jobs submitted a few at a time. */
async function eventLatency(apiUrl: string): Promise<{ events: number; p50: number; p99: number; max: number }> {
  const token = await loginToken(apiUrl);
  const ws = new WebSocket(`${apiUrl.replace(/^http/, 'ws')}/ws?token=${token}`);
  const latencies: number[] = [];
  ws.on('message', (m) => {
    const at = Date.now();
    const msg = JSON.parse(m.toString()) as { cmd: string; data: { updated_at: string } };
    if (msg.cmd === 'jobEnd') latencies.push(at - Date.parse(msg.data.updated_at));
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  let next = 0;
  // Four at a time: the latency of events under light, steady load, not of a queue.
  await Promise.all(
    Array.from({ length: 4 }, async () => {
      while (next < LATENCY_JOBS) {
        next++;
        const before = latencies.length;
        const res = await fetch(`${apiUrl}/api/jobs`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: '{"action":"noop"}' });
        if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
        await until('an event', async () => latencies.length > before, 30_000);
      }
    }),
  );
  await until('every jobEnd', async () => latencies.length >= LATENCY_JOBS, 60_000);
  ws.close();
  const sorted = [...latencies].sort((a, b) => a - b);
  return { events: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1]! };
}

async function sqliteRun() {
  const yunji = await startYunji('', YUNJI_WORKER_ENV);
  try {
    const token = await loginToken(yunji.url);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    let completed = 0;
    // Completion is counted from the WebSocket: no second reader on the database file.
    const ws = new WebSocket(`${yunji.url.replace(/^http/, 'ws')}/ws?token=${token}`);
    ws.on('message', (m) => {
      if ((JSON.parse(m.toString()) as { cmd: string }).cmd === 'jobEnd') completed++;
    });
    await new Promise<void>((resolve) => ws.once('open', () => resolve()));
    const t0 = performance.now();
    await submitAll(JOBS, async () => {
      const res = await fetch(`${yunji.url}/api/jobs`, { method: 'POST', headers, body: '{"action":"noop"}' });
      if (res.status !== 201) throw new Error(`submit: ${res.status}`);
    });
    const submittedMs = performance.now() - t0;
    await until('all jobs to complete', async () => completed >= JOBS);
    const totalMs = performance.now() - t0;
    ws.close();
    const latency = await eventLatency(yunji.url);
    return { jobs: JOBS, submitPerSecond: rate(JOBS, submittedMs), completedPerSecond: rate(JOBS, totalMs), seconds: round(totalMs / 1000, 1), serverPeakRssMiB: yunji.peakRssMiB(), eventLatencyMs: latency };
  } finally {
    await yunji.stop();
  }
}

async function yunjiOnPostgres(url: string) {
  // The API process runs no jobs; two worker processes do.
  const api = await startYunji(url, { YUNJI_WORKERS: '0' });
  const workers = await Promise.all(
    [0, 1].map(() => startBackground(['bin/yunji.js', 'worker'], { YUNJI_DATABASE_URL: url, YUNJI_DATA_DIR: api.dataDir, YUNJI_LOG_LEVEL: 'info', ...YUNJI_WORKER_ENV }, /yunji worker running/)),
  );
  // This process submits through Yunji's own submitJob, as pg-boss's side uses boss.send.
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-submit-'));
  const runtime = await openRuntime(loadConfig({ YUNJI_DATABASE_URL: url, YUNJI_DATA_DIR: dir }), pino({ level: 'warn' }));
  try {
    const before = await countWhere(url, `select count(*) as n from jobs where status = 'completed'`);
    const t0 = performance.now();
    await submitAll(JOBS, () => submitJob(runtime.core, { tenantId: 1, action: 'noop' }));
    const submittedMs = performance.now() - t0;
    await until('all jobs to complete', async () => (await countWhere(url, `select count(*) as n from jobs where status = 'completed'`)) - before >= JOBS);
    const totalMs = performance.now() - t0;
    const latency = await eventLatency(api.url);
    return { submitPerSecond: rate(JOBS, submittedMs), completedPerSecond: rate(JOBS, totalMs), seconds: round(totalMs / 1000, 1), eventLatencyMs: latency };
  } finally {
    await runtime.database.close();
    rmSync(dir, { recursive: true, force: true });
    for (const w of workers) await w.stop();
    await api.stop();
  }
}

async function pgBossOnPostgres(url: string) {
  const env = { DATABASE_URL: url, QUEUE: 'noop', BENCH_LOOPS: '4', BENCH_BATCH: '100' };
  const boss = new PgBoss({ connectionString: url, max: 10, supervise: false, schedule: false });
  await boss.start();
  await boss.createQueue('noop');
  const workers = await Promise.all([0, 1].map(() => startBackground(['--import', import.meta.resolve('tsx'), 'bench/peers/pgboss-worker.ts'], env, /ready/)));
  try {
    const t0 = performance.now();
    await submitAll(JOBS, () => boss.send('noop', {}));
    const submittedMs = performance.now() - t0;
    await until('all pg-boss jobs to complete', async () => (await countWhere(url, `select count(*) as n from pgboss.job where name = 'noop' and state = 'completed'`)) >= JOBS);
    const totalMs = performance.now() - t0;
    return { submitPerSecond: rate(JOBS, submittedMs), completedPerSecond: rate(JOBS, totalMs), seconds: round(totalMs / 1000, 1), settings: '2 processes × 4 work() loops, batchSize 100, pollingIntervalSeconds 0.5' };
  } finally {
    for (const w of workers) await w.stop();
    await boss.stop({ graceful: false, wait: true });
  }
}

export async function jobsBench(): Promise<Record<string, unknown>> {
  const sqlite = await sqliteRun();
  const reason = await postgresUnavailableReason();
  if (reason) return { sqlite, postgres: `skipped: ${reason}` };
  const forYunji = await createPgDatabase();
  const forBoss = await createPgDatabase();
  try {
    const yunji = await yunjiOnPostgres(forYunji.url);
    const pgBoss = await pgBossOnPostgres(forBoss.url);
    return {
      sqlite,
      postgres: {
        jobs: JOBS,
        yunji: { ...yunji, settings: `2 yunji worker processes, ${JSON.stringify(YUNJI_WORKER_ENV)}` },
        pgBoss,
        ratio: round(yunji.completedPerSecond / pgBoss.completedPerSecond),
      },
    };
  } finally {
    await forYunji.drop();
    await forBoss.drop();
  }
}
