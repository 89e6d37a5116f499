import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readlinkSync, realpathSync, statSync, truncateSync, utimesSync } from 'node:fs';
import { get } from 'node:http';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { client, login, nativeOffRun, newTenantClient, type RunningServer, startServer, waitForOutput } from '../helpers/server.ts';

const kinds = await databaseKinds();
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex').toUpperCase();

function uploadForm(info: unknown, files: [string, Buffer][], infoFirst = true): FormData {
  const form = new FormData();
  const add = () => form.append('info', typeof info === 'string' ? info : JSON.stringify(info));
  if (infoFirst) add();
  for (const [name, content] of files) form.append('files', new Blob([content]), encodeURIComponent(name));
  if (!infoFirst) add();
  return form;
}

/** The file holding the bytes of `hash` (upper-case hex SHA-256) in whichever space has it. */
function shardPath(dataDir: string, hash: string): string {
  const spaces = join(dataDir, 'spaces');
  for (const space of readdirSync(spaces)) {
    const path = join(spaces, space, '.yunji', 'shards', hash.slice(0, 2), hash);
    if (existsSync(path)) return realpathSync(path);
  }
  throw new Error(`no shard ${hash}`);
}

/** Every shard file of every space under a data dir. */
function shardFiles(dataDir: string): string[] {
  const out: string[] = [];
  const spaces = join(dataDir, 'spaces');
  for (const space of readdirSync(spaces)) {
    const shards = join(spaces, space, '.yunji', 'shards');
    for (const prefix of (() => {
      try {
        return readdirSync(shards);
      } catch {
        return [];
      }
    })())
      out.push(...readdirSync(join(shards, prefix)));
  }
  return out;
}

/** A download that stops reading after its first bytes until `resume()`; `body` is all it got. */
function pausedReader(url: string, token: string) {
  let resume = () => {};
  let pausedNow = () => {};
  const paused = new Promise<void>((resolve) => (pausedNow = resolve));
  const body = new Promise<Buffer>((resolve, reject) => {
    const req = get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
      const parts: Buffer[] = [];
      res.on('data', (part: Buffer) => parts.push(part));
      res.once('data', () => {
        res.pause();
        resume = () => res.resume();
        pausedNow();
      });
      res.once('end', () => resolve(Buffer.concat(parts)));
      res.once('error', reject);
    });
    req.once('error', reject);
  });
  return { paused, body, resume: () => resume() };
}

