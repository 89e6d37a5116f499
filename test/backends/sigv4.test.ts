import { createHash, createHmac, randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import { SignatureV4 } from '@smithy/signature-v4';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { outboundPolicy } from '../../src/lib/outbound.ts';
import { S3Backend } from '../../src/backends/s3Backend.ts';
import { BackendError } from '../../src/backends/backendError.ts';
import { EMPTY_PAYLOAD_SHA256, encodeKeyPath, signedHeaders } from '../../src/backends/sigv4.ts';
import { startS3, S3_CREDENTIAL, type S3Server } from '../helpers/s3.ts';

type SourceData = string | ArrayBuffer | ArrayBufferView;
const bytesOf = (data: SourceData) =>
  typeof data === 'string'
    ? Buffer.from(data)
    : ArrayBuffer.isView(data)
      ? Buffer.from(data.buffer, data.byteOffset, data.byteLength)
      : Buffer.from(data);

/** SHA-256 and HMAC-SHA-256 in the shape the SDK's signer takes. */
class Sha256 {
  private readonly hash;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', bytesOf(secret));
  }
  update(data: SourceData): void {
    this.hash.update(bytesOf(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

const KEYS = [
  'plain.txt',
  'dir/sub/file name with spaces.bin',
  'ünïcødé/文件/🙂.txt',
  "odd!'()*+,;=@$&~_-.chars",
  'a%20b/c%2Fd',
  'trailing/',
];

describe('S3 request signing (AWS Signature Version 4)', () => {
  it('signs a HEAD exactly as the AWS SDK signer does', async () => {
    for (const region of ['us-east-1', 'eu-central-1']) {
      for (const key of KEYS) {
        for (const date of [new Date('2026-12-01T15:04:05.678Z'), new Date('2030-02-28T23:59:59.999Z')]) {
          const credentials = { accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY' };
          const host = 'minio.example.test:9000';
          const path = `/bucket-1/${encodeKeyPath(key)}`;
          const ours = signedHeaders('HEAD', host, path, { ...credentials, region }, { now: date });
          const sdk = new SignatureV4({ service: 's3', region, credentials, sha256: Sha256, uriEscapePath: false });
          const signed = await sdk.sign(
            {
              method: 'HEAD',
              protocol: 'http:',
              hostname: 'minio.example.test',
              port: 9000,
              path,
              query: {},
              headers: { host, 'x-amz-content-sha256': EMPTY_PAYLOAD_SHA256 },
            },
            { signingDate: date },
          );
          expect(ours.authorization, `${region} ${key} ${date.toISOString()}`).toBe(signed.headers.authorization);
          expect(ours['x-amz-date']).toBe(signed.headers['x-amz-date']);
        }
      }
    }
  });

  it('encodes every byte outside RFC 3986 unreserved characters, keeping slashes', () => {
    expect(encodeKeyPath("a b/c+d/e!'()*~._-")).toBe('a%20b/c%2Bd/e%21%27%28%29%2A~._-');
    expect(encodeKeyPath('a%20b')).toBe('a%2520b');
  });
});

describe('S3 HEADs and small PUTs without the SDK, against a real S3-protocol server', () => {
  let s3: S3Server;
  beforeAll(async () => {
    s3 = await startS3(['heads']);
  });
  afterAll(async () => {
    await s3?.stop();
  });

  it('writes and reads back odd keys with their size and kept time, a missing key is missing, refused credentials are reported', async () => {
    // s3rver listens on loopback, which the operator must allow.
    const network = { outbound: outboundPolicy('127.0.0.1'), timeoutMs: 30_000 };
    const backend = new S3Backend(
      { endpoint: s3.endpoint, region: 'us-east-1', bucket: 'heads', forcePathStyle: true, ...S3_CREDENTIAL },
      network,
    );
    try {
      // Small content as a buffer and as a stream (one PUT each), and a stream past one PUT's size.
      const contents = KEYS.filter((k) => !k.endsWith('/')).map((key, i) => ({
        key,
        bytes: randomBytes(i === 0 ? 1536 * 1024 : 100 + i),
        stream: i % 2 === 0,
      }));
      for (const [i, { key, bytes, stream }] of contents.entries()) {
        await backend.put(key, stream ? Readable.from([bytes.subarray(0, 50), bytes.subarray(50)]) : bytes, {
          mtimeMs: 1_700_000_000_123 + i,
        });
        expect(await backend.stat(key), key).toEqual({ key, size: bytes.length, mtimeMs: 1_700_000_000_123 + i });
        const back = Buffer.concat(await (await backend.get(key)).toArray());
        expect(back.equals(bytes), key).toBe(true);
      }
      expect(await backend.stat('no/such/key')).toBeUndefined();
    } finally {
      backend.close();
    }
    const stranger = new S3Backend(
      { endpoint: s3.endpoint, region: 'us-east-1', bucket: 'heads', forcePathStyle: true, accessKeyId: 'NOBODY', secretAccessKey: 'x' },
      network,
    );
    try {
      const failure = await stranger.stat('plain.txt').then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(BackendError);
      expect((failure as BackendError).code).toBe('denied');
      const refused = await stranger.put('new.txt', Buffer.from('y')).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect((refused as BackendError).code).toBe('denied');
    } finally {
      stranger.close();
    }
  });
});
