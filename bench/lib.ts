import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import autocannon from 'autocannon';
import { startCommandSetup } from '../test/helpers/server.ts';

export const ROOT = resolve(import.meta.dirname, '..');
const TSX = import.meta.resolve('tsx');

export async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const s = createServer();
    s.once('error', rej);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => res(port));
    });
  });
}

/** SIGTERM, and resolves once the process has exited (at once if it already had). */
export async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export interface Proc {
  url: string;
  child: ChildProcess;
  /** Peak resident memory so far, in MiB (VmHWM). */
  peakRssMiB(): number;
  /** Starts the peak anew from the memory held now (so a step's peak is measured apart from an earlier one's). */
  resetPeakRss(): void;
  stop(): Promise<void>;
}

async function waitHealthy(url: string, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`process exited early:\n${output()}`);
    try {
      if ((await fetch(`${url}/healthz`)).ok) return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`not healthy after 30 s:\n${output()}`);
}

/** Starts a TypeScript entry point as its own process (logs discarded) and waits for /healthz; `nodeFlags` go to Node before the script. */
export async function startProcess(script: string, args: string[], env: Record<string, string>, port: number, nodeFlags: string[] = []): Promise<Proc> {
  // BENCH_CPU_PROFILE=<dir>: each process under test writes a V8 CPU profile there when it exits.
  const profile = process.env.BENCH_CPU_PROFILE ? ['--cpu-prof', `--cpu-prof-dir=${process.env.BENCH_CPU_PROFILE}`] : [];
  // Compiled JavaScript runs as is; TypeScript (the peers) through the tsx loader.
  const loader = script.endsWith('.ts') ? ['--import', TSX] : [];
  const child = spawn(process.execPath, [...nodeFlags, ...profile, ...loader, script, ...args], {
    cwd: ROOT,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const url = `http://127.0.0.1:${port}`;
  await waitHealthy(url, child, () => err);
  return {
    url,
    child,
    peakRssMiB: () => {
      const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
      return m ? Math.round(Number(m[1]) / 1024) : NaN;
    },
    // Linux: writing 5 to clear_refs sets VmHWM back to the current RSS.
    resetPeakRss: () => writeFileSync(`/proc/${child.pid}/clear_refs`, '5'),
    stop: () => stopChild(child),
  };
}

/** CPU time (user + system) of a process so far, in seconds (Linux clock ticks are 10 ms). */
export function cpuSecondsOf(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

export const ADMIN = { email: 'admin@example.com', password: 'bench-admin-password' };

let built = false;

const startCommand = startCommandSetup(ROOT);

/** The Node flags `npm start` runs the server with (package.json `config.nodeFlags`), then any in `BENCH_EXTRA_NODE_FLAGS` (to try a flag without editing package.json). */
export const YUNJI_NODE_FLAGS = [...startCommand.nodeFlags, ...(process.env.BENCH_EXTRA_NODE_FLAGS ?? '').split(' ')].filter(Boolean);

/**
 * Yunji's real server, as `npm start` runs it (compiled once per bench run), on a fresh data dir
 * (SQLite) or the given PostgreSQL URL; the data dir is made in `parentDir`.
 */
export async function startYunji(databaseUrl = '', env: Record<string, string> = {}, parentDir = tmpdir()): Promise<Proc & { dataDir: string }> {
  if (!built) {
    execFileSync('npm', ['run', '--silent', 'build'], { cwd: ROOT, stdio: 'inherit' });
    built = true;
  }
  const dataDir = mkdtempSync(join(parentDir, 'yunji-bench-'));
  const port = await freePort();
  const proc = await startProcess(
    'bin/yunji.js',
    ['serve'],
    {
      YUNJI_PORT: String(port),
      YUNJI_DATA_DIR: dataDir,
      YUNJI_DATABASE_URL: databaseUrl,
      YUNJI_ADMIN_PASSWORD: ADMIN.password,
      YUNJI_LOG_LEVEL: 'warn',
      ...startCommand.env,
      ...env,
    },
    port,
    YUNJI_NODE_FLAGS,
  );
  const stop = proc.stop;
  return { ...proc, dataDir, stop: async () => (await stop(), rmSync(dataDir, { recursive: true, force: true })) };
}

export async function loginToken(url: string): Promise<string> {
  const res = await fetch(`${url}/api/auth/login`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ADMIN) });
  if (!res.ok) throw new Error(`login failed: ${res.status} ${await res.text()}`);
  return ((await res.json()) as { token: string }).token;
}

/**
 * Logs in to a server the bench started. A login holds scrypt's 128 MiB for a moment
 * (docs/SECURITY.md): its peak is returned, and the server's peak starts anew after it, so the
 * work measured next reports its own.
 */
export async function loginMeasured(proc: Proc): Promise<{ token: string; loginPeakRssMiB: number }> {
  const token = await loginToken(proc.url);
  const loginPeakRssMiB = proc.peakRssMiB();
  proc.resetPeakRss();
  return { token, loginPeakRssMiB };
}

export interface LoadResult {
  rps: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

export async function load(url: string, opts: { connections: number; duration: number; headers?: Record<string, string> }): Promise<LoadResult> {
  const r = await autocannon({ url, connections: opts.connections, duration: opts.duration, headers: opts.headers });
  return { rps: Math.round(r.requests.average), p50: r.latency.p50, p99: r.latency.p99, errors: r.errors + r.timeouts, non2xx: r.non2xx };
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

/** The middle value (the upper of the two middle ones for an even count); NaN for none. */
export const median = (xs: number[]) => (xs.length === 0 ? NaN : [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!);

export const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
