import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { AppError, badRequest } from './errors.ts';

/**
 * The one guard of every request Yunji makes on a tenant's behalf (webhooks, sources, S3 endpoints
 * of user spaces and sources): by default no loopback, private, link-local (cloud metadata),
 * carrier-grade NAT, multicast or otherwise reserved address, unless the operator allows it in
 * YUNJI_OUTBOUND_ALLOW. The address checked is the one connected to: every client connects
 * through an agent of this module, which filters what a name resolves to and refuses blocked
 * address literals before a byte is sent. See docs/SECURITY.md, "Outbound requests".
 */

const SETTING = 'YUNJI_OUTBOUND_ALLOW';

const BLOCKED_V4: [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8],
  ['100.64.0.0', 10], // carrier-grade NAT (also Alibaba Cloud's metadata at 100.100.100.200)
  ['127.0.0.0', 8],
  ['169.254.0.0', 16], // link-local, cloud metadata at 169.254.169.254
  ['172.16.0.0', 12],
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16],
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const BLOCKED_V6: [string, number][] = [
  ['::', 96], // unspecified, loopback, IPv4-compatible
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard-only
  ['2001::', 23], // IETF protocol assignments (Teredo, benchmarking, ORCHID)
  ['2001:db8::', 32], // documentation
  ['3fff::', 20], // documentation
  ['5f00::', 16], // segment routing
  ['fc00::', 7], // unique local (AWS metadata at fd00:ec2::254)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // site-local
  ['ff00::', 8], // multicast
];
const BLOCKED = new BlockList();
for (const [net, bits] of BLOCKED_V4) BLOCKED.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of BLOCKED_V6) BLOCKED.addSubnet(net, bits, 'ipv6');

/** An IPv6 address as its eight 16-bit words (the address is valid: `isIP` said 6). */
function ipv6Words(address: string): number[] {
  const hex = address.replace(
    /(\d+)\.(\d+)\.(\d+)\.(\d+)$/,
    (_, a: string, b: string, c: string, d: string) => `${((+a << 8) | +b).toString(16)}:${((+c << 8) | +d).toString(16)}`,
  );
  const [head = '', tail] = hex.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const words = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  return words.map((w) => parseInt(w, 16));
}

