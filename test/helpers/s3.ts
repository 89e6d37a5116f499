import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import S3rver from 's3rver';

/**
 * A real S3-protocol server (s3rver) on a free port of 127.0.0.1, with the given buckets. It knows
 * one access key, S3RVER (secret S3RVER), and refuses others; it does not verify SigV4 signatures.
 */
export interface S3Server {
  endpoint: string;
  directory: string;
  stop(): Promise<void>;
}

export const S3_CREDENTIAL = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3(buckets: string[]): Promise<S3Server> {
  const directory = mkdtempSync(join(tmpdir(), 'yunji-s3-'));
  const server = new S3rver({ port: 0, address: '127.0.0.1', silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    directory,
    async stop() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
