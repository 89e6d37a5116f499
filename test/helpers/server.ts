import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createPgDatabase, type DbKind } from './databases.ts';

export const ROOT = resolve(import.meta.dirname, '../..');
/** The tsx loader, by URL, so a process started in any directory can run the TypeScript sources. */
export const TSX = import.meta.resolve('tsx');

/**
 * The Node flags and environment `npm start` runs the server with, from package.json's `config`
 * (test/e2e/start-command.test.ts checks that the start script uses exactly these).
 */
export function startCommandSetup(projectDir = ROOT): { nodeFlags: string[]; env: Record<string, string> } {
  const { config } = JSON.parse(readFileSync(join(projectDir, 'package.json'), 'utf8')) as {
    config: { nodeFlags: string; glibcTunables: string };
  };
  return { nodeFlags: config.nodeFlags.split(' '), env: { GLIBC_TUNABLES: config.glibcTunables } };
}

/**
 * True in the `native-off` project (vitest.config.ts), which runs the storage and sync end-to-end
 * tests again on pure Node. A test with no local file work of its own to speak of (a parser's
 * limits, one big streamed body, a source's timeouts) skips that second run: `it.skipIf(nativeOffRun)`.
 */
export const nativeOffRun = process.env.YUNJI_NATIVE === 'off';

/**
 * What every process a test starts takes from the test's own environment: the path, the home, and
 * `YUNJI_NATIVE` where set (vitest's `native-off` project sets it to run the servers on pure Node).
 */
export function inheritedEnv(): Record<string, string | undefined> {
  const { PATH, HOME, YUNJI_NATIVE } = process.env;
  return { PATH, HOME, ...(YUNJI_NATIVE !== undefined ? { YUNJI_NATIVE } : {}) };
}

/**
 * A copy of the project to start servers from: its own `src/`, `bin/`, package.json and tsconfigs
 * (modules resolve from where a file really is, so links to this project's would find its
 * packages), and a link to each package of this project's node_modules that `keep` accepts.
 */
export function projectCopy(keep: (name: string) => boolean): string {
  const dir = mkdtempSync(join(tmpdir(), 'yunji-project-'));
  for (const tree of ['src', 'bin']) cpSync(join(ROOT, tree), join(dir, tree), { recursive: true });
  for (const file of ['package.json', 'tsconfig.json', 'tsconfig.build.json']) copyFileSync(join(ROOT, file), join(dir, file));
  mkdirSync(join(dir, 'node_modules'));
  for (const entry of readdirSync(join(ROOT, 'node_modules'))) {
    if (keep(entry)) symlinkSync(join(ROOT, 'node_modules', entry), join(dir, 'node_modules', entry));
  }
  return dir;
}

/** What one `yunji …` command printed and how it exited; `json` parses its output. */
export interface CliRun {
  status: number | null;
  stdout: string;
  stderr: string;
  json(): any;
}

/**
 * Runs `yunji <args>` (from the sources) as the operator would beside a server: in `dataDir`, on
 * its database (`databaseUrl`; '' for the SQLite file there), with `env` added.
 */
