import { createCipheriv, createHash, randomBytes } from 'node:crypto';
import { join } from 'node:path';
import BetterSqlite3 from 'better-sqlite3';
import pg from 'pg';
import type { S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, runCli, startServer, type RunningServer } from '../helpers/server.ts';
import { s3Client, s3Put, TERMINAL_STATUSES, until } from '../helpers/sync.ts';
import { queryDb } from '../helpers/workers.ts';

const kinds = await databaseKinds();

const KEY_A = 'key-A-first-secret-key-of-this-test-0123456789';
const KEY_B = 'key-B-second-secret-key-of-this-test-9876543210';
const SPACE_SECRET = 'space-secret-access-key-never-shown-1234';
const SOURCE_SECRET = 'source-secret-access-key-never-shown-5678';
const LEGACY_WEBHOOK_SECRET = 'whsec_sealed-in-the-v1-format-of-old';

/** A value in the first sealing format (`v1`: AES-256-GCM under SHA-256 of `yunji-sealing:<key>`), as older servers stored it. */
function sealV1(key: string, plain: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', createHash('sha256').update(`yunji-sealing:${key}`).digest(), iv);
  const body = Buffer.concat([cipher.update(plain, 'utf8'), cipher.final()]);
  return ['v1', iv, cipher.getAuthTag(), body].map((p) => (typeof p === 'string' ? p : p.toString('base64url'))).join('.');
}

/** Runs one write statement straight on the server's database. */
async function writeDb(server: RunningServer, sql: string, value: string): Promise<void> {
  if (server.databaseUrl) {
    const c = new pg.Client({ connectionString: server.databaseUrl });
    await c.connect();
    try {
      await c.query(sql.replace('?', '$1'), [value]);
    } finally {
      await c.end();
    }
    return;
  }
  const db = new BetterSqlite3(join(server.dataDir, 'yunji.db'));
  try {
    db.pragma('busy_timeout = 5000');
    db.prepare(sql).run(value);
  } finally {
    db.close();
  }
}

/**
 * Stored credentials (S3 user spaces' keys, sources' secrets, tenants' webhook secrets) are sealed
 * with YUNJI_SECRET_KEY. An operator who must change that key (it leaked, or policy) needs the old
 * values to stay readable while new ones are sealed with the new key, then a way to re-seal
 * everything so the old key can be dropped. Each sealed value names (by a public id) the key it was
 * sealed with; a value whose key is not configured fails with an error naming the setting to fix.
 */
