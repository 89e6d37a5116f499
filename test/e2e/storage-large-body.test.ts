import { createHash, randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, startServer, type RunningServer } from '../helpers/server.ts';

// Large upload bodies over raw sockets, to see exactly what goes over the connection: a body read
// to its Content-Length and no further, clients that pause, go away or stop short.
const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();
const BOUNDARY = 'large-body-test-boundary';

function multipart(parts: { name: string; filename?: string; content: Buffer }[]): Buffer {
  const pieces: Buffer[] = [];
  for (const p of parts) {
    const disposition =
      p.filename === undefined
        ? `form-data; name="${p.name}"`
        : `form-data; name="${p.name}"; filename="${encodeURIComponent(p.filename)}"`;
    pieces.push(Buffer.from(`--${BOUNDARY}\r\ncontent-disposition: ${disposition}\r\n\r\n`), p.content, Buffer.from('\r\n'));
  }
  pieces.push(Buffer.from(`--${BOUNDARY}--\r\n`));
  return Buffer.concat(pieces);
}

function requestHead(url: string, token: string, length: number, extra = ''): Buffer {
  const { host } = new URL(url);
  return Buffer.from(
    `POST /v1/object/upload HTTP/1.1\r\nHost: ${host}\r\nAuthorization: Bearer ${token}\r\n` +
      `Content-Type: multipart/form-data; boundary=${BOUNDARY}\r\nContent-Length: ${length}\r\n${extra}\r\n`,
  );
}

