import { createServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL } from '../helpers/s3.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { TERMINAL_STATUSES, until } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * An S3 endpoint a tenant names that accepts connections and never answers holds no request, job
 * or worker forever: every S3 request Yunji makes for a tenant (user spaces, `s3` sources, the space
 * test) fails as "unreachable" after `YUNJI_S3_TIMEOUT` seconds of silence. Attacker: the owner of a
 * tenant of their own, with an endpoint on an address the operator allowed.
 */

/** A TCP port on 127.0.0.1 that accepts every connection and never sends a byte. */
async function silentPort(): Promise<{ port: number; accepted: () => number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.resume();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    accepted: () => accepted,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

const s3Space = (endpoint: string, name: string) => ({
  name,
  storage: { type: 'MinIO', endpoint, bucket: 'silent', region: 'us-east-1' },
  credential: { type: 'MinIO', ...S3_CREDENTIAL },
  shardStore: { maxSize: 0 },
});

describe.each(kinds)('an S3 endpoint that never answers (%s)', (kind) => {
  let server: RunningServer;
  let silent: Awaited<ReturnType<typeof silentPort>>;
  let endpoint: string;
  let api: ReturnType<typeof client>;
  let authorization: string;

  beforeAll(async () => {
    silent = await silentPort();
    endpoint = `http://127.0.0.1:${silent.port}`;
    server = await startServer(kind, { env: { YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_S3_TIMEOUT: '1', YUNJI_JOB_POLL: '100' } });
    const token = await login(server.url);
    api = client(server.url, token);
    authorization = `Bearer ${token}`;
    const tenant = await api.post('/api/tenants', { name: 'Silent' });
    expect(tenant.status, tenant.text).toBe(201);
    expect((await api.put('/api/auth/tenant', { tenant_id: tenant.body.id })).status).toBe(200);
  });
  afterAll(async () => {
    await server?.dispose();
    await silent?.close();
  });

  it('answers a space test with 502 unreachable instead of hanging', async () => {
    const { storage, credential } = s3Space(endpoint, 'test');
    const res = await api.post('/v1/userSpace/test', { storage, credential });
    expect([res.status, res.body?.code], res.text).toEqual([502, 'OperationFailed']);
    expect(res.body.message).toMatch(/unreachable/);
    expect(silent.accepted()).toBeGreaterThan(0);
  });

  it('fails an upload into a space there with 502 unreachable instead of hanging', async () => {
    const space = await api.post('/v1/userSpace/create', s3Space(endpoint, 'silent'));
    expect(space.body?.code, space.text).toBe('OK');
    const bucket = await api.post('/v1/bucket/create', { name: 'b-silent' });
    const pkg = await api.post('/v1/package/create', { bucketID: bucket.body.data.bucket.bucketID, name: 'silent' });
    expect(pkg.body?.code, pkg.text).toBe('OK');
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID: pkg.body.data.package.packageID, affinity: space.body.data.userSpace.userSpaceID }));
    form.append('files', new Blob([Buffer.from('never stored')]), 'x.txt');
    const up = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization }, body: form });
    const text = await up.text();
    expect(up.status, text).toBe(502);
    expect(text).toMatch(/unreachable/);
  });

  it('fails the sync of an s3 source there instead of holding its worker', async () => {
    const bucket = await api.post('/v1/bucket/create', { name: 'b-source' });
    const pkg = await api.post('/v1/package/create', { bucketID: bucket.body.data.bucket.bucketID, name: 'from-silent' });
    const config = {
      endpoint,
      bucket: 'silent',
      force_path_style: true,
      access_key_id: S3_CREDENTIAL.accessKeyId,
      secret_access_key: S3_CREDENTIAL.secretAccessKey,
    };
    const source = await api.post('/api/sync/sources', {
      name: 'silent-s3',
      type: 's3',
      config,
      package_id: pkg.body.data.package.packageID,
    });
    expect(source.status, source.text).toBe(201);
    const started = await api.post('/api/sync/jobs', { source: 'silent-s3' });
    expect(started.status, started.text).toBe(200);
    const job = await until(
      'the sync of the silent source to end',
      async () => {
        const res = await api.get(`/api/sync/jobs/${started.body.id}`);
        return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
      },
      50_000,
    );
    expect(job.status).toBe('failed');
    expect(JSON.stringify(job)).toMatch(/unreachable/);
  });
});