describe.each(kinds)('/v1 objects on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  let admin: ReturnType<typeof client>;
  let packageID: number;

  const upload = (form: FormData, t = token) =>
    fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization: `Bearer ${t}` }, body: form }).then(async (r) => ({
      status: r.status,
      body: (await r.json()) as any,
    }));
  const download = (query: string, headers: Record<string, string> = {}) =>
    fetch(`${server.url}/v1/object/download?${query}`, { headers: { authorization: `Bearer ${token}`, ...headers } }).then(async (r) => ({
      status: r.status,
      headers: r.headers,
      bytes: Buffer.from(await r.arrayBuffer()),
    }));

  beforeAll(async () => {
    server = await startServer(kind, { env: { YUNJI_SHARD_GRACE: '0', YUNJI_MAX_OBJECT_SIZE: String(64 * 1024 * 1024) } });
    token = await login(server.url);
    admin = client(server.url, token);
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'b' })).body.data.bucket.bucketID;
    packageID = (await admin.post('/v1/package/create', { bucketID, name: 'p' })).body.data.package.packageID;
  });
  afterAll(async () => {
    await server?.dispose();
  });

  it('uploads as the spec shows, lists, and downloads whole, by offset/length and by Range', async () => {
    const a = Buffer.from('testdata');
    const b = Buffer.from('testdata2');
    const res = await upload(
      uploadForm({ userID: 1, packageID }, [
        ['test.txt', a],
        ['a/b/test2.txt', b],
      ]),
    );
    expect(res.status).toBe(200);
    expect(res.body.code).toBe('OK');
    const [o1, o2] = res.body.data.uploadeds;
    expect(o1).toMatchObject({ packageID, path: 'test.txt', size: '8', fileHash: `Full${sha(a)}`, redundancy: { type: 'none' } });
    expect(o2).toMatchObject({ path: 'a/b/test2.txt', size: '9', fileHash: `Full${sha(b)}` });
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects.map((o: any) => o.path)).toEqual([
      'a/b/test2.txt',
      'test.txt',
    ]);

    const whole = await download(`objectID=${o2.objectID}`);
    expect(whole.status).toBe(200);
    expect(whole.bytes.equals(b)).toBe(true);
    expect(whole.headers.get('content-type')).toBe('application/octet-stream');
    expect(whole.headers.get('content-length')).toBe('9');
    expect(whole.headers.get('etag')).toBe(`"Full${sha(b)}"`);
    expect((await download(`objectID=${o2.objectID}&offset=4&length=3`)).bytes.toString()).toBe('dat');
    expect((await download(`objectID=${o2.objectID}&offset=4`)).bytes.toString()).toBe('data2');
    expect((await download(`objectID=${o2.objectID}&offset=9`)).bytes.length).toBe(0);
    const ranged = await download(`objectID=${o2.objectID}`, { range: 'bytes=2-5' });
    expect([ranged.status, ranged.bytes.toString(), ranged.headers.get('content-range')]).toEqual([206, 'stda', 'bytes 2-5/9']);
    expect((await download(`objectID=${o2.objectID}`, { range: 'bytes=-3' })).bytes.toString()).toBe('ta2');
    expect((await download(`objectID=${o2.objectID}`, { range: 'bytes=100-' })).status).toBe(416);
    const beyond = await admin.get(`/v1/object/download?objectID=${o2.objectID}&offset=10`);
    expect([beyond.status, beyond.body.code]).toEqual([400, 'BadArgument']);
    for (const q of ['objectID=abc', 'objectID=-1', `objectID=${o2.objectID}&offset=-1`, `objectID=${o2.objectID}&length=x`]) {
      const r = await admin.get(`/v1/object/download?${q}`);
      expect([r.status, r.body.code], q).toEqual([400, 'BadArgument']);
    }
    expect((await admin.get('/v1/object/download?objectID=999999')).status).toBe(404);
  });

  it('streams a large object byte for byte, and replaces a path in place', async () => {
    const big = randomBytes(48 * 1024 * 1024);
    const res = await upload(uploadForm({ packageID }, [['big.bin', big]]));
    expect(res.status).toBe(200);
    const obj = res.body.data.uploadeds[0];
    expect(obj.fileHash).toBe(`Full${sha(big)}`);
    const back = await download(`objectID=${obj.objectID}`);
    expect(sha(back.bytes)).toBe(sha(big));
    const slice = await download(`objectID=${obj.objectID}`, { range: 'bytes=10000000-10999999' });
    expect(slice.bytes.equals(big.subarray(10_000_000, 11_000_000))).toBe(true);

    const replaced = await upload(uploadForm({ packageID }, [['big.bin', Buffer.from('small now')]]));
    expect(replaced.body.data.uploadeds[0].objectID).toBe(obj.objectID);
    expect((await download(`objectID=${obj.objectID}`)).bytes.toString()).toBe('small now');
  });

  it('answers HEAD without a body, and survives downloads cut short by the client or by a shrunken file', async () => {
    const content = randomBytes(8 * 1024 * 1024 + 5);
    const obj = (await upload(uploadForm({ packageID }, [['cut/short.bin', content]]))).body.data.uploadeds[0];
    const url = `${server.url}/v1/object/download?objectID=${obj.objectID}`;
    const head = await fetch(url, { method: 'HEAD', headers: { authorization: `Bearer ${token}` } });
    expect(head.status).toBe(200);
    expect(head.headers.get('content-length')).toBe(String(content.length));
    expect(head.headers.get('etag')).toBe(`"${obj.fileHash}"`);
    expect(head.headers.get('x-request-id')).toBeTruthy();
    expect((await head.arrayBuffer()).byteLength).toBe(0);

    // Clients that go away after the first bytes: the server closes each file and goes on serving.
    const shard = shardPath(server.dataDir, obj.fileHash.slice(4));
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        const req = get(url, { headers: { authorization: `Bearer ${token}` } }, (res) => {
          res.once('data', () => {
            req.destroy();
            resolve();
          });
        });
        req.once('error', (err) => (req.destroyed ? resolve() : reject(err)));
      });
    }
    const openShards = () =>
      readdirSync(`/proc/${server.proc.pid}/fd`).filter((fd) => {
        try {
          return readlinkSync(`/proc/${server.proc.pid}/fd/${fd}`) === shard;
        } catch {
          return false;
        }
      }).length;
    for (let i = 0; i < 50 && openShards() > 0; i++) await new Promise((r) => setTimeout(r, 100));
    expect(openShards()).toBe(0);
    expect(sha((await download(`objectID=${obj.objectID}`)).bytes)).toBe(sha(content));

    // Bytes shrunk on disk behind the server's back: past the headers, the response is cut short
    // (never padded, never hung), and the server goes on serving.
    truncateSync(shard, 3 * 1024 * 1024);
    const cut = await fetch(url, { headers: { authorization: `Bearer ${token}` } });
    expect(cut.status).toBe(200);
    await expect(cut.arrayBuffer()).rejects.toThrow();
    await waitForOutput(server, /download cut short/);
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).status).toBe(200);
    expect((await admin.post('/v1/object/delete', { objectIDs: [obj.objectID] })).status).toBe(200);
  });

  it('serves clients that stop reading for a while, and goes on serving others meanwhile', async () => {
    const content = randomBytes(24 * 1024 * 1024 + 7);
    const obj = (await upload(uploadForm({ packageID }, [['slow/reader.bin', content]]))).body.data.uploadeds[0];
    const url = `${server.url}/v1/object/download?objectID=${obj.objectID}`;
    // More paused clients than libuv has pool threads: were each to hold one while it waits, the
    // uploads and downloads below could not run.
    const readers = Array.from({ length: 6 }, () => pausedReader(url, token));
    await Promise.all(readers.map((r) => r.paused));
    await new Promise((r) => setTimeout(r, 1500));
    for (let i = 0; i < 3; i++) {
      const small = randomBytes(5000);
      const up = await upload(uploadForm({ packageID }, [[`slow/meanwhile-${i}.bin`, small]]));
      expect(up.status).toBe(200);
      expect((await download(`objectID=${up.body.data.uploadeds[0].objectID}`)).bytes.equals(small)).toBe(true);
    }
    for (const reader of readers) reader.resume();
    for (const body of await Promise.all(readers.map((r) => r.body)))
      expect([body.length, sha(body)]).toEqual([content.length, sha(content)]);
  });

  it('keeps the stored copy when a streamed upload brings the same bytes again, the new copy removed', async () => {
    const content = randomBytes(3 * 1024 * 1024);
    const first = (await upload(uploadForm({ packageID }, [['same/1.bin', content]]))).body.data.uploadeds[0];
    const shard = shardPath(server.dataDir, sha(content));
    const { ino } = statSync(shard);
    utimesSync(shard, new Date(Date.now() - 3_600_000), new Date(Date.now() - 3_600_000));
    const second = (await upload(uploadForm({ packageID }, [['same/2.bin', content]]))).body.data.uploadeds[0];
    expect(second.fileHash).toBe(first.fileHash);
    const after = statSync(shard);
    // The same file, not written again (a pin, not its time, keeps it from the sweeper: docs/DECISIONS.md).
    expect(after.ino).toBe(ino);
    expect(readdirSync(join(dirname(dirname(dirname(shard))), 'tmp'))).toEqual([]);
    expect(sha((await download(`objectID=${second.objectID}`)).bytes)).toBe(sha(content));
    expect((await admin.post('/v1/object/delete', { objectIDs: [first.objectID, second.objectID] })).status).toBe(200);
  });

  it('stores identical content once, and removes bytes once nothing references them', async () => {
    const content = randomBytes(1000);
    const up = await upload(
      uploadForm({ packageID }, [
        ['dup/1', content],
        ['dup/2', content],
      ]),
    );
    const ids = up.body.data.uploadeds.map((o: any) => o.objectID);
    expect(shardFiles(server.dataDir).filter((f) => f === sha(content))).toHaveLength(1);
    expect((await admin.post('/v1/object/delete', { objectIDs: [ids[0], 999999] })).body).toEqual({ code: 'OK', message: '', data: null });

    // The sweep runs at start-up: a restart keeps bytes still referenced by dup/2 …
    const restart = async () => {
      await server.stop();
      const next = await startServer(kind, { dataDir: server.dataDir, databaseUrl: server.databaseUrl, env: { YUNJI_SHARD_GRACE: '0' } });
      await waitForOutput(next, /swept unreferenced bytes/);
      admin = client(next.url, token);
      return next;
    };
    const first = server;
    server = await restart();
    expect(shardFiles(server.dataDir).filter((f) => f === sha(content))).toHaveLength(1);
    expect((await download(`objectID=${ids[1]}`)).bytes.equals(content)).toBe(true);
    // … and removes them once nothing does.
    expect((await admin.post('/v1/object/delete', { objectIDs: [ids[1]] })).status).toBe(200);
    server = await restart();
    expect(shardFiles(server.dataDir).filter((f) => f === sha(content))).toHaveLength(0);
    expect(
      (await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects.map((o: any) => o.path),
    ).not.toContain('dup/2');
    // The first process owns the data dir and database; hand them to the current one for clean-up.
    server.dispose = async () => {
      await server.stop();
      await first.dispose();
    };
  });

  it('refuses malformed uploads and leaves nothing visible', async () => {
    const before = (await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects.length;
    const cases: [FormData, number, RegExp][] = [
      [uploadForm({ packageID }, [['x', Buffer.from('1')]], false), 400, /first part must be the field 'info'/],
      [uploadForm('not json', [['x', Buffer.from('1')]]), 400, /not valid JSON/],
      [uploadForm({ packageID, extra: 1 }, [['x', Buffer.from('1')]]), 400, /info/],
      [uploadForm({ packageID: 'one' }, [['x', Buffer.from('1')]]), 400, /info/],
      [uploadForm({ packageID, userID: 9999 }, [['x', Buffer.from('1')]]), 403, /userID/],
      [uploadForm({ packageID: 999999 }, [['x', Buffer.from('1')]]), 404, /package/],
    ];
    for (const bad of ['../escape', '/abs', 'a//b', 'a/./b', 'back\\slash', 'nul\u0000byte', 'n'.repeat(5 * 1024)]) {
      cases.push([
        uploadForm({ packageID }, [
          ['fine', Buffer.from('ok')],
          [bad, Buffer.from('1')],
        ]),
        400,
        /filename/,
      ]);
    }
    for (const [form, status, message] of cases) {
      const res = await upload(form);
      expect(res.status, JSON.stringify(res.body)).toBe(status);
      expect(res.body.message).toMatch(message);
      expect(res.body.data).toBeNull();
    }
    // A file part whose name is not URL encoding.
    const raw = new FormData();
    raw.append('info', JSON.stringify({ packageID }));
    raw.append('files', new Blob(['x']), '%E0%A4%A');
    expect((await upload(raw)).status).toBe(400);
    // Nothing above became visible, not even the valid file before a bad one.
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).body.data.objects).toHaveLength(before);
  });

  it.skipIf(nativeOffRun)(
    'refuses more parts than the limit, and keeps tenants apart',
    async () => {
      const many = uploadForm(
        { packageID },
        Array.from({ length: 10_001 }, (_, i) => [`m/${i}`, Buffer.from('x')] as [string, Buffer]),
      );
      const tooMany = await upload(many);
      expect([tooMany.status, tooMany.body.code]).toEqual([413, 'TooLarge']);

      const mine = (await upload(uploadForm({ packageID }, [['private.txt', Buffer.from('secret')]]))).body.data.uploadeds[0];
      // The same user, in another tenant: a second session switched there.
      const elsewhere = await newTenantClient(server.url, 'T2');
      const dl = await elsewhere.get(`/v1/object/download?objectID=${mine.objectID}`);
      expect([dl.status, dl.body.code]).toEqual([404, 'NotFound']);
      expect((await elsewhere.get(`/v1/object/getPackageObjects?packageID=${packageID}`)).status).toBe(404);
      expect((await elsewhere.post('/v1/object/delete', { objectIDs: [mine.objectID] })).body.code).toBe('OK');
      const t2Upload = await upload(
        uploadForm({ packageID }, [['intruder', Buffer.from('x')]]),
        (await elsewhere.get('/api/auth/session')).body.token,
      );
      expect([t2Upload.status, t2Upload.body.code]).toEqual([404, 'NotFound']);
      // Untouched.
      expect((await download(`objectID=${mine.objectID}`)).bytes.toString()).toBe('secret');
      // 10,001 parts are read and stored before the refusal: room for a loaded machine.
    },
    180_000,
  );

  it('downloads by path, moves and clones item by item', async () => {
    const bucketID = (await admin.post('/v1/bucket/create', { name: 'mc' })).body.data.bucket.bucketID;
    const p1 = (await admin.post('/v1/package/create', { bucketID, name: 'one' })).body.data.package.packageID;
    const p2 = (await admin.post('/v1/package/create', { bucketID, name: 'two' })).body.data.package.packageID;
    const up = await upload(
      uploadForm({ packageID: p1 }, [
        ['a/trace.txt', Buffer.from('trace')],
        ['taken.txt', Buffer.from('x')],
      ]),
    );
    const [trace, taken] = up.body.data.uploadeds;

    const byPath = await fetch(
      `${server.url}/v1/object/downloadByPath?path=${encodeURIComponent('mc/one/a/trace.txt')}&offset=1&length=3`,
      { headers: { authorization: `Bearer ${token}` } },
    );
    expect([byPath.status, await byPath.text()]).toEqual([200, 'rac']);
    for (const [path, status] of [
      ['mc/one/missing', 404],
      ['mc/one', 400],
      ['mc/one/../x', 400],
      ['nope/one/a/trace.txt', 404],
    ] as const) {
      const r = await admin.get(`/v1/object/downloadByPath?path=${encodeURIComponent(path)}`);
      expect([r.status, r.body.code], path).toEqual([status, status === 404 ? 'NotFound' : 'BadArgument']);
    }

    // Clone: no bytes copied, same hash; a taken path or unknown object fails only that item.
    const cloned = await admin.post('/v1/object/clone', {
      clonings: [
        { objectID: trace.objectID, newPath: 'trace3.txt', newPackageID: p2 },
        { objectID: trace.objectID, newPath: 'taken.txt', newPackageID: p1 },
        { objectID: 999999, newPath: 'x', newPackageID: p2 },
        { objectID: trace.objectID, newPath: '../bad', newPackageID: p2 },
      ],
    });
    expect(cloned.status).toBe(200);
    const [c0, c1, c2, c3] = cloned.body.data.objects;
    expect(c0).toMatchObject({ packageID: p2, path: 'trace3.txt', fileHash: trace.fileHash, size: '5' });
    expect([c1, c2, c3]).toEqual([null, null, null]);
    expect((await download(`objectID=${c0.objectID}`)).bytes.toString()).toBe('trace');

    // Move: onto a taken path fails that item; the rest move.
    const moved = await admin.post('/v1/object/move', {
      movings: [
        { objectID: trace.objectID, packageID: p2, path: 'trace2.txt' },
        { objectID: c0.objectID, packageID: p1, path: 'taken.txt' },
        { objectID: 999999, packageID: p1, path: 'x' },
      ],
    });
    expect(moved.body).toEqual({ code: 'OK', message: '', data: { successes: [trace.objectID] } });
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${p2}`)).body.data.objects.map((o: any) => o.path)).toEqual([
      'trace2.txt',
      'trace3.txt',
    ]);
    expect((await admin.get(`/v1/object/getPackageObjects?packageID=${p1}`)).body.data.objects.map((o: any) => o.objectID)).toEqual([
      taken.objectID,
    ]);
    // Deleting the original keeps the clone's bytes.
    await admin.post('/v1/object/delete', { objectIDs: [trace.objectID] });
    expect((await download(`objectID=${c0.objectID}`)).bytes.toString()).toBe('trace');
    for (const [path, body] of [
      ['/v1/object/move', { userID: 999999, movings: [] }],
      ['/v1/object/clone', { userID: 999999, clonings: [] }],
      ['/v1/object/delete', { userID: 999999, objectIDs: [c0.objectID] }],
    ] as const) {
      const r = await admin.post(path, body);
      expect([r.status, r.body.code], path).toEqual([403, 'Forbidden']);
    }
    expect((await download(`objectID=${c0.objectID}`)).bytes.toString()).toBe('trace');
    const bad = await admin.post('/v1/object/move', { movings: [{ objectID: 'x', packageID: p1, path: 'y' }] });
    expect([bad.status, bad.body.code]).toEqual([400, 'BadArgument']);
  });

  it('multipart: parts in any order, same index replaces, complete joins the listed order with repeats', async () => {
    const started = await admin.post('/v1/object/newMultipartUpload', { packageID, path: 'multi/obj.txt' });
    expect(started.status).toBe(200);
    const obj = started.body.data.object;
    expect(obj).toMatchObject({
      path: 'multi/obj.txt',
      size: '0',
      fileHash: `Full${'0'.repeat(64)}`,
      redundancy: { type: 'multipartUpload' },
    });
    expect((await admin.get(`/v1/object/listByPath?packageID=${packageID}&path=multi/obj.txt`)).body.data.objects).toHaveLength(1);

    const part = (info: unknown, content: string | null) => {
      const form = new FormData();
      form.append('info', JSON.stringify(info));
      if (content !== null) form.append('file', new Blob([content]), 'part');
      return fetch(`${server.url}/v1/object/uploadPart`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: form,
      }).then(async (r) => ({ status: r.status, body: (await r.json()) as any }));
    };
    for (const [index, content] of [
      [3, 'ccc'],
      [1, 'aaa'],
      [2, 'bbb'],
      [2, 'BBB'],
      [9, 'unused'],
    ] as const) {
      const r = await part({ objectID: obj.objectID, index }, content);
      expect([r.status, r.body.code]).toEqual([200, 'OK']);
    }
    expect((await admin.post('/v1/object/completeMultipartUpload', { objectID: obj.objectID, indexes: [2, 7] })).body.code).toBe(
      'BadArgument',
    );
    const done = await admin.post('/v1/object/completeMultipartUpload', { objectID: obj.objectID, indexes: [2, 3, 1, 2] });
    expect(done.status).toBe(200);
    const expected = Buffer.from('BBBcccaaaBBB');
    expect(done.body.data.object).toMatchObject({
      objectID: obj.objectID,
      size: '12',
      fileHash: `Full${sha(expected)}`,
      redundancy: { type: 'none' },
    });
    expect((await download(`objectID=${obj.objectID}`)).bytes.equals(expected)).toBe(true);

    // Finished: no more parts, no second completion.
    expect((await admin.post('/v1/object/completeMultipartUpload', { objectID: obj.objectID, indexes: [1] })).status).toBe(409);
    expect((await part({ objectID: obj.objectID, index: 1 }, 'x')).status).toBe(409);
    for (const [info, content, status] of [
      [{ objectID: 999999, index: 1 }, 'x', 404],
      [{ objectID: obj.objectID, index: 1, userID: 999999 }, 'x', 403],
      [{ objectID: obj.objectID, index: -1 }, 'x', 400],
      [{ objectID: obj.objectID }, 'x', 400],
      [{ objectID: obj.objectID, index: 1 }, null, 400],
    ] as const) {
      const r = await part(info, content);
      expect([r.status, r.body.data], JSON.stringify(info)).toEqual([status, null]);
    }
    expect((await admin.post('/v1/object/newMultipartUpload', { packageID, path: 'multi/obj.txt' })).status).toBe(409);
    expect((await admin.post('/v1/object/newMultipartUpload', { packageID, path: '../x' })).status).toBe(400);
    expect((await admin.post('/v1/object/completeMultipartUpload', { objectID: obj.objectID, indexes: [] })).status).toBe(400);
  });
});
