import { spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { createPgDatabase, databaseKinds } from '../helpers/databases.ts';
import { ADMIN_EMAIL, ADMIN_PASSWORD, call, ROOT, startServer, TSX, waitForOutput, type RunningServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

describe.each(kinds)('process lifecycle on %s', (kind) => {
  const cleanup: (() => Promise<void>)[] = [];
  afterAll(async () => {
    for (const c of cleanup) await c();
  });

  it('first start prints a generated admin password once; a restart keeps the data and prints nothing', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'yunji-life-'));
    const pgDb = kind === 'postgres' ? await createPgDatabase() : undefined;
    cleanup.push(async () => {
      rmSync(dataDir, { recursive: true, force: true });
      await pgDb?.drop();
    });
    const first = await startServer(kind, { dataDir, databaseUrl: pgDb?.url, env: { YUNJI_ADMIN_PASSWORD: '' } });
    const printed = /Password \(shown only now\): (\S+)/.exec(first.output())?.[1];
    expect(printed).toBeDefined();
    expect((await call(first.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: printed } })).status).toBe(200);
    expect(await first.stop()).toBe(0);

    const second = await startServer(kind, { dataDir, databaseUrl: pgDb?.url, env: { YUNJI_ADMIN_PASSWORD: '' } });
    expect(second.output()).not.toMatch(/shown only now/);
    expect((await call(second.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: printed } })).status).toBe(200);
    expect(await second.stop()).toBe(0);
  });

  it('answers health and readiness, and tags every response with a request id', async () => {
    const server = await startServer(kind);
    cleanup.push(() => server.dispose());
    const health = await call(server.url, 'GET', '/healthz');
    expect(health.status).toBe(200);
    expect(health.body).toEqual({ status: 'ok' });
    const ready = await call(server.url, 'GET', '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
    // Each answer says how long the server itself took, errors too: never more than the client waited.
    for (const path of ['/readyz', '/v1/bucket/get?bucketID=1']) {
      const t = performance.now();
      const res = await call(server.url, 'GET', path);
      const waited = performance.now() - t;
      const timing = /^app;dur=(\d+\.\d{2})$/.exec(res.headers.get('server-timing') ?? '');
      expect(timing, `server-timing of ${path}`).not.toBeNull();
      expect(Number(timing![1])).toBeGreaterThan(0);
      expect(Number(timing![1])).toBeLessThanOrEqual(waited);
    }
    // The request id reaches the log lines of that request.
    const id = 'trace-me-123';
    await call(server.url, 'GET', '/api/auth/session', { headers: { 'x-request-id': id } });
    await new Promise((r) => setTimeout(r, 100));
    expect(server.output()).toContain(`"reqId":"${id}"`);
    // Credentials never reach the log.
    await call(server.url, 'POST', '/api/auth/login', { body: { email: ADMIN_EMAIL, password: ADMIN_PASSWORD } });
    await new Promise((r) => setTimeout(r, 100));
    expect(server.output()).not.toContain(ADMIN_PASSWORD);
  });

  // A request whose body is only half sent is in flight for as long as the test wants: the server
  // must wait for it on SIGTERM, and answer it once the rest arrives.
  const halfSentLogin = (url: string) => {
    const { hostname, port } = new URL(url);
    const body = JSON.stringify({ email: ADMIN_EMAIL, password: ADMIN_PASSWORD });
    const socket = connect(Number(port), hostname);
    let response = '';
    socket.on('data', (d) => (response += d.toString()));
    const closed = new Promise<string>((res) => socket.on('close', () => res(response)));
    socket.on('error', () => {});
    socket.write(
      `POST /api/auth/login HTTP/1.1\r\nHost: ${hostname}\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body.slice(0, 10)}`,
    );
    return { finish: () => socket.write(body.slice(10)), closed };
  };

  it('SIGTERM drains in-flight requests, then exits 0', async () => {
    const server: RunningServer = await startServer(kind);
    cleanup.push(() => server.dispose());
    const pending = halfSentLogin(server.url);
    await waitForOutput(server, /"url":"\/api\/auth\/login"[^\n]*"msg":"incoming request"/);
    server.proc.kill('SIGTERM');
    await waitForOutput(server, /draining in-flight requests/);
    // New connections are no longer accepted while the old request is still being served.
    await expect(call(server.url, 'GET', '/healthz')).rejects.toThrow();
    expect(server.proc.exitCode).toBeNull();
    pending.finish();
    const raw = await pending.closed;
    expect(raw).toMatch(/^HTTP\/1.1 200 /);
    expect(raw).toMatch(/connection: close/i);
    expect(await server.stop()).toBe(0);
    expect(server.output()).toMatch(/"msg":"stopped"/);
  });

  it('a second SIGTERM exits at once', async () => {
    const server = await startServer(kind);
    cleanup.push(() => server.dispose());
    const pending = halfSentLogin(server.url);
    await waitForOutput(server, /"url":"\/api\/auth\/login"[^\n]*"msg":"incoming request"/);
    server.proc.kill('SIGTERM');
    await waitForOutput(server, /draining in-flight requests/);
    process.kill(server.proc.pid!, 'SIGTERM');
    expect(await server.stop()).toBe(1);
    expect(server.output()).toMatch(/second signal: exiting now/);
    await pending.closed;
  });
});

describe('start-up refuses bad settings with a message naming them', () => {
  const run = (env: Record<string, string>, cwd = ROOT) =>
    spawnSync(process.execPath, ['--import', TSX, join(ROOT, 'src/main.ts'), 'serve'], {
      cwd,
      env: { PATH: process.env.PATH, HOME: process.env.HOME, YUNJI_DATA_DIR: mkdtempSync(join(tmpdir(), 'yunji-bad-')), ...env },
      encoding: 'utf8',
      timeout: 30_000,
    });

  it('an invalid environment value', () => {
    const r = run({ YUNJI_PORT: 'eighty' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("YUNJI_PORT: must be an integer (got 'eighty')");
  });

  it('an unsupported database URL', () => {
    const r = run({ YUNJI_DATABASE_URL: 'mysql://localhost/db' });
    expect(r.status).toBe(1);
    expect(r.stderr).toContain('YUNJI_DATABASE_URL');
  });

  it('an unknown key in yunji.config.json', () => {
    const cwd = mkdtempSync(join(tmpdir(), 'yunji-cfg-'));
    writeFileSync(join(cwd, 'yunji.config.json'), JSON.stringify({ portt: 1 }));
    const r = run({}, cwd);
    expect(r.status).toBe(1);
    expect(r.stderr).toContain("'portt' (unknown setting)");
  });
});
