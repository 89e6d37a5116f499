import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../src/app/config.ts';
import {
  checkOutboundUrl,
  isBlockedAddress,
  outboundAllowProblem,
  OutboundBlockedError,
  OutboundPolicy,
  remoteCode,
} from '../../src/lib/outbound.ts';

/** The outbound guard's policy (src/lib/outbound.ts): which addresses, the operator's allow-list, and the connection-time check. */
describe('the default outbound policy', () => {
  it('refuses loopback, private, link-local, metadata, CGNAT, multicast and reserved addresses, in their IPv6 forms too', () => {
    const blocked = [
      '0.0.0.0',
      '127.0.0.1',
      '127.255.255.254',
      '10.0.0.1',
      '172.16.0.1',
      '172.31.255.255',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '100.100.100.200',
      '192.0.0.8',
      '192.0.2.1',
      '198.18.0.1',
      '198.51.100.7',
      '203.0.113.9',
      '224.0.0.1',
      '239.255.255.250',
      '240.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      '::ffff:127.0.0.1',
      '::ffff:7f00:1',
      '::ffff:0:a00:1',
      '::ffff:169.254.169.254',
      '::127.0.0.1',
      '64:ff9b::7f00:1',
      '64:ff9b::10.0.0.1',
      '64:ff9b:1::1',
      '2002:7f00:1::',
      '2002:a9fe:a9fe::1',
      '2001::1',
      '2001:db8::1',
      'fc00::1',
      'fd00:ec2::254',
      'fe80::1',
      'fe80::1%eth0',
      'fec0::1',
      'ff02::1',
      'not an address',
      '',
    ];
    for (const a of blocked) expect(isBlockedAddress(a), a).toBe(true);
    const allowed = [
      '8.8.8.8',
      '1.1.1.1',
      '172.32.0.1',
      '100.128.0.1',
      '169.255.0.1',
      '2606:4700:4700::1111',
      '::ffff:8.8.8.8',
      '64:ff9b::808:808',
      '2002:808:808::1',
      '2a00:1450::1',
    ];
    for (const a of allowed) expect(isBlockedAddress(a), a).toBe(false);
  });

  it('lets the operator allow addresses, CIDRs and host names, and `*` allow all', () => {
    const policy = new OutboundPolicy(' 127.0.0.1 , 10.1.0.0/16, fd00::/8, MinIO.internal. ');
    expect(policy.allowsAddress('127.0.0.1')).toBe(true);
    expect(policy.allowsAddress('::ffff:127.0.0.1')).toBe(true);
    expect(policy.allowsAddress('127.0.0.2')).toBe(false);
    expect(policy.allowsAddress('10.1.200.3')).toBe(true);
    expect(policy.allowsAddress('10.2.0.1')).toBe(false);
    expect(policy.allowsAddress('fd12::1')).toBe(true);
    expect(policy.allowsAddress('fe80::1')).toBe(false);
    expect(policy.allowsAddress('8.8.8.8')).toBe(true);
    const all = new OutboundPolicy('*');
    for (const a of ['127.0.0.1', '169.254.169.254', '::1']) expect(all.allowsAddress(a), a).toBe(true);
    expect(all.allowsAddress('not an address')).toBe(false);
  });

  it('refuses a bad allow-list entry, naming it, and so does loading the settings', () => {
    expect(outboundAllowProblem('')).toBeUndefined();
    expect(outboundAllowProblem('10.0.0.0/8, ::1, minio-1.corp.example, *')).toBeUndefined();
    for (const bad of ['10.0.0.0/33', '::/129', '10.0.0.0/8/1', 'http://minio', 'host name', '1.2.3', 'a..b', '10.0.0.0/x']) {
      expect(outboundAllowProblem(bad), bad).toMatch(/'.+'/);
    }
    expect(() => loadConfig({ YUNJI_OUTBOUND_ALLOW: '10.0.0.0/40' }, '/tmp')).toThrow(ConfigError);
    expect(() => loadConfig({ YUNJI_OUTBOUND_ALLOW: '10.0.0.0/40' }, '/tmp')).toThrow(
      /YUNJI_OUTBOUND_ALLOW \(outboundAllow\): '10.0.0.0\/40'/,
    );
    expect(loadConfig({ YUNJI_OUTBOUND_ALLOW: '127.0.0.1,localhost' }, '/tmp').outboundAllow).toBe('127.0.0.1,localhost');
  });

  it('tells a remote error code only when it is a short word', () => {
    expect(remoteCode('AccessDenied')).toBe('AccessDenied');
    expect(remoteCode('a secret: the key is 1234')).toBe('UnknownError');
    expect(remoteCode('x'.repeat(65))).toBe('UnknownError');
    expect(remoteCode(undefined)).toBe('UnknownError');
  });
});