export function runCli(
  args: string[],
  where: { dataDir: string; databaseUrl: string; env?: Record<string, string>; timeoutMs?: number },
): CliRun {
  const r = spawnSync(process.execPath, ['--import', TSX, join(ROOT, 'src/main.ts'), ...args], {
    cwd: where.dataDir,
    env: { ...inheritedEnv(), YUNJI_DATA_DIR: where.dataDir, YUNJI_DATABASE_URL: where.databaseUrl, YUNJI_LOG_LEVEL: 'warn', ...where.env },
    encoding: 'utf8',
    timeout: where.timeoutMs ?? 60_000,
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, json: () => JSON.parse(r.stdout) };
}
export const ADMIN_EMAIL = 'admin@example.com';
export const ADMIN_PASSWORD = 'admin-password-1';

export interface RunningServer {
  url: string;
  kind: DbKind;
  dataDir: string;
  /** Empty for the SQLite file in the data dir. */
  databaseUrl: string;
  /** Everything the process printed so far. */
  output(): string;
  proc: ChildProcess;
  /** SIGTERM and wait for exit; returns the exit code. */
  stop(): Promise<number | null>;
  /** Stops the process and removes its data (and its PostgreSQL database). */
  dispose(): Promise<void>;
}

export interface StartOptions {
  env?: Record<string, string>;
  /** Reuse a data dir / database from an earlier server (restart tests). */
  dataDir?: string;
  databaseUrl?: string;
  /** Another copy of the project to run the server from (its `src/`, resolving packages from its `node_modules`). */
  projectDir?: string;
  /**
   * Start it as `npm start` does (`bin/yunji.js`, compiled or not as it decides, with the start
   * command's Node flags and environment), not from the sources through tsx.
   */
  startCommand?: boolean;
}

/** Spawns `yunji serve` (the real CLI) on a free port against a fresh SQLite file or PostgreSQL database. */
export async function startServer(kind: DbKind, options: StartOptions = {}): Promise<RunningServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'yunji-test-'));
  let dropPg: (() => Promise<void>) | undefined;
  let databaseUrl = options.databaseUrl ?? '';
  if (kind === 'postgres' && !databaseUrl) {
    const created = await createPgDatabase();
    databaseUrl = created.url;
    dropPg = created.drop;
  }
  const projectDir = options.projectDir ?? ROOT;
  const asStarted = options.startCommand ? startCommandSetup(projectDir) : undefined;
  const args = asStarted ? [...asStarted.nodeFlags, 'bin/yunji.js', 'serve'] : ['--import', TSX, 'src/main.ts', 'serve'];
  const proc = spawn(process.execPath, args, {
    cwd: projectDir,
    env: {
      ...inheritedEnv(),
      ...asStarted?.env,
      YUNJI_PORT: '0',
      YUNJI_HOST: '127.0.0.1',
      YUNJI_DATA_DIR: dataDir,
      YUNJI_DATABASE_URL: databaseUrl,
      YUNJI_ADMIN_EMAIL: ADMIN_EMAIL,
      YUNJI_ADMIN_PASSWORD: ADMIN_PASSWORD,
      YUNJI_LOG_LEVEL: 'info',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((res) => proc.once('exit', (code) => res(code)));

  // `npm start` may compile first.
  const startWithinMs = options.startCommand ? 120_000 : 30_000;
  const url = await new Promise<string>((res, rej) => {
    const timer = setTimeout(() => {
      proc.kill('SIGKILL'); // never leave a server behind that the test no longer knows of
      rej(new Error(`server did not start within ${startWithinMs / 1000} s:\n${out}`));
    }, startWithinMs);
    const check = () => {
      const m = /yunji listening on (http:\/\/[^"\s]+)/.exec(out);
      if (m?.[1]) {
        clearTimeout(timer);
        proc.stdout.off('data', check);
        res(m[1]);
      }
    };
    proc.stdout.on('data', check);
    void exited.then((code) => {
      clearTimeout(timer);
      rej(new Error(`server exited with ${code} before listening:\n${out}`));
    });
  });

  const stop = async () => {
    // Only one SIGTERM from here: a second one would make the server exit at once (non-zero).
    if (!proc.killed && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM');
    return exited;
  };
  return {
    url,
    kind,
    dataDir,
    databaseUrl,
    proc,
    output: () => out,
    stop,
    dispose: async () => {
      await stop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
      await dropPg?.();
    },
  };
}

/** Resolves once the server's output matches `pattern` `count` times. */
export async function waitForOutput(server: RunningServer, pattern: RegExp, count = 1, timeoutMs = 20_000): Promise<void> {
  const global = new RegExp(pattern.source, pattern.flags.includes('g') ? pattern.flags : `${pattern.flags}g`);
  const deadline = Date.now() + timeoutMs;
  while ((server.output().match(global)?.length ?? 0) < count) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${count}× ${pattern} in:\n${server.output()}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

export interface ApiResponse<T = any> {
  status: number;
  headers: Headers;
  body: T;
  text: string;
}

export interface CallOptions {
  token?: string;
  body?: unknown;
  /** Sent as-is instead of JSON-encoding `body`. */
  raw?: string | Buffer;
  headers?: Record<string, string>;
}

/** One HTTP call; JSON bodies are parsed when the response is JSON. */
export async function call<T = any>(base: string, method: string, path: string, opts: CallOptions = {}): Promise<ApiResponse<T>> {
  const headers: Record<string, string> = { ...opts.headers };
  if (opts.token) headers.authorization = `Bearer ${opts.token}`;
  let body: string | Buffer | undefined;
  if (opts.raw !== undefined) body = opts.raw;
  else if (opts.body !== undefined) {
    body = JSON.stringify(opts.body);
    headers['content-type'] ??= 'application/json';
  }
  const res = await fetch(base + path, { method, headers, body });
  const text = await res.text();
  let parsed: unknown = undefined;
  if ((res.headers.get('content-type') ?? '').includes('json') && text !== '') parsed = JSON.parse(text);
  return { status: res.status, headers: res.headers, body: parsed as T, text };
}

/** A client bound to one server, optionally with a token. */
export function client(base: string, token?: string) {
  const c = (method: string, path: string, opts: CallOptions = {}) => call(base, method, path, { token, ...opts });
  return {
    get: (path: string, opts?: CallOptions) => c('GET', path, opts),
    post: (path: string, body?: unknown, opts?: CallOptions) => c('POST', path, { body, ...opts }),
    put: (path: string, body?: unknown, opts?: CallOptions) => c('PUT', path, { body, ...opts }),
    patch: (path: string, body?: unknown, opts?: CallOptions) => c('PATCH', path, { body, ...opts }),
    delete: (path: string, opts?: CallOptions) => c('DELETE', path, opts),
    with: (t: string) => client(base, t),
  };
}

export async function login(base: string, email = ADMIN_EMAIL, password = ADMIN_PASSWORD): Promise<string> {
  const res = await call(base, 'POST', '/api/auth/login', { body: { email, password } });
  if (res.status !== 200) throw new Error(`login ${email} failed: ${res.status} ${res.text}`);
  return res.body.token as string;
}

/** A client of a new tenant: a second session of the admin, switched into it. */
export async function newTenantClient(base: string, name: string): Promise<ReturnType<typeof client>> {
  const session = client(base, await login(base));
  const tenant = await session.post('/api/tenants', { name });
  if (tenant.status !== 201) throw new Error(`creating tenant '${name}' failed: ${tenant.status} ${tenant.text}`);
  const switched = await session.put('/api/auth/tenant', { tenant_id: tenant.body.id });
  if (switched.status !== 200) throw new Error(`switching into tenant '${name}' failed: ${switched.status} ${switched.text}`);
  return session;
}

/** A client holding a new API key of `role`, made by `by` in its tenant. */
export async function keyClient(base: string, by: ReturnType<typeof client>, role: string): Promise<ReturnType<typeof client>> {
  const key = await by.post('/api/keys', { name: role, role });
  if (key.status !== 201) throw new Error(`creating a ${role} key failed: ${key.status} ${key.text}`);
  return client(base, key.body.key);
}

/**
 * Declares a body of `size` bytes but sends only its first 64 KiB, then reads the answer. The server
 * must refuse on the declared length alone; sending all 10 MB would race its connection close
 * (a client still writing can get a reset that discards the response).
 */
export function earlyResponse(
  base: string,
  method: string,
  path: string,
  size: number,
  token?: string,
): Promise<{ status: number; text: string }> {
  const { hostname, port } = new URL(base);
  return new Promise((resolve, reject) => {
    const socket = connect(Number(port), hostname);
    let raw = '';
    const done = () => {
      const m = /^HTTP\/1\.1 (\d{3})[^]*?\r\n\r\n([^]*)$/.exec(raw);
      if (m) resolve({ status: Number(m[1]), text: m[2]! });
      else reject(new Error(`no HTTP response: ${raw.slice(0, 200)}`));
    };
    socket.on('data', (d: Buffer) => {
      raw += d.toString();
      const len = /content-length: (\d+)/i.exec(raw);
      const bodyStart = raw.indexOf('\r\n\r\n');
      if (len && bodyStart >= 0 && raw.length - bodyStart - 4 >= Number(len[1])) {
        socket.destroy();
        done();
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => done());
    const auth = token ? `Authorization: Bearer ${token}\r\n` : '';
    socket.write(
      `${method} ${path} HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\n${auth}Content-Length: ${size}\r\n\r\n`,
    );
    socket.write(`{"pad":"${'x'.repeat(64 * 1024)}`);
  });
}
