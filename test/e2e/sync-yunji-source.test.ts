import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { TERMINAL_STATUSES, until, type Api } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * A `yunji` source: a package of another Yunji server, read through its /v1 API with that
 * server's API key. The "other server" is this same server reached over HTTP, in another tenant,
 * which is how a second installation looks from here.
 */
describe.each(kinds)('yunji source sync on %s', (kind) => {
  let server: RunningServer;
  let admin: Api;
  let adminToken: string;
  let remote: Api;
  let remoteKey: string;
  let writerKey: string;
  let remotePackage: number;
  let localPackage: number;
  const files = new Map<string, Buffer>();

  const upload = async (token: string, packageID: number, entries: [string, Buffer][]) => {
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID }));
    for (const [name, content] of entries) form.append('files', new Blob([content]), encodeURIComponent(name));
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    expect(res.status, await res.clone().text()).toBe(200);
  };
  const runSync = async (source: string) => {
    const started = await admin.post('/api/sync/jobs', { source });
    expect(started.status, started.text).toBe(200);
    return until(`sync job ${started.body.id}`, async () => {
      const j = (await admin.get(`/api/sync/jobs/${started.body.id}`)).body;
      return TERMINAL_STATUSES.includes(j.status) ? j : undefined;
    });
  };

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_OUTBOUND_ALLOW: '127.0.0.1', YUNJI_JOB_POLL: '100' } });
    const token = await login(server.url);
    adminToken = token;
    admin = client(server.url, token);
    const bucket = (await admin.post('/v1/bucket/create', { name: 'mine' })).body.data.bucket.bucketID;
    localPackage = (await admin.post('/v1/package/create', { bucketID: bucket, name: 'copy' })).body.data.package.packageID;
    // The remote side: another tenant with its own package and a read-only key.
    const tenant = await admin.post('/api/tenants', { name: 'remote' });
    const remoteSession = client(server.url, token);
    await remoteSession.put('/api/auth/tenant', { tenant_id: tenant.body.id });
    writerKey = (await remoteSession.post('/api/keys', { name: 'writer', role: 'member' })).body.key as string;
    remoteKey = (await remoteSession.post('/api/keys', { name: 'reader', role: 'viewer' })).body.key as string;
    remote = client(server.url, writerKey);
    await admin.put('/api/auth/tenant', { tenant_id: 1 });
    const rb = (await remote.post('/v1/bucket/create', { name: 'theirs' })).body.data.bucket.bucketID;
    remotePackage = (await remote.post('/v1/package/create', { bucketID: rb, name: 'data' })).body.data.package.packageID;
    for (let i = 0; i < 1203; i++) files.set(`d${i % 7}/f${String(i).padStart(4, '0')}.bin`, randomBytes(64 + (i % 50)));
    files.set('é/中文.txt', Buffer.from('unicode'));
    const all = [...files.entries()];
    for (let i = 0; i < all.length; i += 400) await upload(writerKey, remotePackage, all.slice(i, i + 400));
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('copies a remote package page by page, skips what is unchanged by hash, mirrors deletions, and keeps the key secret', async () => {
    const created = await admin.post('/api/sync/sources', {
      name: 'other-yunji',
      type: 'yunji',
      config: { url: server.url, package_id: remotePackage, api_key: remoteKey },
      package_id: localPackage,
      mirror: true,
    });
    expect(created.status, created.text).toBe(201);
    expect(created.body.config).toEqual({ url: server.url, package_id: remotePackage, api_key: '********' });
    expect(created.text).not.toContain(remoteKey);

    const first = await runSync('other-yunji');
    expect(first.status, JSON.stringify(first.errors)).toBe('succeeded');
    expect(first.stats).toMatchObject({ checked: files.size, copied: files.size, failed: 0 });
    const copied = await listAll(localPackage);
    const theirs = await listAllRemote();
    expect(copied.map((o) => [o.path, o.fileHash])).toEqual(theirs.map((o) => [o.path, o.fileHash]));

    const again = await runSync('other-yunji');
    expect(again.stats).toMatchObject({ checked: files.size, copied: 0, updated: 0, skipped: files.size });

    // One changed, one deleted on the remote.
    await upload(writerKey, remotePackage, [['d3/f0003.bin', Buffer.from('changed content')]]);
    const gone = theirs.find((o) => o.path === 'd0/f0000.bin')!;
    expect((await remote.post('/v1/object/delete', { objectIDs: [gone.objectID] })).body.code).toBe('OK');
    const third = await runSync('other-yunji');
    expect(third.stats).toMatchObject({ checked: files.size - 1, updated: 1, deleted: 1, skipped: files.size - 2, failed: 0 });
    const now = await listAll(localPackage);
    expect(now.map((o) => o.path)).not.toContain('d0/f0000.bin');
    const changed = now.find((o) => o.path === 'd3/f0003.bin')!;
    const bytes = Buffer.from(
      await (
        await fetch(`${server.url}/v1/object/download?objectID=${changed.objectID}`, { headers: { authorization: `Bearer ${adminToken}` } })
      ).arrayBuffer(),
    );
    expect(bytes.toString()).toBe('changed content');
  });

  it('fails cleanly with a key the remote refuses', async () => {
    await admin.post('/api/sync/sources', {
      name: 'bad-key',
      type: 'yunji',
      config: { url: server.url, package_id: remotePackage, api_key: 'yk_not-a-key' },
      package_id: localPackage,
    });
    const job = await runSync('bad-key');
    expect(job.status).toBe('failed');
    expect(job.error_message).toMatch(/401/);
  });

  async function listAll(packageID: number) {
    const out: { objectID: number; path: string; fileHash: string }[] = [];
    let token = '';
    do {
      const res = await admin.get(
        `/v1/object/listByPath?packageID=${packageID}&isPrefix=true${token ? `&continuationToken=${encodeURIComponent(token)}` : ''}`,
      );
      out.push(...res.body.data.objects);
      token = res.body.data.nextContinuationToken;
    } while (token);
    return out;
  }
  async function listAllRemote() {
    const out: { objectID: number; path: string; fileHash: string }[] = [];
    let token = '';
    do {
      const res = await remote.get(
        `/v1/object/listByPath?packageID=${remotePackage}&isPrefix=true${token ? `&continuationToken=${encodeURIComponent(token)}` : ''}`,
      );
      out.push(...res.body.data.objects);
      token = res.body.data.nextContinuationToken;
    } while (token);
    return out;
  }
});
