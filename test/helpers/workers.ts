import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import { inheritedEnv, ROOT, TSX, type RunningServer } from './server.ts';

export interface RunningWorker {
  proc: ChildProcess;
  output(): string;
  /** SIGKILL: the process dies without a word, as a crash would. */
  kill9(): Promise<void>;
  stop(): Promise<number | null>;
}

/** Spawns `yunji worker` (the real CLI) on a server's database and data dir. */
export async function startWorker(
  server: Pick<RunningServer, 'dataDir' | 'databaseUrl'>,
  env: Record<string, string> = {},
): Promise<RunningWorker> {
  const proc = spawn(process.execPath, ['--import', TSX, 'src/main.ts', 'worker'], {
    cwd: ROOT,
    env: {
      ...inheritedEnv(),
      YUNJI_DATA_DIR: server.dataDir,
      YUNJI_DATABASE_URL: server.databaseUrl,
      YUNJI_LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`worker did not start within 30 s:\n${out}`)), 30_000);
    const check = () => {
      if (out.includes('yunji worker running')) {
        clearTimeout(timer);
        proc.stdout.off('data', check);
        resolve();
      }
    };
    proc.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`worker exited with ${code} before running:\n${out}`));
    });
  });
  return {
    proc,
    output: () => out,
    kill9: async () => {
      proc.kill('SIGKILL');
      await exited;
    },
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
      return exited;
    },
  };
}

/** Polls `probe` until it returns a value that is not undefined; fails after `timeoutMs`. */
export async function eventually<T>(probe: () => Promise<T | undefined>, what: string, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs a read query straight on a server's database (SQL that both databases accept, no parameters). */
export async function queryDb<T = Record<string, unknown>>(
  server: Pick<RunningServer, 'dataDir' | 'databaseUrl'>,
  sql: string,
): Promise<T[]> {
  if (server.databaseUrl) {
    const c = new pg.Client({ connectionString: server.databaseUrl });
    await c.connect();
    try {
      return (await c.query(sql)).rows as T[];
    } finally {
      await c.end();
    }
  }
  const db = new BetterSqlite3(join(server.dataDir, 'yunji.db'), { readonly: true });
  try {
    return db.prepare(sql).all() as T[];
  } finally {
    db.close();
  }
}
