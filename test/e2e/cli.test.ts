import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPgDatabase, databaseKinds } from '../helpers/databases.ts';
import { call, login, runCli, startServer } from '../helpers/server.ts';

const kinds = await databaseKinds();

describe.each(kinds)('yunji CLI on %s', (kind) => {
  let dataDir: string;
  let databaseUrl = '';
  let drop: (() => Promise<void>) | undefined;

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), 'yunji-cli-'));
    if (kind === 'postgres') ({ url: databaseUrl, drop } = await createPgDatabase());
  });
  afterAll(async () => {
    rmSync(dataDir, { recursive: true, force: true });
    await drop?.();
  });

  const yunji = (...args: string[]) => runCli(args, { dataDir, databaseUrl, timeoutMs: 30_000 });

  it('migrates, creates a user, a tenant and an API key that the server then accepts', async () => {
    const migrate = yunji('migrate');
    expect(migrate.status).toBe(0);
    expect(migrate.stdout).toContain('database is up to date');

    const user = yunji('admin', 'create-user', '--email', 'Bob@Example.com', '--password', 'bob-password');
    expect(user.status, user.stderr).toBe(0);
    expect(user.json()).toMatchObject({ email: 'bob@example.com' });
    expect(user.json().password).toBeUndefined();

    const generated = yunji('admin', 'create-user', '--email', 'carol@example.com');
    expect(generated.status, generated.stderr).toBe(0);
    const carolPassword = generated.json().password as string;
    expect(carolPassword.length).toBeGreaterThanOrEqual(12);

    const tenant = yunji('admin', 'create-tenant', '--name', 'Ops', '--owner', 'bob@example.com');
    expect(tenant.status, tenant.stderr).toBe(0);
    const tenantId = tenant.json().id as number;
    expect(tenant.json().project_key).toMatch(/^[A-Za-z0-9_-]+$/);

    const key = yunji(
      'admin',
      'create-api-key',
      '--tenant',
      String(tenantId),
      '--email',
      'bob@example.com',
      '--name',
      'ci',
      '--role',
      'member',
    );
    expect(key.status, key.stderr).toBe(0);
    expect(key.json().key).toMatch(/^yk_/);

    // Dave joins the tenant as a viewer through the CLI too.
    const dave = yunji(
      'admin',
      'create-user',
      '--email',
      'dave@example.com',
      '--password',
      'dave-password',
      '--tenant',
      String(tenantId),
      '--role',
      'viewer',
    );
    expect(dave.status, dave.stderr).toBe(0);

    const server = await startServer(kind, { dataDir, databaseUrl });
    try {
      const viaKey = await call(server.url, 'GET', '/api/auth/session', { token: key.json().key });
      expect(viaKey.status).toBe(200);
      expect(viaKey.body.current_tenant.name).toBe('Ops');
      expect(viaKey.body.current_role).toBe('member');
      await login(server.url, 'bob@example.com', 'bob-password');
      const daveToken = await login(server.url, 'dave@example.com', 'dave-password');
      const daveSession = await call(server.url, 'GET', '/api/auth/session', { token: daveToken });
      expect(daveSession.body.current_role).toBe('viewer');
      // A user without any tenant can authenticate but has nowhere to work.
      const carol = await call(server.url, 'POST', '/api/auth/login', { body: { email: 'carol@example.com', password: carolPassword } });
      expect(carol.status).toBe(403);
    } finally {
      await server.dispose();
    }
  });

  it('explains mistakes: duplicates, unknown users, non-members, bad options', () => {
    const dup = yunji('admin', 'create-user', '--email', 'bob@example.com', '--password', 'another-password');
    expect(dup.status).toBe(1);
    expect(dup.stderr).toContain('already exists');

    const noOwner = yunji('admin', 'create-tenant', '--name', 'X', '--owner', 'nobody@example.com');
    expect(noOwner.status).toBe(1);
    expect(noOwner.stderr).toContain('user nobody@example.com not found');

    const notMember = yunji('admin', 'create-api-key', '--tenant', '1', '--email', 'carol@example.com', '--name', 'k');
    expect(notMember.status).toBe(1);
    expect(notMember.stderr).toContain('not an active member');

    const badTenant = yunji('admin', 'create-api-key', '--tenant', 'abc', '--email', 'bob@example.com', '--name', 'k');
    expect(badTenant.status).toBe(2);
    expect(badTenant.stderr).toContain('--tenant must be a positive integer');

    const unknownOption = yunji('admin', 'create-user', '--emial', 'x@example.com');
    expect(unknownOption.status).toBe(2);
    expect(unknownOption.stderr).toContain('Usage: yunji');

    const unknownCommand = yunji('frobnicate');
    expect(unknownCommand.status).toBe(2);
    expect(unknownCommand.stderr).toContain("unknown command 'frobnicate'");

    const shortPassword = yunji('admin', 'create-user', '--email', 'eve@example.com', '--password', 'short');
    expect(shortPassword.status).toBe(1);
    expect(shortPassword.stderr).toContain('--password must NOT have fewer than 8 characters');

    const badEmail = yunji('admin', 'create-user', '--email', 'not-an-email');
    expect(badEmail.status).toBe(1);
    expect(badEmail.stderr).toContain('--email must match format "email"');
  });
});
