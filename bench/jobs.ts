import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import PgBoss from 'pg-boss';
import pino from 'pino';
import WebSocket from 'ws';
import { loadConfig } from '../src/app/config.ts';
import { submitJob } from '../src/jobs/store.ts';
import { bootstrapIfEmpty, openRuntime } from '../src/app/runtime.ts';
import { createPgDatabase, postgresUnavailableReason } from '../test/helpers/databases.ts';
import { ADMIN, loginMeasured, loginToken, percentile, ROOT, round, startYunji, stopChild } from './lib.ts';

/**
 * Issue 4's job benchmark.
 *
 * Throughput: `BENCH_JOBS` no-op jobs submitted (`IN_FLIGHT` at a time) and completed, timed from
 * the first submit to the moment the database shows the last one completed (a count polled every
 * 20 ms over one connection of this process).
 * - SQLite, one process: one `yunji serve`; jobs submitted over HTTP (`POST /api/jobs`), as a client
 *   of a one-process deployment would; completions read from the SQLite file (WAL: a reader does
 *   not block the writer).
 * - PostgreSQL: two `yunji worker` processes, jobs submitted from this process with Yunji's own
 *   `submitJob`; then, on a fresh database of the same server, pg-boss with two worker processes
 *   (bench/peers/pgboss-worker.ts) and jobs submitted with `boss.send`, same N, same in-flight count.
 *   No API process runs during either throughput run. CPU time per job of each process (and of the
 *   database's PostgreSQL backends) and transactions per job are reported beside the rates: on a
 *   two-core machine they explain the ratio. Transactions are PostgreSQL's count for the database,
 *   so they include the one a listening backend runs to read each NOTIFY it is sent.
 *
 * Event latency: a WebSocket client on `yunji serve` (`/ws`) receives the events of
 * `BENCH_LATENCY_JOBS` jobs submitted `LATENCY_IN_FLIGHT` at a time (each slot submits its next job
 * once its previous one's `jobEnd` arrived). Latency = arrival time − the time the server stamped
 * the state change (`updated_at`, or `created_at` for jobCreated), which it takes just before
 * writing it: so the write and its commit are included. Same machine, same clock; the stamps have
 * millisecond precision. On PostgreSQL the jobs run in a `yunji worker` process, so `jobBegin` and
 * `jobEnd` reach the API process through NOTIFY.
 */
const JOBS = Number(process.env.BENCH_JOBS ?? 10_000);
const IN_FLIGHT = 16;
const LATENCY_JOBS = Number(process.env.BENCH_LATENCY_JOBS ?? 1000);
const LATENCY_IN_FLIGHT = 4;
/** What a user tuning for throughput sets: more jobs at once per process, a tenant cap above the sum, a shorter idle poll. */
const YUNJI_WORKER_ENV = { YUNJI_WORKERS: '32', YUNJI_TENANT_JOB_CONCURRENCY: '128', YUNJI_JOB_POLL: '200' };
/** pg-boss tuned for throughput: batches (its unit of work) and the shortest polling interval it accepts. */
const BOSS = { processes: 2, loops: 4, batchSize: 100, pollingIntervalSeconds: 0.5 };

/** Runs `submit` for 0 … n−1 with `IN_FLIGHT` at once. */
async function submitAll(n: number, submit: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: IN_FLIGHT }, async () => {
      while (next < n) await submit(next++);
    }),
  );
}

