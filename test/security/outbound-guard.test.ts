import { createServer as createHttpServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { databaseKinds } from '../helpers/databases.ts';
import { S3_CREDENTIAL, startS3, type S3Server } from '../helpers/s3.ts';
import { client, login, startServer, type ApiResponse, type RunningServer } from '../helpers/server.ts';
import { startThrottledProxy, TERMINAL_STATUSES, until, type ThrottledProxy } from '../helpers/sync.ts';

const kinds = await databaseKinds();

/**
 * Requests Yunji makes on a tenant's behalf (S3 endpoints of spaces and sources, manifest and yunji
 * sources, webhooks) cannot reach loopback, private or metadata addresses unless the operator
 * allows them (YUNJI_OUTBOUND_ALLOW); the address is checked where it is connected to, redirects
 * included; and what a remote service says reaches the tenant only as a code and a status.
 * Attacker: the owner of a tenant of their own. Targets: servers of this test on 127.0.0.x.
 */

/** Text only remote services send: it must never reach a tenant. */
const MARKER = 'remote-secret-marker-5e1f';
const HEADER_TOKEN = 'manifest-header-token-9c2a';
const SETTING = /YUNJI_OUTBOUND_ALLOW/;

type Api = ReturnType<typeof client>;

interface Site {
  url: string;
  port: number;
  seen: { path: string; authorization: string | undefined }[];
  close(): Promise<void>;
}

/** An HTTP server of the test on `host`, recording what it is asked. */
async function site(host: string, handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<Site> {
  const seen: Site['seen'] = [];
  const server = createHttpServer((req, res) => {
    seen.push({ path: req.url ?? '', authorization: req.headers.authorization });
    req.resume();
    handler(req, res);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://${host}:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

/** A TCP port of `host` that speaks something other than HTTP: a banner, then the end. */
async function bannerPort(host: string): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const server = createTcpServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.end(`SSH-2.0-OpenSSH_9.6 ${MARKER}\r\n`);
  });
  await new Promise<void>((r) => server.listen(0, host, () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  };
}

/** A port of `host` nothing listens on. */
async function closedPort(host: string): Promise<number> {
  const probe = createTcpServer();
  await new Promise<void>((r) => probe.listen(0, host, () => r()));
  const { port } = probe.address() as AddressInfo;
  await new Promise<void>((r) => probe.close(() => r()));
  return port;
}

const expectV1 = (res: ApiResponse, status: number, code: string, what: string) => {
  expect([res.status, res.body?.code], `${what}: ${res.text}`).toEqual([status, code]);
};
const expectApi = (res: ApiResponse, status: number, code: string, what: string) => {
  expect([res.status, res.body?.code], `${what}: ${res.text}`).toEqual([status, code]);
};

const s3Space = (endpoint: string, name = 'attack') => ({
  name,
  storage: { type: 'MinIO', endpoint, bucket: 'attack', region: 'us-east-1' },
  credential: { type: 'MinIO', ...S3_CREDENTIAL },
  shardStore: { maxSize: 0 },
});
const s3SourceConfig = (endpoint: string) => ({
  endpoint,
  bucket: 'attack',
  force_path_style: true,
  access_key_id: S3_CREDENTIAL.accessKeyId,
  secret_access_key: S3_CREDENTIAL.secretAccessKey,
});

async function newPackage(api: Api, name: string): Promise<number> {
  const bucket = await api.post('/v1/bucket/create', { name: `b-${name}` });
  expect(bucket.body?.code, bucket.text).toBe('OK');
  const pkg = await api.post('/v1/package/create', { bucketID: bucket.body.data.bucket.bucketID, name });
  expect(pkg.body?.code, pkg.text).toBe('OK');
  return pkg.body.data.package.packageID as number;
}

/** The owner of a new tenant (a second session of the admin, switched into it), and its Authorization header. */
async function tenantOwner(base: string): Promise<{ api: Api; authorization: string }> {
  const token = await login(base);
  const api = client(base, token);
  const tenant = await api.post('/api/tenants', { name: 'Attacker' });
  expect(tenant.status, tenant.text).toBe(201);
  expect((await api.put('/api/auth/tenant', { tenant_id: tenant.body.id })).status).toBe(200);
  return { api, authorization: `Bearer ${token}` };
}

/** Syncs the source to its end (retries included); the job as the platform shows it, and its logs. */
async function syncToEnd(api: Api, source: string): Promise<{ job: any; logs: string }> {
  const started = await api.post('/api/sync/jobs', { source });
  expect(started.status, started.text).toBe(200);
  let last = '';
  const job = await until(
    `sync of ${source}`,
    async () => {
      const res = await api.get(`/api/sync/jobs/${started.body.id}`);
      last = res.text;
      return TERMINAL_STATUSES.includes(res.body.status) ? res.body : undefined;
    },
    60_000,
    () => last,
  );
  const logs = await api.get(`/api/jobs/${started.body.id}/logs`);
  return { job, logs: logs.text };
}

describe.each(kinds)('outbound requests on behalf of tenants (%s)', (kind) => {
  /** A real S3 server on loopback, behind a proxy of 127.0.0.1 that counts what reaches it. */
  let loopS3: S3Server;
  let loopProxy: ThrottledProxy;
  /** An HTTP server on loopback an attacker would like to read. */
  let loopback: Site;

  beforeAll(async () => {
    loopS3 = await startS3(['attack']);
    loopProxy = await startThrottledProxy(loopS3.endpoint);
    loopback = await site('127.0.0.1', (_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify([{ path: 'secret', url: '/secret', note: MARKER }])),
    );
  });
  afterAll(async () => {
    await loopProxy?.stop();
    await loopS3?.stop();
    await loopback?.close();
  });

  describe('without YUNJI_OUTBOUND_ALLOW', () => {
    let server: RunningServer;
    let attacker: Api;

    beforeAll(async () => {
      server = await startServer(kind, { env: { YUNJI_JOB_POLL: '100' } });
      ({ api: attacker } = await tenantOwner(server.url));
    });
    afterAll(async () => {
      await server?.dispose();
    });

    it('refuses S3 endpoints on loopback, private and metadata addresses, in every spelling, at create and at test, and sends them nothing', async () => {
      const port = new URL(loopProxy.url).port;
      const endpoints = [
        loopProxy.url,
        `http://localhost:${port}`,
        `http://LOCALHOST.:${port}`,
        `http://[::1]:${port}`,
        `http://[::ffff:127.0.0.1]:${port}`,
        `http://[64:ff9b::7f00:1]:${port}`,
        `http://[2002:7f00:1::]:${port}`,
        `http://0x7f.1:${port}`,
        `http://2130706433:${port}`,
        `http://0.0.0.0:${port}`,
        'http://169.254.169.254',
        'http://[fd00:ec2::254]',
        'http://100.100.100.200',
        'http://10.1.2.3:9000',
        'https://192.168.0.1',
      ];
      for (const endpoint of endpoints) {
        const created = await attacker.post('/v1/userSpace/create', s3Space(endpoint));
        expectV1(created, 400, 'BadArgument', `create at ${endpoint}`);
        expect(created.body.message, endpoint).toMatch(SETTING);
        const tested = await attacker.post('/v1/userSpace/test', {
          storage: s3Space(endpoint).storage,
          credential: s3Space(endpoint).credential,
        });
        expectV1(tested, 400, 'BadArgument', `test at ${endpoint}`);
        expect(tested.body.message, endpoint).toMatch(SETTING);
      }
      // Malformed endpoints are refused as such.
      for (const endpoint of ['http://[::1', 'http://', 'file:///etc/passwd', `http://user:pw@127.0.0.1:${port}`]) {
        expectV1(await attacker.post('/v1/userSpace/create', s3Space(endpoint)), 400, 'BadArgument', `malformed ${endpoint}`);
      }
      expect((await attacker.get('/v1/userSpace/list')).body.data.userSpaces.map((s: any) => s.name)).not.toContain('attack');
      expect(loopProxy.requests()).toEqual({});
    });

    it('refuses s3, http_manifest and yunji sources and hooks aimed at loopback, on create and on update', async () => {
      const packageID = await newPackage(attacker, 'sources');
      const port = new URL(loopProxy.url).port;
      const refused: [string, Record<string, unknown>][] = [
        ['s3', s3SourceConfig(loopProxy.url)],
        ['s3', s3SourceConfig(`http://localhost:${port}`)],
        ['http_manifest', { url: `${loopback.url}/list.json` }],
        ['http_manifest', { url: `http://localhost:${loopback.port}/list.json` }],
        ['yunji', { url: loopback.url, package_id: 1, api_key: 'k' }],
      ];
      for (const [type, config] of refused) {
        const res = await attacker.post('/api/sync/sources', { name: `src-${type}`, type, config, package_id: packageID });
        expectApi(res, 400, 'bad_request', `${type} at ${JSON.stringify(config)}`);
        expect(res.body.message).toMatch(SETTING);
      }
      // An s3 source of AWS itself (no endpoint) is fine; moving it to loopback is not.
      const aws = await attacker.post('/api/sync/sources', {
        name: 'aws',
        type: 's3',
        config: { bucket: 'some-bucket', access_key_id: 'a', secret_access_key: 'b' },
        package_id: packageID,
      });
      expect(aws.status, aws.text).toBe(201);
      const moved = await attacker.patch(`/api/sync/sources/${aws.body.id}`, { config: s3SourceConfig(loopProxy.url) });
      expectApi(moved, 400, 'bad_request', 'update to loopback');
      expect((await attacker.get(`/api/sync/sources/${aws.body.id}`)).body.config.endpoint).toBeUndefined();

      for (const url of [`${loopback.url}/hook`, 'http://169.254.169.254/latest', `http://localhost:${loopback.port}/`]) {
        const hook = await attacker.put('/api/webhook', { url });
        expectApi(hook, 400, 'bad_request', `tenant hook ${url}`);
        expect(hook.body.message).toMatch(SETTING);
        const job = await attacker.post('/api/jobs', { action: 'noop', notify_hook: url });
        expectApi(job, 400, 'bad_request', `notify hook ${url}`);
      }
      expect(loopProxy.requests()).toEqual({});
      expect(loopback.seen).toEqual([]);
    });
  });

  describe('with YUNJI_OUTBOUND_ALLOW=127.0.0.2/31 (127.0.0.2 and 127.0.0.3)', () => {
    let server: RunningServer;
    let attacker: Api;
    let authorization: string;
    /** s3rver on an allowed address. */
    let s3: S3Server;
    /** An S3-speaking endpoint on an allowed address that refuses everything, with a secret in its refusal. */
    let refusing: Site;
    /** A web server on an allowed address: manifests, files, redirects, a yunji server's refusal. */
    let web: Site;
    /** Another allowed origin. */
    let other: Site;
    let banner: Awaited<ReturnType<typeof bannerPort>>;
    let closed: number;

    beforeAll(async () => {
      s3 = await startS3(['allowed'], '127.0.0.2');
      refusing = await site('127.0.0.2', (_req, res) => {
        res.writeHead(403, { 'content-type': 'application/xml', 'x-amz-request-id': 'R1' });
        res.end(
          `<?xml version="1.0" encoding="UTF-8"?><Error><Code>AccessDenied</Code><Message>${MARKER}: the key of the staff account is 1234</Message><RequestId>R1</RequestId></Error>`,
        );
      });
      const json = (res: ServerResponse, value: unknown) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(value));
      const redirect = (res: ServerResponse, to: string, status = 302) => res.writeHead(status, { location: to }).end();
      other = await site('127.0.0.3', (req, res) => {
        if (req.url === '/list.json') return json(res, [{ path: 'far.txt', url: '/far.txt' }]);
        if (req.url === '/far.txt') return res.writeHead(200).end('far');
        res.writeHead(404).end();
      });
      web = await site('127.0.0.2', (req, res) => {
        const path = new URL(req.url ?? '/', 'http://x').pathname;
        switch (path) {
          case '/list.json':
            return json(res, [
              { path: 'ok.txt', url: '/ok.txt' },
              { path: 'by-address.txt', url: `${loopback.url}/secret` },
              { path: 'by-name.txt', url: `http://localhost:${loopback.port}/secret` },
              { path: 'mapped.txt', url: `http://[::ffff:127.0.0.1]:${loopback.port}/secret` },
              { path: 'hop.txt', url: '/to-loopback' },
              { path: 'moved.txt', url: '/moved-file' },
            ]);
          case '/ok.txt':
            return res.writeHead(200).end('ok');
          case '/moved-file':
            return redirect(res, '/ok.txt', 301);
          case '/to-loopback':
            return redirect(res, `${loopback.url}/secret`);
          case '/loop.json':
            return redirect(res, `${loopback.url}/list.json`, 307);
          case '/by-name.json':
            return redirect(res, `http://localhost:${loopback.port}/list.json`);
          case '/moved.json':
            return redirect(res, '/small.json', 308);
          case '/small.json':
            return json(res, [{ path: 'ok.txt', url: '/ok.txt' }]);
          case '/away.json':
            return redirect(res, `${other.url}/list.json`);
          case '/spin.json':
            return redirect(res, '/spin.json');
          case '/ftp.json':
            return redirect(res, 'ftp://127.0.0.2/list.json');
          case '/v1/object/listByPath':
            return json(res, { code: 'Unauthorized', message: `${MARKER}: key of another server`, data: null });
          default:
            res.writeHead(404).end();
        }
      });
      banner = await bannerPort('127.0.0.2');
      closed = await closedPort('127.0.0.2');
      server = await startServer(kind, { env: { YUNJI_OUTBOUND_ALLOW: '127.0.0.2/31', YUNJI_JOB_POLL: '100', YUNJI_SOURCE_TIMEOUT: '5' } });
      ({ api: attacker, authorization } = await tenantOwner(server.url));
    });
    afterAll(async () => {
      await server?.dispose();
      await s3?.stop();
      for (const s of [refusing, web, other]) await s?.close();
      await banner?.close();
    });

    it('stores and reads object bytes in an S3 space on an allowed address, and still refuses loopback', async () => {
      const created = await attacker.post('/v1/userSpace/create', {
        ...s3Space(s3.endpoint, 'allowed-s3'),
        storage: { type: 'MinIO', endpoint: s3.endpoint, bucket: 'allowed', region: 'us-east-1' },
      });
      expectV1(created, 200, 'OK', 'space on 127.0.0.2');
      const packageID = await newPackage(attacker, 'in-s3');
      const content = Buffer.from(`bytes kept on an allowed S3 server ${'x'.repeat(1000)}`);
      const form = new FormData();
      form.append('info', JSON.stringify({ packageID, affinity: created.body.data.userSpace.userSpaceID }));
      form.append('files', new Blob([content]), 'kept.txt');
      const uploaded = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization }, body: form });
      const body = (await uploaded.json()) as any;
      expect(body.code, JSON.stringify(body)).toBe('OK');
      const objectID = body.data.uploadeds[0].objectID;
      const down = await fetch(`${server.url}/v1/object/download?objectID=${objectID}`, { headers: { authorization } });
      expect(down.status).toBe(200);
      expect(Buffer.from(await down.arrayBuffer()).equals(content)).toBe(true);

      const loop = await attacker.post('/v1/userSpace/create', s3Space(loopProxy.url, 'loop'));
      expectV1(loop, 400, 'BadArgument', 'loopback is still refused');
      expect(loopProxy.requests()).toEqual({});
    });

    it("tells an S3 service's refusal as its code and HTTP status only, never its text", async () => {
      const tested = await attacker.post('/v1/userSpace/test', {
        storage: s3Space(refusing.url).storage,
        credential: s3Space(refusing.url).credential,
      });
      expectV1(tested, 502, 'OperationFailed', 'test against a refusing service');
      expect(tested.body.message).toMatch(/AccessDenied \(HTTP 403\)/);
      expect(tested.text).not.toContain(MARKER);

      const space = await attacker.post('/v1/userSpace/create', s3Space(refusing.url, 'refusing'));
      expectV1(space, 200, 'OK', 'space on a refusing service');
      const form = new FormData();
      form.append(
        'info',
        JSON.stringify({ packageID: await newPackage(attacker, 'refused'), affinity: space.body.data.userSpace.userSpaceID }),
      );
      form.append('files', new Blob([Buffer.from('x')]), 'x.txt');
      const up = await fetch(`${server.url}/v1/object/upload`, { method: 'POST', headers: { authorization }, body: form });
      const upText = await up.text();
      expect(up.status, upText).toBe(502);
      expect(upText).toMatch(/\(HTTP 403\)/);
      expect(upText).not.toContain(MARKER);

      const source = await attacker.post('/api/sync/sources', {
        name: 'refusing-s3',
        type: 's3',
        config: s3SourceConfig(refusing.url),
        package_id: await newPackage(attacker, 'from-refusing'),
      });
      expect(source.status, source.text).toBe(201);
      const { job, logs } = await syncToEnd(attacker, 'refusing-s3');
      expect(job.status).toBe('failed');
      expect(JSON.stringify(job)).toMatch(/AccessDenied \(HTTP 403\)/);
      expect(JSON.stringify(job) + logs).not.toContain(MARKER);
    });

    it('answers a closed port and an open port that is not S3 or HTTP alike: unreachable, for spaces and for hooks', async () => {
      const answers: string[] = [];
      for (const port of [closed, banner.port]) {
        const endpoint = `http://127.0.0.2:${port}`;
        const res = await attacker.post('/v1/userSpace/test', {
          storage: s3Space(endpoint).storage,
          credential: s3Space(endpoint).credential,
        });
        expectV1(res, 502, 'OperationFailed', `test at ${endpoint}`);
        expect(res.body.message).toMatch(/unreachable/);
        answers.push(res.body.message.replaceAll(String(port), 'PORT'));
      }
      expect(answers[1]).toBe(answers[0]);
      expect(answers.join()).not.toMatch(new RegExp(`${MARKER}|ECONN|SSH|Parse|HPE_`));

      const errors: string[] = [];
      for (const port of [closed, banner.port]) {
        const job = await attacker.post('/api/jobs', { action: 'noop', notify_hook: `http://127.0.0.2:${port}/hook` });
        expect(job.status, job.text).toBe(201);
        const failed = await until(`a failed delivery to port ${port}`, async () => {
          const res = await attacker.get(`/api/jobs/${job.body.id}/deliveries`);
          return res.body.items.find((d: any) => d.last_error !== null);
        });
        errors.push(String(failed.last_error).replaceAll(String(port), 'PORT'));
      }
      expect(errors[1]).toBe(errors[0]);
      expect(errors[0]).toMatch(/unreachable/);
      expect(errors.join()).not.toMatch(new RegExp(`${MARKER}|ECONN|SSH|Parse|HPE_`));
    });

    it('checks the address connected to: files a manifest on an allowed host lists on loopback are not fetched, by address or by name', async () => {
      const packageID = await newPackage(attacker, 'listed');
      const source = await attacker.post('/api/sync/sources', {
        name: 'listed',
        type: 'http_manifest',
        config: { url: `${web.url}/list.json` },
        package_id: packageID,
      });
      expect(source.status, source.text).toBe(201);
      const { job } = await syncToEnd(attacker, 'listed');
      expect(job.status, JSON.stringify(job)).toBe('failed');
      const failed = Object.fromEntries((job.errors as any[]).filter((e) => e.item !== undefined).map((e) => [e.item, e.message]));
      expect(Object.keys(failed).sort()).toEqual(['by-address.txt', 'by-name.txt', 'hop.txt', 'mapped.txt']);
      for (const message of Object.values(failed)) expect(message).toMatch(SETTING);
      const objects = await attacker.get(`/v1/object/listByPath?packageID=${packageID}&isPrefix=true`);
      expect(objects.body.data.objects.map((o: any) => o.path).sort()).toEqual(['moved.txt', 'ok.txt']);
      expect(loopback.seen).toEqual([]);
    });

    it('follows redirects through the same guard, not to loopback, at most 5, without the source headers on another origin', async () => {
      const packageID = await newPackage(attacker, 'redirects');
      const make = async (name: string, path: string, headers?: Record<string, string>) => {
        const res = await attacker.post('/api/sync/sources', {
          name,
          type: 'http_manifest',
          config: { url: `${web.url}${path}`, ...(headers ? { headers } : {}) },
          package_id: packageID,
        });
        expect(res.status, res.text).toBe(201);
      };
      await make('to-loopback', '/loop.json');
      await make('to-loopback-name', '/by-name.json');
      await make('moved', '/moved.json');
      await make('away', '/away.json', { Authorization: `Bearer ${HEADER_TOKEN}` });
      await make('spin', '/spin.json');
      await make('to-ftp', '/ftp.json');

      for (const name of ['to-loopback', 'to-loopback-name']) {
        const { job } = await syncToEnd(attacker, name);
        expect([job.status, job.attempts], name).toEqual(['failed', 1]);
        expect(job.error_message, name).toMatch(SETTING);
      }
      for (const name of ['moved', 'away']) {
        const { job } = await syncToEnd(attacker, name);
        expect(job.status, JSON.stringify(job)).toBe('succeeded');
      }
      expect(web.seen.find((s) => s.path === '/away.json')?.authorization).toBe(`Bearer ${HEADER_TOKEN}`);
      expect(other.seen.map((s) => [s.path, s.authorization])).toEqual([
        ['/list.json', undefined],
        ['/far.txt', undefined],
      ]);
      const spin = (await syncToEnd(attacker, 'spin')).job;
      expect(spin.status).toBe('failed');
      expect(spin.error_message).toMatch(/redirect/);
      expect(web.seen.filter((s) => s.path === '/spin.json').length).toBe(6);
      const ftp = (await syncToEnd(attacker, 'to-ftp')).job;
      expect([ftp.status, ftp.error_message]).toEqual(['failed', expect.stringMatching(/http or https/)]);
      expect(loopback.seen).toEqual([]);
    });

    it("does not pass a yunji server's refusal text on", async () => {
      const source = await attacker.post('/api/sync/sources', {
        name: 'yunji',
        type: 'yunji',
        config: { url: web.url, package_id: 1, api_key: 'key' },
        package_id: await newPackage(attacker, 'from-yunji'),
      });
      expect(source.status, source.text).toBe(201);
      const { job, logs } = await syncToEnd(attacker, 'yunji');
      expect(job.status).toBe('failed');
      expect(job.error_message).toMatch(/Unauthorized/);
      expect(JSON.stringify(job) + logs).not.toContain(MARKER);
    });
  });
});
