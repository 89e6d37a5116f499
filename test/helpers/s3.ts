import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import S3rver from 's3rver';

/**
 * A real S3-protocol server (s3rver) on a free port of 127.0.0.1 (or another loopback address), with the given buckets. It knows
 * one access key, S3RVER (secret S3RVER), and refuses others; it does not verify SigV4 signatures.
 */
export interface S3Server {
  endpoint: string;
  directory: string;
  stop(): Promise<void>;
}

export const S3_CREDENTIAL = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

export async function startS3(buckets: string[], address = '127.0.0.1'): Promise<S3Server> {
  const directory = mkdtempSync(join(tmpdir(), 'yunji-s3-'));
  const server = new S3rver({ port: 0, address, silent: true, directory, configureBuckets: buckets.map((name) => ({ name })) });
  const { port } = await server.run();
  return {
    endpoint: `http://${address}:${port}`,
    directory,
    async stop() {
      await server.close();
      rmSync(directory, { recursive: true, force: true });
    },
  };
}

/**
 * The same server as its own process, for tests that list more than 1,000 keys: s3rver's
 * continuation tokens use DES, which Node 20's OpenSSL 3 keeps in its legacy provider, so in the
 * test's own process every listing past the first page is a 500.
 */
export async function startS3Process(buckets: string[]): Promise<S3Server> {
  const directory = mkdtempSync(join(tmpdir(), 'yunji-s3-'));
  const port = await new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
  const bin = join(import.meta.dirname, '..', '..', 'node_modules', 's3rver', 'bin', 's3rver.js');
  const args = [
    '--openssl-legacy-provider',
    bin,
    '-d',
    directory,
    '-a',
    '127.0.0.1',
    '-p',
    String(port),
    '--silent',
    ...buckets.flatMap((b) => ['--configure-bucket', b]),
  ];
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-10_000)));
  const endpoint = `http://127.0.0.1:${port}`;
  for (const deadline = Date.now() + 30_000; ; await sleep(100)) {
    if (child.exitCode !== null) throw new Error(`s3rver exited early: ${stderr}`);
    if (
      await fetch(endpoint).then(
        () => true,
        () => false,
      )
    )
      break;
    if (Date.now() > deadline) throw new Error(`s3rver not listening after 30 s: ${stderr}`);
  }
  return {
    endpoint,
    directory,
    async stop() {
      if (child.exitCode === null) {
        const exited = new Promise((r) => child.once('exit', r));
        child.kill();
        await exited;
      }
      rmSync(directory, { recursive: true, force: true });
    },
  };
}
