import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe } from 'vitest';
import { chooseFsWork } from '../../src/backends/fsThreads.ts';
import { LocalBackend } from '../../src/backends/localBackend.ts';
import type { SpaceHandle } from '../../src/spaces/spaces.ts';
import { openBackend, s3Network } from '../../src/spaces/storageConfig.ts';
import { filesBackendOf } from '../../src/storage/localFiles.ts';
import { LocalBytesBudget } from '../../src/storage/quota.ts';
import { fsWorkCases } from '../helpers/fsWork.ts';
import { motoUnavailableReason, startMoto } from '../helpers/moto.ts';
import { openTestRuntime } from '../helpers/runtime.ts';
import { S3_CREDENTIAL, startS3Process } from '../helpers/s3.ts';
import { describeBackendConformance } from './conformance.ts';

/** The local backend, on each implementation of its file system work. */
describe.each(fsWorkCases)('local directory, $name file system work', ({ fs, setting }) => {
  beforeAll(() => {
    chooseFsWork(setting);
  });
  describe.skipIf(!fs)('', () => {
    describeBackendConformance('local', { localFiles: true, folders: true }, async () => {
      const root = mkdtempSync(join(tmpdir(), 'yunji-conf-'));
      return { backend: new LocalBackend(root), cleanup: async () => rmSync(root, { recursive: true, force: true }) };
    });
  });
});

/**
 * The local backend as syncs and exports write a tenant's files through it (storage/localFiles.ts):
 * each file charged to the tenant's byte quota, here one far larger than the suite writes.
 */
describe('local directory, charged to a byte quota', () => {
  let rt: Awaited<ReturnType<typeof openTestRuntime>>;
  let tenantId: number;
  beforeAll(async () => {
    rt = await openTestRuntime('sqlite', { YUNJI_TENANT_MAX_BYTES: String(1024 ** 4) });
    const now = Date.now();
    const { rows } = await sql<{
      id: number;
    }>`insert into tenants (name, project_key, created_at, updated_at) values ('conformance', 'pk-conformance', ${now}, ${now}) returning id`.execute(
      rt.core.db,
    );
    tenantId = Number(rows[0]!.id);
  });
  afterAll(async () => {
    await rt?.dispose();
  });

  describeBackendConformance('local, charged', { localFiles: true, folders: true }, async () => {
    const root = mkdtempSync(join(tmpdir(), 'yunji-conf-'));
    const space: SpaceHandle = {
      id: 1,
      tenantId,
      name: 'local',
      revision: 1,
      storage: { type: 'local', root },
      workingDir: '',
      backend: new LocalBackend(root),
      store: null,
    };
    const budget = new LocalBytesBudget(rt.core, tenantId);
    return {
      backend: filesBackendOf(space, budget),
      cleanup: async () => {
        await budget.release();
        rmSync(root, { recursive: true, force: true });
      },
    };
  });
});

const motoMissing = motoUnavailableReason();
if (motoMissing) console.warn(`SKIPPING the conformance of S3 against moto: ${motoMissing}`);

/**
 * The S3 backend as a space opens it (openBackend: loaded lazily, with its file times recorded in
 * the database), against real S3-protocol servers on 127.0.0.1, a new bucket for each test.
 */
const servers = [
  {
    name: 's3rver',
    start: () => startS3Process([]),
    credential: S3_CREDENTIAL,
    skip: false,
    // Its faults, in node_modules/s3rver/lib: stores/filesystem.js and controllers/object.js.
    quirks: {
      firstByteRange: 'getObject takes a range end of 0 as none (`options.end || Infinity`)',
      overwritesInPlace: 'putObject writes into the object file itself',
      listsOutOfOrder: 'listObjects walks folders in readdir order',
      copySourceDecodedAsUri: 'putObjectCopy decodes x-amz-copy-source with decodeURI',
      noMultipartListing: 'ListMultipartUploads answers 501 Not Implemented',
    },
  },
  {
    name: 'moto',
    start: startMoto,
    credential: { accessKeyId: 'conformance', secretAccessKey: 'conformance-secret' },
    skip: motoMissing !== undefined,
    quirks: {},
  },
];
describe.each(servers)('S3 backend against $name', ({ name, start, credential, skip, quirks }) => {
  let server: { endpoint: string; stop(): Promise<void> } | undefined;
  let rt: Awaited<ReturnType<typeof openTestRuntime>> | undefined;
  let admin: S3Client | undefined;
  let buckets = 0;

  beforeAll(async () => {
    if (skip) return;
    [server, rt] = await Promise.all([start(), openTestRuntime('sqlite', { YUNJI_OUTBOUND_ALLOW: '127.0.0.1' })]);
    admin = new S3Client({ endpoint: server.endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { ...credential } });
  });
  afterAll(async () => {
    admin?.destroy();
    await server?.stop();
    await rt?.dispose();
  });

  describe.skipIf(skip)('', () => {
    // Without a database (a source's backend), only on s3rver: listings then take another path; the rest is the same code.
    for (const timesKept of name === 's3rver' ? [true, false] : [true]) {
      describeBackendConformance(
        `S3 (${name}), ${timesKept ? 'file times recorded' : 'no database'}`,
        { localFiles: false, folders: false },
        async () => {
          const bucket = `conformance-${++buckets}`;
          await admin!.send(new CreateBucketCommand({ Bucket: bucket }));
          const backend = openBackend(
            { type: 'MinIO', endpoint: server!.endpoint, bucket, region: 'us-east-1', forcePathStyle: true },
            { type: 'MinIO', ...credential },
            s3Network(rt!.core.config),
            timesKept ? rt!.core.db : undefined,
          );
          return { backend, cleanup: async () => backend.close?.(), secrets: [credential.secretAccessKey] };
        },
        quirks,
      );
    }
  });
});