describe.each(kinds)('YUNJI_SECRET_KEY can be rotated, on %s', (kind) => {
  let s3: S3Server;
  let s3c: S3Client;
  let first: RunningServer;
  let server: RunningServer;
  let token: string;
  let otherToken: string;
  let spaceID: number;
  let bucketID: number;
  let objectID: number;
  let webhookSecret: string;
  const content = randomBytes(100_000);
  let fileCount = 0;

  const env = (current: string, previous?: string) => ({
    YUNJI_SECRET_KEY: current,
    ...(previous !== undefined ? { YUNJI_SECRET_KEY_PREVIOUS: previous } : {}),
    YUNJI_OUTBOUND_ALLOW: '127.0.0.1',
    YUNJI_JOB_POLL: '100',
  });
  const restart = async (current: string, previous?: string) => {
    await server.stop();
    server = await startServer(kind, { dataDir: first.dataDir, databaseUrl: first.databaseUrl, env: env(current, previous) });
  };
  const yunji = (current: string, previous: string | undefined, ...args: string[]) =>
    runCli(args, { dataDir: first.dataDir, databaseUrl: first.databaseUrl, env: env(current, previous) });

  /** Every sealed value in the database, with where it is. */
  const sealedValues = async () => {
    const rows = [
      ...(await queryDb<{ v: string | null }>(server, 'select credential_sealed as v from user_spaces')),
      ...(await queryDb<{ v: string | null }>(server, 'select secret_sealed as v from sync_sources')),
      ...(await queryDb<{ v: string | null }>(server, 'select webhook_secret_sealed as v from tenants')),
    ];
    return rows.map((r) => r.v).filter((v): v is string => v !== null);
  };
  const kidOf = (sealed: string) => (sealed.startsWith('v2.') ? sealed.split('.')[1]! : sealed.split('.')[0]!);

  const download = async (id: number) => {
    const res = await fetch(`${server.url}/v1/object/download?objectID=${id}`, { headers: { authorization: `Bearer ${token}` } });
    return { status: res.status, bytes: Buffer.from(await res.arrayBuffer()) };
  };
  const upload = async (space: number, name: string, bytes: Buffer) => {
    const packageID = (await client(server.url, token).post('/v1/package/create', { bucketID, name })).body.data.package
      .packageID as number;
    const form = new FormData();
    form.append('info', JSON.stringify({ packageID, affinity: space }));
    form.append('files', new Blob([bytes]), 'blob.bin');
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}` },
      body: form,
    });
    const body = (await res.json()) as any;
    expect(body.code, JSON.stringify(body)).toBe('OK');
    return body.data.uploadeds[0].objectID as number;
  };
  const newS3Space = async (name: string) => {
    const res = await client(server.url, token).post('/v1/userSpace/create', {
      name,
      storage: { type: 'MinIO', endpoint: s3.endpoint, bucket: 'rotation-space', region: 'us-east-1' },
      credential: { type: 'MinIO', accessKeyId: 'S3RVER', secretAccessKey: SPACE_SECRET },
      shardStore: { maxSize: 0 },
      workingDir: name,
    });
    expect(res.body.code, res.text).toBe('OK');
    return res.body.data.userSpace.userSpaceID as number;
  };
  /** Syncs the s3 source after putting a new file in its bucket: it copies that file only if its secret opened. */
  const syncSource = async (name: string) => {
    await s3Put(s3c, 'rotation-source', `in/file-${++fileCount}.txt`, Buffer.from(`file ${fileCount}`));
    const admin = client(server.url, token);
    const job = await admin.post('/api/sync/jobs', { source: name });
    expect(job.status, job.text).toBe(200);
    const done = await until(`sync ${job.body.id}`, async () => {
      const res = await admin.get(`/api/sync/jobs/${job.body.id}`);
      return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
    });
    expect(done.stats.copied, JSON.stringify(done)).toBeGreaterThan(0);
    return done;
  };
  const newSource = async (name: string) => {
    const admin = client(server.url, token);
    const packageID = (await admin.post('/v1/package/create', { bucketID, name: `src-${name}` })).body.data.package.packageID;
    const config = {
      endpoint: s3.endpoint,
      region: 'us-east-1',
      bucket: 'rotation-source',
      prefix: 'in',
      force_path_style: true,
      access_key_id: 'S3RVER',
      secret_access_key: SOURCE_SECRET,
    };
    const res = await admin.post('/api/sync/sources', { name, type: 's3', config, package_id: packageID });
    expect(res.status, res.text).toBe(201);
  };
  const webhookOf = async (t: string) => client(server.url, t).get('/api/webhook');

  beforeAll(async () => {
    s3 = await startS3(['rotation-space', 'rotation-source']);
    s3c = s3Client(s3.endpoint);
    first = await startServer(kind, { env: env(KEY_A) });
    server = first;
    token = await login(server.url);
    const admin = client(server.url, token);
    bucketID = (await admin.post('/v1/bucket/create', { name: 'rotation' })).body.data.bucket.bucketID;
    spaceID = await newS3Space('space-a');
    objectID = await upload(spaceID, 'under-a', content);
    await newSource('source-a');
    expect(await syncSource('source-a')).toMatchObject({ status: 'succeeded' });
    webhookSecret = (await webhookOf(token)).body.secret;
    expect(webhookSecret).toMatch(/^whsec_/);
    // A second tenant whose webhook secret an older server sealed in the v1 format.
    otherToken = await login(server.url);
    const other = client(server.url, otherToken);
    const tenant = await other.post('/api/tenants', { name: 'Legacy' });
    expect((await other.put('/api/auth/tenant', { tenant_id: tenant.body.id })).status).toBe(200);
    await writeDb(
      server,
      `update tenants set webhook_secret_sealed = ? where id = ${Number(tenant.body.id)}`,
      sealV1(KEY_A, LEGACY_WEBHOOK_SECRET),
    );
  });
  afterAll(async () => {
    await server?.stop();
    await first?.dispose();
    await s3?.stop();
  });

  it('seals new values in the keyed format, naming the key by a public id', async () => {
    const values = await sealedValues();
    const current = values.filter((v) => v.startsWith('v2.'));
    expect(current.length).toBe(3);
    expect(new Set(current.map(kidOf)).size).toBe(1);
    for (const v of current) {
      expect(v.split('.')).toHaveLength(5);
      expect(kidOf(v)).toMatch(/^[A-Za-z0-9_-]{8,16}$/);
    }
    for (const v of values) for (const secret of [SPACE_SECRET, SOURCE_SECRET, webhookSecret, KEY_A]) expect(v).not.toContain(secret);
  });

  it('reads every old value after the key changes, while the old key is listed as previous, and seals new ones with the new key', async () => {
    const kidA = kidOf((await sealedValues()).find((v) => v.startsWith('v2.'))!);
    await restart(KEY_B, KEY_A);
    expect(await download(objectID)).toEqual({ status: 200, bytes: content });
    expect((await webhookOf(token)).body.secret).toBe(webhookSecret);
    expect((await webhookOf(otherToken)).body.secret).toBe(LEGACY_WEBHOOK_SECRET);
    expect(await syncSource('source-a')).toMatchObject({ status: 'succeeded' });

    const before = new Set(await sealedValues());
    const spaceB = await newS3Space('space-b');
    expect(await download(await upload(spaceB, 'under-b', content))).toEqual({ status: 200, bytes: content });
    await newSource('source-b');
    expect(await syncSource('source-b')).toMatchObject({ status: 'succeeded' });
    const rotated = await client(server.url, token).put('/api/webhook', { url: null, rotate_secret: true });
    expect(rotated.status, rotated.text).toBe(200);
    webhookSecret = rotated.body.secret;
    const fresh = (await sealedValues()).filter((v) => !before.has(v));
    expect(fresh).toHaveLength(3);
    const kidB = kidOf(fresh[0]!);
    expect(kidB).not.toBe(kidA);
    expect(fresh.map(kidOf)).toEqual([kidB, kidB, kidB]);
  });

  it('without the old key, names the setting that is missing, and shows no secret', async () => {
    await restart(KEY_B);
    const failed = await download(objectID);
    expect(failed.status).toBe(502);
    expect(failed.bytes.toString()).toMatch(/YUNJI_SECRET_KEY_PREVIOUS/);
    const legacy = await webhookOf(otherToken);
    expect(legacy.status, legacy.text).toBe(503);
    expect(legacy.body.message).toMatch(/YUNJI_SECRET_KEY_PREVIOUS/);
    // Values sealed with the current key are unaffected.
    expect((await webhookOf(token)).body.secret).toBe(webhookSecret);
    // Re-sealing cannot proceed either, and says why.
    await server.stop();
    const refused = yunji(KEY_B, undefined, 'admin', 'reseal-secrets');
    expect(refused.status, refused.stdout).toBe(1);
    expect(refused.stderr).toMatch(/YUNJI_SECRET_KEY_PREVIOUS/);
    for (const out of [refused.stdout, refused.stderr, server.output(), failed.bytes.toString(), legacy.text]) {
      for (const secret of [KEY_A, KEY_B, SPACE_SECRET, SOURCE_SECRET, webhookSecret, LEGACY_WEBHOOK_SECRET])
        expect(out).not.toContain(secret);
    }
  });

  it('reseal-secrets re-seals every value with the current key; a second run finds nothing to do', async () => {
    const resealed = yunji(KEY_B, KEY_A, 'admin', 'reseal-secrets');
    expect(resealed.status, resealed.stderr).toBe(0);
    expect(JSON.parse(resealed.stdout)).toEqual({
      user_spaces: { resealed: 1, current: 1 },
      sync_sources: { resealed: 1, current: 1 },
      tenants: { resealed: 1, current: 1 },
    });
    const again = yunji(KEY_B, undefined, 'admin', 'reseal-secrets');
    expect(again.status, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual({
      user_spaces: { resealed: 0, current: 2 },
      sync_sources: { resealed: 0, current: 2 },
      tenants: { resealed: 0, current: 2 },
    });
    for (const secret of [KEY_A, KEY_B, SPACE_SECRET, SOURCE_SECRET, webhookSecret])
      expect(resealed.stdout + resealed.stderr + again.stdout + again.stderr).not.toContain(secret);
  });

  it('after re-sealing, works with the new key alone', async () => {
    server = await startServer(kind, { dataDir: first.dataDir, databaseUrl: first.databaseUrl, env: env(KEY_B) });
    const values = await sealedValues();
    expect(values).toHaveLength(6);
    expect(new Set(values.map(kidOf)).size).toBe(1);
    expect(values.every((v) => v.startsWith('v2.'))).toBe(true);
    expect(await download(objectID)).toEqual({ status: 200, bytes: content });
    expect((await webhookOf(token)).body.secret).toBe(webhookSecret);
    expect((await webhookOf(otherToken)).body.secret).toBe(LEGACY_WEBHOOK_SECRET);
    expect(await syncSource('source-a')).toMatchObject({ status: 'succeeded' });
    for (const secret of [KEY_A, KEY_B, SPACE_SECRET, SOURCE_SECRET, webhookSecret]) expect(server.output()).not.toContain(secret);
  });

  it('refuses a malformed list of previous keys at start-up, naming the setting', () => {
    const bad = yunji(KEY_B, 'too-short', 'migrate');
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/YUNJI_SECRET_KEY_PREVIOUS/);
    expect(bad.stderr).not.toContain(KEY_B);
    expect(bad.stderr).not.toContain('too-short');
  });
});