async function until(what: string, probe: () => boolean | Promise<boolean>, timeoutMs = 600_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A background process (no HTTP) that is ready once its output shows `ready`; BENCH_CPU_PROFILE as in lib.ts. */
async function startBackground(
  args: string[],
  env: Record<string, string>,
  ready: RegExp,
): Promise<{ child: ChildProcess; stop(): Promise<void> }> {
  const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : [];
  const child = spawn(process.execPath, [...profile, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  const collect = (d: Buffer) => (out = (out + d.toString()).slice(-20_000));
  child.stdout!.on('data', collect);
  child.stderr!.on('data', collect);
  await until(
    `${args.join(' ')} to be ready`,
    () => {
      if (child.exitCode !== null) throw new Error(`${args.join(' ')} exited early:\n${out}`);
      return ready.test(out);
    },
    30_000,
  );
  return {
    child,
    stop: () => stopChild(child),
  };
}

const rate = (n: number, ms: number) => Math.round((n / ms) * 1000);

/**
 * The 1-minute load average, for reading the figures: it lags and counts this run's own processes
 * too (about 3 during a PostgreSQL run), so a high value before a run is what points at other work.
 */
const load1m = () => round(loadavg()[0]!, 2);

/** CPU time (user + system) a process has used, in ms; 0 once it is gone. Linux clock ticks are 10 ms. */
function cpuMsOf(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return 0;
  }
}

const ownCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

/**
 * CPU time of named processes, this one ("submitter") and, on PostgreSQL, the backends connected to
 * the database (WAL writer, checkpointer and other server processes not counted), between `start`
 * and `stop`, per job.
 */
class CpuMeter {
  /** Each backend's CPU time when first seen: at `start`, or 0 for one that connected later. */
  private readonly backends = new Map<number, { first: number; last: number }>();
  private base: Record<string, number> = {};
  private started = false;

  constructor(
    private readonly pids: Record<string, number[]>,
    private readonly pgClient?: pg.Client,
  ) {}

  private async sampleBackends(): Promise<void> {
    if (!this.pgClient) return;
    const { rows } = await this.pgClient.query<{ pid: number }>('select pid from pg_stat_activity where datname = current_database()');
    for (const { pid } of rows) {
      const ms = cpuMsOf(pid);
      const b = this.backends.get(pid);
      if (b) b.last = ms || b.last;
      else this.backends.set(pid, { first: this.started ? 0 : ms, last: ms });
    }
  }

  private read(): Record<string, number> {
    const r: Record<string, number> = { submitter: ownCpuMs() };
    for (const [name, pids] of Object.entries(this.pids)) r[name] = pids.reduce((s, p) => s + cpuMsOf(p), 0);
    return r;
  }

  async start(): Promise<void> {
    await this.sampleBackends();
    this.started = true;
    this.base = this.read();
  }

  async stop(jobs: number): Promise<Record<string, number>> {
    const now = this.read();
    await this.sampleBackends();
    const per = (ms: number) => round(ms / jobs, 3);
    const out: Record<string, number> = {};
    for (const [name, ms] of Object.entries(now)) out[name] = per(ms - (this.base[name] ?? 0));
    if (this.pgClient) out.postgresBackends = per([...this.backends.values()].reduce((s, b) => s + b.last - b.first, 0));
    out.total = round(
      Object.values(out).reduce((a, b) => a + b, 0),
      3,
    );
    return out;
  }
}

/**
 * PostgreSQL transactions (commits and rollbacks) of the database so far. A backend may hold its
 * counts for up to 10 s before publishing them, but publishes them when it exits: read this after
 * the processes under test have disconnected.
 */
async function transactions(client: pg.Client): Promise<number> {
  await sleep(500);
  const { rows } = await client.query<{ n: string }>(
    'select xact_commit + xact_rollback as n from pg_stat_database where datname = current_database()',
  );
  return Number(rows[0]!.n);
}

async function completedOn(client: pg.Client, sql: string): Promise<number> {
  return Number((await client.query<{ n: string }>(sql)).rows[0]!.n);
}

interface Percentiles {
  events: number;
  p50: number;
  p99: number;
  max: number;
}

function summary(values: number[]): Percentiles {
  const sorted = [...values].sort((a, b) => a - b);
  return { events: sorted.length, p50: percentile(sorted, 50), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? NaN };
}

/** Event latency on `apiUrl`'s WebSocket, per event kind; jobEnd is the one the target is about. */
async function eventLatency(apiUrl: string): Promise<Record<string, Percentiles>> {
  const token = await loginToken(apiUrl);
  const ws = new WebSocket(`${apiUrl.replace(/^http/, 'ws')}/ws?token=${token}`);
  const latencies: Record<string, number[]> = { jobEnd: [], jobBegin: [], jobCreated: [] };
  const ended = new Set<number>();
  const waiting = new Map<number, () => void>();
  ws.on('message', (m: Buffer) => {
    const at = Date.now();
    const msg = JSON.parse(m.toString()) as { cmd: string; data: { id: number; created_at: string; updated_at: string | null } };
    const stamp = msg.cmd === 'jobCreated' ? msg.data.created_at : msg.data.updated_at;
    if (stamp !== null) latencies[msg.cmd]?.push(at - Date.parse(stamp));
    if (msg.cmd === 'jobEnd') {
      ended.add(msg.data.id);
      waiting.get(msg.data.id)?.();
    }
  });
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  let next = 0;
  await Promise.all(
    Array.from({ length: LATENCY_IN_FLIGHT }, async () => {
      while (next < LATENCY_JOBS) {
        next++;
        const res = await fetch(`${apiUrl}/api/jobs`, { method: 'POST', headers, body: '{"action":"noop"}' });
        if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
        const { id } = (await res.json()) as { id: number };
        if (ended.has(id)) continue;
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`no jobEnd for job ${id} within 30 s`)), 30_000);
          waiting.set(id, () => {
            clearTimeout(timer);
            waiting.delete(id);
            resolve();
          });
        });
      }
    }),
  );
  ws.close();
  return Object.fromEntries(Object.entries(latencies).map(([cmd, values]) => [cmd, summary(values)]));
}