/** A raw connection: what it received, and when the server closed it. */
function rawConnection(url: string) {
  const { hostname, port } = new URL(url);
  const socket: Socket = connect(Number(port), hostname);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  socket.on('error', () => undefined);
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const received = () => Buffer.concat(chunks).toString('latin1');
  const waitFor = async (text: string) => {
    while (!received().includes(text)) {
      if (socket.destroyed) throw new Error(`closed before '${text}': ${received()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
  };
  const write = (b: Buffer) => new Promise<void>((resolve, reject) => socket.write(b, (err) => (err ? reject(err) : resolve())));
  return { socket, closed, received, waitFor, write };
}

/** The JSON body of the first response in `text`. */
function firstJson(text: string): any {
  const head = text.indexOf('\r\n\r\n');
  const length = Number(/content-length: (\d+)/i.exec(text.slice(0, head))![1]);
  return JSON.parse(text.slice(head + 4, head + 4 + length));
}

describe.each(kinds)('large upload bodies on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  let admin: ReturnType<typeof client>;
  let packageID: number;

  const paths = async () => {
    const page = await admin.get(`/v1/object/listByPath?packageID=${packageID}&path=&isPrefix=true`);
    return (page.body.data.objects as { path: string; fileHash: string }[]).map((o) => [o.path, o.fileHash]);
  };

  beforeAll(async () => {
    server = await startServer(kind);
    token = await login(server.url);
    admin = client(server.url, token);
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('stores a large file and the parts after it, and reads nothing past the body as part of it', async () => {
    const big = randomBytes(24 * 1024 * 1024 + 123);
    const small = Buffer.from('after the big one');
    const body = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'large/one.bin', content: big },
      { name: 'files', filename: 'large/two.txt', content: small },
    ]);
    const conn = rawConnection(server.url);
    // With Expect: 100-continue, as curl sends large bodies; and a second request right behind the
    // body on the same connection, which must be answered as a request of its own.
    await conn.write(requestHead(server.url, token, body.length, 'Expect: 100-continue\r\n'));
    await conn.waitFor('100 Continue');
    await conn.write(Buffer.concat([body, Buffer.from(`GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)]));
    await conn.closed;
    const text = conn.received();
    const answer = text.slice(text.indexOf('HTTP/1.1 200'));
    expect(answer).toMatch(/^HTTP\/1\.1 200/);
    const uploadeds = firstJson(answer).data.uploadeds as { path: string; fileHash: string; size: string }[];
    expect(uploadeds.map((o) => [o.path, o.fileHash, o.size])).toEqual([
      ['large/one.bin', `Full${sha(big)}`, String(big.length)],
      ['large/two.txt', `Full${sha(small)}`, String(small.length)],
    ]);
    // The upload's answer, then the health check's.
    expect(text.match(/HTTP\/1\.1 200/g)).toHaveLength(2);

    const back = await fetch(`${server.url}/v1/object/downloadByPath?path=b/p/large/one.bin`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(sha(Buffer.from(await back.arrayBuffer()))).toBe(sha(big));
  });

  it('waits for a client that pauses in the middle of a large body, and serves others meanwhile', async () => {
    const big = randomBytes(20 * 1024 * 1024);
    const body = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'paused/big.bin', content: big },
    ]);
    const conn = rawConnection(server.url);
    await conn.write(
      Buffer.concat([requestHead(server.url, token, body.length, 'Connection: close\r\n'), body.subarray(0, 12 * 1024 * 1024)]),
    );
    // The server keeps serving others while this body is half sent.
    for (let i = 0; i < 8; i++) {
      expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 150));
    }
    await conn.write(body.subarray(12 * 1024 * 1024));
    await conn.closed;
    const text = conn.received();
    expect(text).toMatch(/^HTTP\/1\.1 200/);
    expect(firstJson(text).data.uploadeds[0].fileHash).toBe(`Full${sha(big)}`);
  });

  it('keeps small uploads on a kept-alive connection', async () => {
    const body = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'small/a.txt', content: Buffer.from('a') },
    ]);
    const conn = rawConnection(server.url);
    await conn.write(Buffer.concat([requestHead(server.url, token, body.length), body]));
    await conn.waitFor('"code":"OK"');
    await conn.write(Buffer.concat([requestHead(server.url, token, body.length), body]));
    await new Promise<void>((resolve, reject) => {
      const check = () =>
        conn.received().match(/"code":"OK"/g)?.length === 2
          ? resolve()
          : conn.socket.destroyed
            ? reject(new Error(conn.received()))
            : setTimeout(check, 10);
      check();
    });
    expect(conn.received()).not.toMatch(/connection: close/i);
    conn.socket.destroy();
  });

  it('leaves nothing visible when the client goes away in the middle of a large body, and serves on', async () => {
    const before = await paths();
    const full = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'gone/half.bin', content: randomBytes(32 * 1024 * 1024) },
    ]);
    const conn = rawConnection(server.url);
    await conn.write(Buffer.concat([requestHead(server.url, token, full.length), full.subarray(0, 20 * 1024 * 1024)]));
    conn.socket.destroy();
    await conn.closed;

    const after = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'gone/after.txt', content: Buffer.from('still here') },
    ]);
    const res = await fetch(`${server.url}/v1/object/upload`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': `multipart/form-data; boundary=${BOUNDARY}` },
      body: after,
    });
    expect(res.status).toBe(200);
    expect(await paths()).toEqual(
      [...before, ['gone/after.txt', `Full${sha(Buffer.from('still here'))}`]].sort((a, b) => (a[0]! < b[0]! ? -1 : 1)),
    );
  });

  it('stores nothing when the body ends before its Content-Length, and closes the connection', async () => {
    const before = await paths();
    const body = multipart([
      { name: 'info', content: Buffer.from(JSON.stringify({ packageID })) },
      { name: 'files', filename: 'short/file.bin', content: randomBytes(32 * 1024 * 1024) },
    ]);
    const conn = rawConnection(server.url);
    // Half of it, then the client closes its sending side and waits for an answer.
    await conn.write(Buffer.concat([requestHead(server.url, token, body.length), body.subarray(0, 16 * 1024 * 1024)]));
    conn.socket.end();
    await conn.closed;
    expect(conn.received()).not.toMatch(/HTTP\/1\.1 200/);
    expect(await paths()).toEqual(before);
  });
});