const dotted = (hi: number, lo: number) => `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;

/**
 * The IPv4 address an IPv6 one stands for, where it carries one that decides where it goes:
 * IPv4-mapped (`::ffff:a.b.c.d`) and -translated, NAT64 (`64:ff9b::/96`), 6to4 (`2002::/16`).
 */
function embeddedIpv4(address: string): string | undefined {
  const w = ipv6Words(address);
  const zeros = (from: number, to: number) => w.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && w[5] === 0xffff) return dotted(w[6]!, w[7]!);
  if (zeros(0, 4) && w[4] === 0xffff && w[5] === 0) return dotted(w[6]!, w[7]!);
  if (w[0] === 0x64 && w[1] === 0xff9b && zeros(2, 6)) return dotted(w[6]!, w[7]!);
  if (w[0] === 0x2002) return dotted(w[1]!, w[2]!);
  return undefined;
}

const withoutZone = (address: string) => address.replace(/%.*$/, '');

/** Whether the default policy refuses this address (anything that is not an IP address is refused). */
export function isBlockedAddress(address: string): boolean {
  const ip = withoutZone(address);
  const family = isIP(ip);
  if (family === 4) return BLOCKED.check(ip, 'ipv4');
  if (family !== 6) return true;
  const v4 = embeddedIpv4(ip);
  if (v4 !== undefined && BLOCKED.check(v4, 'ipv4')) return true;
  return BLOCKED.check(ip, 'ipv6');
}

const HOST_NAME = /^(?=.{1,253}$)[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/;

interface AllowList {
  all: boolean;
  names: Set<string>;
  addresses: BlockList;
}

const hostKey = (host: string) =>
  host
    .replace(/^\[|\]$/g, '')
    .replace(/\.$/, '')
    .toLowerCase();

/** YUNJI_OUTBOUND_ALLOW read: `*`, host names, IP addresses and CIDRs, comma-separated; throws naming a bad entry. */
function parseAllowList(text: string): AllowList {
  const list: AllowList = { all: false, names: new Set(), addresses: new BlockList() };
  for (const raw of text.split(',')) {
    const entry = raw.trim();
    if (entry === '') continue;
    if (entry === '*') {
      list.all = true;
      continue;
    }
    const [ip = '', bits, extra] = entry.split('/');
    const family = isIP(withoutZone(ip));
    if (family !== 0) {
      const type = family === 4 ? 'ipv4' : 'ipv6';
      if (bits === undefined) list.addresses.addAddress(withoutZone(ip), type);
      else {
        const max = family === 4 ? 32 : 128;
        if (extra !== undefined || !/^\d{1,3}$/.test(bits) || Number(bits) > max)
          throw new Error(`'${entry}' is not a CIDR (prefix length 0-${max})`);
        list.addresses.addSubnet(withoutZone(ip), Number(bits), type);
      }
      continue;
    }
    const name = hostKey(entry);
    if (!HOST_NAME.test(name) || /^[\d.]+$/.test(name)) throw new Error(`'${entry}' is neither a host name, an IP address nor a CIDR`);
    list.names.add(name);
  }
  return list;
}

/** What is wrong with a value of YUNJI_OUTBOUND_ALLOW, or undefined. */
export function outboundAllowProblem(text: string): string | undefined {
  try {
    parseAllowList(text);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

/** A request refused because its target is an address tenants may not reach: a client error, never retried. */
export class OutboundBlockedError extends AppError {
  constructor(message: string) {
    super('bad_request', message);
  }
}

const REFUSED = `outbound requests there are refused unless the operator allows it in ${SETTING}`;
/** Why a host may not be reached; the addresses a name resolves to are not told (they may be internal). */
const blockedText = (host: string) =>
  isIP(withoutZone(host))
    ? `'${host}' is a loopback, private, link-local or reserved address; ${REFUSED}`
    : `'${host}' resolves only to loopback, private, link-local or reserved addresses; ${REFUSED}`;

/** Where outbound requests may go: the default policy and the operator's allow-list. */
export class OutboundPolicy {
  private readonly allow: AllowList;
  private readonly sharedAgents = new Map<string, http.Agent>();

  constructor(allowText: string) {
    this.allow = parseAllowList(allowText);
  }

  /** Whether a connection to this IP address may be made. */
  allowsAddress(address: string): boolean {
    const ip = withoutZone(address);
    const family = isIP(ip);
    if (family === 0) return false;
    if (this.allow.all || this.allow.addresses.check(ip, family === 4 ? 'ipv4' : 'ipv6')) return true;
    const v4 = family === 6 ? embeddedIpv4(ip) : undefined;
    // An IPv4-mapped address is that IPv4 address on a dual-stack socket.
    if (v4 !== undefined && /^::ffff:/i.test(ip) && this.allow.addresses.check(v4, 'ipv4')) return true;
    return !isBlockedAddress(ip);
  }

  /** Whether the operator allowed this host name (then whatever it resolves to is allowed). */
  private allowsName(host: string): boolean {
    return this.allow.all || this.allow.names.has(hostKey(host));
  }

  /**
   * Configuration time: throws a 400 naming `field` unless `hostname` is an allowed address, an
   * allowed name, or a name that resolves to at least one allowed address.
   */
  async checkHost(hostname: string, field: string): Promise<void> {
    const host = hostKey(hostname);
    if (this.allowsName(host)) return;
    if (isIP(withoutZone(host))) {
      if (!this.allowsAddress(host)) throw badRequest(`${field}: ${blockedText(host)}`, field);
      return;
    }
    let addresses: LookupAddress[];
    try {
      addresses = await new Promise((resolve, reject) => dnsLookup(host, { all: true }, (err, all) => (err ? reject(err) : resolve(all))));
    } catch {
      throw badRequest(`${field}: cannot resolve '${host}'`, field);
    }
    if (!addresses.some((a) => this.allowsAddress(a.address))) throw badRequest(`${field}: ${blockedText(host)}`, field);
  }

  /** Resolves like `dns.lookup`, keeping only addresses a connection may be made to. */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, all) => {
      if (err) return callback(err, '', 4);
      const usable = this.allowsName(hostname) ? all : all.filter((a) => this.allowsAddress(a.address));
      if (usable.length === 0) return callback(new OutboundBlockedError(blockedText(hostKey(hostname))), '', 4);
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, usable);
      callback(null, usable[0]!.address, usable[0]!.family);
    });
  };

  /**
   * A new agent for `protocol` ('http:' or 'https:') whose every connection is checked: host
   * names through `lookup`, address literals (which Node connects to without a lookup) here.
   */
  agent(protocol: string, options: http.AgentOptions = {}): http.Agent {
    const agent =
      protocol === 'https:' ? new https.Agent({ ...options, lookup: this.lookup }) : new http.Agent({ ...options, lookup: this.lookup });
    const connect = agent.createConnection.bind(agent);
    agent.createConnection = (opts, callback) => {
      const host = hostKey(opts.host ?? opts.hostname ?? 'localhost');
      if (isIP(withoutZone(host)) && !this.allowsName(host) && !this.allowsAddress(host)) {
        const err = new OutboundBlockedError(blockedText(host));
        process.nextTick(() => callback?.(err, undefined as never));
        return undefined;
      }
      return connect(opts, callback);
    };
    return agent;
  }

  /** One kept-alive agent per protocol, shared by one-off requests (webhooks, sources' URLs). */
  sharedAgent(protocol: string): http.Agent {
    let agent = this.sharedAgents.get(protocol);
    if (!agent) this.sharedAgents.set(protocol, (agent = this.agent(protocol, { keepAlive: true })));
    return agent;
  }
}

const policies = new Map<string, OutboundPolicy>();

/** The policy of a YUNJI_OUTBOUND_ALLOW value (made once per value, so its shared agents are too). */
export function outboundPolicy(allowText: string): OutboundPolicy {
  let policy = policies.get(allowText);
  if (!policy) policies.set(allowText, (policy = new OutboundPolicy(allowText)));
  return policy;
}

const MAX_URL = 2048;

/** Configuration time: `raw` as an http(s) URL whose host outbound requests may reach, else a 400 naming `field`. */
export async function checkOutboundUrl(policy: OutboundPolicy, raw: string, field: string): Promise<URL> {
  if (raw.length > MAX_URL) throw badRequest(`${field} is longer than ${MAX_URL} characters`, field);
  const url = URL.parse(raw);
  if (url === null) throw badRequest(`${field} is not a URL`, field);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest(`${field} must be an http or https URL`, field);
  await policy.checkHost(url.hostname, field);
  return url;
}

/**
 * `target` could not be reached: said the same whether the connection was refused, reset, timed
 * out or met something that does not speak HTTP, so that answers are no port scanner. `cause`
 * stays on the error for the operator's log.
 */
export const unreachable = (target: string, cause?: unknown) => new Error(`${target} is unreachable`, { cause });

/** A remote service's error code as a tenant is told it: a short word, or `UnknownError` (a code is remote text too). */
export const remoteCode = (code: unknown) =>
  typeof code === 'string' && /^[A-Za-z][A-Za-z0-9_.]{0,63}$/.test(code) ? code : 'UnknownError';