async function sqliteRun() {
  const yunji = await startYunji('', YUNJI_WORKER_ENV);
  const reader = new BetterSqlite3(join(yunji.dataDir, 'yunji.db'), { readonly: true, fileMustExist: true });
  try {
    const completed = reader.prepare<[], { n: number }>(`select count(*) as n from jobs where status = 'completed'`);
    const { token, loginPeakRssMiB } = await loginMeasured(yunji);
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const cpu = new CpuMeter({ server: [yunji.child.pid!] });
    const loadBefore = load1m();
    await cpu.start();
    const t0 = performance.now();
    await submitAll(JOBS, async () => {
      const res = await fetch(`${yunji.url}/api/jobs`, { method: 'POST', headers, body: '{"action":"noop"}' });
      if (res.status !== 201) throw new Error(`submit: ${res.status} ${await res.text()}`);
    });
    const submittedMs = performance.now() - t0;
    await until('all jobs to complete', () => completed.get()!.n >= JOBS);
    const totalMs = performance.now() - t0;
    const cpuMsPerJob = await cpu.stop(JOBS);
    // The jobs' peak, read before the latency client logs in (scrypt's moment of 128 MiB).
    const serverPeakRssMiB = yunji.peakRssMiB();
    const latency = await eventLatency(yunji.url);
    return {
      jobs: JOBS,
      completedPerSecond: rate(JOBS, totalMs),
      submittedPerSecond: rate(JOBS, submittedMs),
      seconds: round(totalMs / 1000, 1),
      loadAverage1m: [loadBefore, load1m()],
      cpuMsPerJob,
      serverPeakRssMiB,
      loginPeakRssMiB,
      eventLatencyMs: latency,
      settings: `one yunji serve, ${JSON.stringify(YUNJI_WORKER_ENV)}; submitted over HTTP, ${IN_FLIGHT} in flight`,
    };
  } finally {
    reader.close();
    await yunji.stop();
  }
}

async function yunjiOnPostgres(url: string) {
  // This process migrates and bootstraps the database and submits through Yunji's own submitJob,
  // as pg-boss's side uses boss.send; two worker processes run the jobs.
  const dir = mkdtempSync(join(tmpdir(), 'yunji-bench-submit-'));
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const workers: Awaited<ReturnType<typeof startBackground>>[] = [];
  const startWorkers = async () => {
    for (let i = 0; i < 2; i++) {
      workers.push(
        await startBackground(
          ['bin/yunji.js', 'worker'],
          { YUNJI_DATABASE_URL: url, YUNJI_DATA_DIR: dir, YUNJI_LOG_LEVEL: 'info', ...YUNJI_WORKER_ENV },
          /yunji worker running/,
        ),
      );
    }
  };
  const stopWorkers = async () => {
    for (const w of workers.splice(0)) await w.stop();
  };
  try {
    const config = loadConfig({ YUNJI_DATABASE_URL: url, YUNJI_DATA_DIR: dir, YUNJI_ADMIN_PASSWORD: ADMIN.password });
    // Schema and admin made (and their transactions published) before anything is counted.
    const setup = await openRuntime(config, pino({ level: 'warn' }));
    await bootstrapIfEmpty(setup.core).finally(() => setup.database.close());
    const runtime = await openRuntime(config, pino({ level: 'warn' }));
    let closed = false;
    const close = async () => {
      if (!closed) await runtime.database.close();
      closed = true;
    };
    let throughput;
    try {
      await startWorkers();
      const cpu = new CpuMeter({ workers: workers.map((w) => w.child.pid!) }, client);
      const tx0 = await transactions(client);
      const loadBefore = load1m();
      await cpu.start();
      const t0 = performance.now();
      await submitAll(JOBS, () => submitJob(runtime.core, { tenantId: 1, action: 'noop' }));
      const submittedMs = performance.now() - t0;
      await until(
        'all jobs to complete',
        async () => (await completedOn(client, `select count(*) as n from jobs where status = 'completed'`)) >= JOBS,
      );
      const totalMs = performance.now() - t0;
      const cpuMsPerJob = await cpu.stop(JOBS);
      const loadAfter = load1m();
      await stopWorkers();
      await close();
      throughput = {
        completedPerSecond: rate(JOBS, totalMs),
        submittedPerSecond: rate(JOBS, submittedMs),
        seconds: round(totalMs / 1000, 1),
        loadAverage1m: [loadBefore, loadAfter],
        cpuMsPerJob,
        transactionsPerJob: round(((await transactions(client)) - tx0) / JOBS, 2),
      };
    } finally {
      await close();
    }
    // Event latency: an API process serves the WebSocket; the jobs run in the worker processes.
    await startWorkers();
    const api = await startYunji(url, { YUNJI_WORKERS: '0' });
    try {
      return {
        ...throughput,
        eventLatencyMs: await eventLatency(api.url),
        settings: `2 yunji worker processes, ${JSON.stringify(YUNJI_WORKER_ENV)}; submitJob from the bench process, ${IN_FLIGHT} in flight`,
      };
    } finally {
      await api.stop();
    }
  } finally {
    await stopWorkers();
    await client.end();
    rmSync(dir, { recursive: true, force: true });
  }
}