describe('checks at configuration and at connection time', () => {
  let server: http.Server;
  let port: number;
  let hits = 0;
  beforeAll(async () => {
    server = http.createServer((_req, res) => {
      hits++;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
  });

  const get = (agent: http.Agent, url: string) =>
    new Promise<number>((resolve, reject) => {
      http
        .get(url, { agent }, (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        })
        .on('error', reject);
    });

  it('refuses a blocked address literal or a name resolving only to blocked addresses at configuration time, naming the setting', async () => {
    const strict = new OutboundPolicy('');
    for (const url of [`http://127.0.0.1:${port}/`, `http://localhost:${port}/`, 'http://[::1]/', 'http://[::ffff:10.0.0.1]/']) {
      await expect(checkOutboundUrl(strict, url, 'url'), url).rejects.toThrow(/YUNJI_OUTBOUND_ALLOW/);
    }
    await expect(checkOutboundUrl(strict, 'ftp://example.com/', 'url')).rejects.toThrow(/http or https/);
    await expect(checkOutboundUrl(strict, 'not a url', 'url')).rejects.toThrow(/not a URL/);
    await expect(checkOutboundUrl(strict, 'http://8.8.8.8/', 'url')).resolves.toBeInstanceOf(URL);
    // An allowed name is allowed whatever it resolves to; an allowed address by its literal.
    await expect(checkOutboundUrl(new OutboundPolicy('LOCALHOST'), `http://localhost:${port}/`, 'url')).resolves.toBeInstanceOf(URL);
    await expect(checkOutboundUrl(new OutboundPolicy('127.0.0.0/8'), `http://127.0.0.1:${port}/`, 'url')).resolves.toBeInstanceOf(URL);
  });

  it('refuses a blocked address where it connects, by literal and by name, before a byte is sent', async () => {
    const agent = new OutboundPolicy('').agent('http:');
    for (const url of [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://[::ffff:127.0.0.1]:${port}/`,
      `http://0x7f.1:${port}/`,
    ]) {
      await expect(get(agent, url), url).rejects.toBeInstanceOf(OutboundBlockedError);
    }
    agent.destroy();
    // The same for https (its agent makes TLS connections its own way).
    const tls = new OutboundPolicy('').agent('https:');
    const refused = new Promise((resolve) => https.get(`https://127.0.0.1:${port}/`, { agent: tls }).on('error', resolve));
    expect(await refused).toBeInstanceOf(OutboundBlockedError);
    tls.destroy();
    expect(hits).toBe(0);
  });

  it('connects where the operator allows: by address, by CIDR, by name', async () => {
    for (const allow of ['127.0.0.1', '127.0.0.0/8', 'localhost', '*']) {
      const agent = new OutboundPolicy(allow).agent('http:');
      const url = allow === 'localhost' ? `http://localhost:${port}/` : `http://127.0.0.1:${port}/`;
      expect(await get(agent, url), allow).toBe(200);
      agent.destroy();
    }
    // An allowed name does not allow its addresses under another name.
    const byName = new OutboundPolicy('localhost').agent('http:');
    await expect(get(byName, `http://127.0.0.1:${port}/`)).rejects.toBeInstanceOf(OutboundBlockedError);
    byName.destroy();
  });
});