async function pgBossOnPostgres(url: string) {
  const env = {
    DATABASE_URL: url,
    QUEUE: 'noop',
    BENCH_LOOPS: String(BOSS.loops),
    BENCH_BATCH: String(BOSS.batchSize),
    BENCH_POLL: String(BOSS.pollingIntervalSeconds),
  };
  // Schema and queue made (and their transactions published) before anything is counted.
  const setup = new PgBoss({ connectionString: url, supervise: false, schedule: false });
  await setup.start();
  await setup.createQueue('noop');
  await setup.stop({ graceful: false, wait: true });
  const boss = new PgBoss({ connectionString: url, max: 10, supervise: false, schedule: false });
  boss.on('error', (err) => console.error('pg-boss:', err));
  await boss.start();
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  const workers: Awaited<ReturnType<typeof startBackground>>[] = [];
  try {
    for (let i = 0; i < BOSS.processes; i++)
      workers.push(await startBackground(['--import', import.meta.resolve('tsx'), 'bench/peers/pgboss-worker.ts'], env, /ready/));
    const cpu = new CpuMeter({ workers: workers.map((w) => w.child.pid!) }, client);
    const tx0 = await transactions(client);
    const loadBefore = load1m();
    await cpu.start();
    const t0 = performance.now();
    await submitAll(JOBS, () => boss.send('noop', {}));
    const submittedMs = performance.now() - t0;
    await until(
      'all pg-boss jobs to complete',
      async () => (await completedOn(client, `select count(*) as n from pgboss.job where name = 'noop' and state = 'completed'`)) >= JOBS,
    );
    const totalMs = performance.now() - t0;
    const cpuMsPerJob = await cpu.stop(JOBS);
    const loadAfter = load1m();
    for (const w of workers.splice(0)) await w.stop();
    await boss.stop({ graceful: false, wait: true });
    const transactionsPerJob = round(((await transactions(client)) - tx0) / JOBS, 2);
    return {
      completedPerSecond: rate(JOBS, totalMs),
      submittedPerSecond: rate(JOBS, submittedMs),
      seconds: round(totalMs / 1000, 1),
      loadAverage1m: [loadBefore, loadAfter],
      cpuMsPerJob,
      transactionsPerJob,
      settings: `pg-boss ${pgBossVersion()}: ${BOSS.processes} processes × ${BOSS.loops} work() loops, batchSize ${BOSS.batchSize}, pollingIntervalSeconds ${BOSS.pollingIntervalSeconds}; boss.send from the bench process, ${IN_FLIGHT} in flight`,
    };
  } finally {
    for (const w of workers) await w.stop();
    await client.end();
    await boss.stop({ graceful: false, wait: true });
  }
}

function pgBossVersion(): string {
  return (JSON.parse(readFileSync(join(ROOT, 'node_modules', 'pg-boss', 'package.json'), 'utf8')) as { version: string }).version;
}

export async function jobsBench(): Promise<Record<string, unknown>> {
  // Two cores run the bench, the server processes and PostgreSQL alike: anything else running skews all of it.
  const host = { cores: cpus().length, loadAverage1mAtStart: load1m() };
  const sqlite = await sqliteRun();
  const reason = await postgresUnavailableReason();
  if (reason) return { host, sqlite, postgres: `skipped: ${reason}` };
  const forYunji = await createPgDatabase();
  const forBoss = await createPgDatabase();
  try {
    const yunji = await yunjiOnPostgres(forYunji.url);
    const pgBoss = await pgBossOnPostgres(forBoss.url);
    return {
      host,
      sqlite,
      postgres: {
        jobs: JOBS,
        yunji,
        pgBoss,
        ratio: round(yunji.completedPerSecond / pgBoss.completedPerSecond),
        // pg-boss's CPU per job over Yunji's: the ratio to expect where CPU is the limit, less sensitive to other load than the rates.
        cpuRatio: round(pgBoss.cpuMsPerJob.total! / yunji.cpuMsPerJob.total!),
      },
      targets: 'PostgreSQL ratio ≥ 1.0 (aim 2.0); jobEnd p99 ≤ 50 ms',
    };
  } finally {
    await forYunji.drop();
    await forBoss.drop();
  }
}
