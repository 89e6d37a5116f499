import { createHmac, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import type { Kysely } from 'kysely';
import type { Core } from '../core.ts';
import type { Database } from '../db/schema.ts';
import { badRequest, notFound } from '../errors.ts';
import type { JobEvent } from './models.ts';
import { eventName, isTask, platformJob, task } from './views.ts';

/**
 * Webhooks: every state change and progress step of a job is POSTed to its `notifyHook` (or the
 * tenant's default), signed `X-Yunji-Signature: sha256=<HMAC of the body>` with the tenant's
 * secret. Deliveries are rows: each job's are sent one at a time in `sequence` order, retried with
 * backoff, and kept (with their attempts) for `GET /api/jobs/{id}/deliveries`.
 */

const MAX_ATTEMPTS = 8;
const MAX_URL = 2048;

// Loopback, private, link-local (cloud metadata at 169.254.169.254), carrier-grade NAT, multicast, reserved.
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) PRIVATE.addSubnet(net, bits, 'ipv4');
for (const [net, bits] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8], ['64:ff9b::', 96]] as const) PRIVATE.addSubnet(net, bits, 'ipv6');

export function isPrivateAddress(address: string): boolean {
  const v4 = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (v4) return PRIVATE.check(v4, 'ipv4');
  const family = isIP(address);
  if (family === 0) return true;
  return PRIVATE.check(address, family === 4 ? 'ipv4' : 'ipv6');
}

/** A hook must be an http(s) URL whose host resolves only to public addresses (unless config allows private ones). */
export async function checkHookUrl(core: Core, raw: string, field: string): Promise<URL> {
  if (raw.length > MAX_URL) throw badRequest(`${field} is longer than ${MAX_URL} characters`, field);
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw badRequest(`${field} is not a URL`, field);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw badRequest(`${field} must be an http or https URL`, field);
  if (core.config.webhookAllowPrivate) return url;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  let addresses: string[];
  try {
    addresses = isIP(host) ? [host] : (await lookup(host, { all: true })).map((a) => a.address);
  } catch {
    throw badRequest(`${field}: cannot resolve '${host}'`, field);
  }
  const blocked = addresses.find(isPrivateAddress);
  if (blocked) throw badRequest(`${field}: '${host}' is a loopback, private or link-local address (${blocked}); hooks there are refused unless YUNJI_WEBHOOK_ALLOW_PRIVATE=1`, field);
  return url;
}

/** The tenant's webhook secret, made on first use. */
export async function webhookSecret(core: Core, tenantId: number): Promise<string> {
  const row = await core.db.selectFrom('tenants').select('webhook_secret_sealed').where('id', '=', tenantId).executeTakeFirst();
  if (!row) throw notFound(`tenant ${tenantId}`);
  if (row.webhook_secret_sealed) return core.sealer.open(row.webhook_secret_sealed);
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  await core.db.updateTable('tenants').set({ webhook_secret_sealed: core.sealer.seal(secret) }).where('id', '=', tenantId).where('webhook_secret_sealed', 'is', null).execute();
  return webhookSecret(core, tenantId);
}

/** Sets (or clears, with null) the tenant's default hook; a new secret when asked. */
export async function setTenantWebhook(core: Core, tenantId: number, url: string | null, rotateSecret: boolean): Promise<{ url: string | null; secret: string }> {
  if (url) await checkHookUrl(core, url, 'url');
  await core.db
    .updateTable('tenants')
    .set({ webhook_url: url || null, ...(rotateSecret ? { webhook_secret_sealed: null } : {}) })
    .where('id', '=', tenantId)
    .execute();
  tenantHooks.delete(tenantId);
  return { url: url || null, secret: await webhookSecret(core, tenantId) };
}

export async function tenantWebhook(core: Core, tenantId: number): Promise<{ url: string | null; secret: string }> {
  const row = await core.db.selectFrom('tenants').select('webhook_url').where('id', '=', tenantId).executeTakeFirst();
  if (!row) throw notFound(`tenant ${tenantId}`);
  return { url: row.webhook_url, secret: await webhookSecret(core, tenantId) };
}

// Tenants' default hooks, looked up once a second at most per tenant: every job event asks.
const tenantHooks = new Map<number, { url: string | null; at: number }>();

/** Where a job's events go: its own hook, else its tenant's default, else nowhere. */
export async function hookFor(core: Core, tenantId: number, notifyHook: string | null): Promise<string | null> {
  if (notifyHook) return notifyHook;
  const cached = tenantHooks.get(tenantId);
  if (cached && cached.at > Date.now() - 1000) return cached.url;
  const row = await core.db.selectFrom('tenants').select('webhook_url').where('id', '=', tenantId).executeTakeFirst();
  tenantHooks.set(tenantId, { url: row?.webhook_url ?? null, at: Date.now() });
  return row?.webhook_url ?? null;
}

/** What a hook receives: the job as its surface shows it, the event's name and its sequence number. */
export function webhookPayload(core: Core, event: JobEvent): Record<string, unknown> {
  const view = isTask(event.job) ? task(event.job, core.jobs.actions) : platformJob(event.job, core.jobs.actions);
  return { ...view, event: eventName(event.type, event.job, core.jobs.actions), sequence: event.job.sequence };
}

/**
 * Records the event's delivery, if the job has a hook. `db` is a transaction when the event's
 * change is being written in it, so the delivery exists as soon as the change does.
 */
export async function enqueueDelivery(core: Core, event: JobEvent, db: Kysely<Database> = core.db): Promise<void> {
  const url = await hookFor(core, event.job.tenantId, event.job.notifyHook);
  if (!url) return;
  const now = Date.now();
  await db
    .insertInto('job_deliveries')
    .values({
      job_id: event.job.id,
      tenant_id: event.job.tenantId,
      sequence: event.job.sequence,
      event: eventName(event.type, event.job, core.jobs.actions),
      url,
      payload: JSON.stringify(webhookPayload(core, event)),
      status: 'pending',
      next_attempt_at: now,
      last_status_code: null,
      last_error: null,
      lease_expires_at: null,
      created_at: now,
      delivered_at: null,
    })
    .onConflict((oc) => oc.columns(['job_id', 'sequence']).doNothing())
    .execute();
}

export async function jobDeliveries(core: Core, jobId: number) {
  return core.db
    .selectFrom('job_deliveries')
    .select(['id', 'sequence', 'event', 'url', 'status', 'attempts', 'next_attempt_at', 'last_status_code', 'last_error', 'created_at', 'delivered_at'])
    .where('job_id', '=', jobId)
    .orderBy('sequence')
    .execute();
}

/** Connects only to addresses a hook may reach, also when DNS answers differently than at submit time. */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    lookup(hostname, { all: true, family: options.family as number | undefined }).then(
      (addresses) => {
        const usable = allowPrivate ? addresses : addresses.filter((a) => !isPrivateAddress(a.address));
        if (usable.length === 0) return callback(new Error(`'${hostname}' resolves only to private addresses`), '', 4);
        if (options.all) return (callback as unknown as (e: null, a: typeof usable) => void)(null, usable);
        callback(null, usable[0]!.address, usable[0]!.family);
      },
      (err: NodeJS.ErrnoException) => callback(err, '', 4),
    );
  };
}

function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number, allowPrivate: boolean): Promise<number> {
  const target = new URL(url);
  const host = target.hostname.replace(/^\[|\]$/g, '');
  if (!allowPrivate && isIP(host) && isPrivateAddress(host)) return Promise.reject(new Error(`${host} is a private address`));
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = client.request(
      target,
      { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers }, lookup: guardedLookup(allowPrivate), timeout: timeoutMs },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', reject);
    req.end(body);
  });
}

export const signature = (secret: string, body: string) => `sha256=${createHmac('sha256', secret).update(body).digest('hex')}`;

/** Seconds before attempt `n + 1`: 1, 2, 4 … 64, with jitter. */
const backoffMs = (attempts: number) => Math.round(Math.min(64, 2 ** (attempts - 1)) * 1000 * (0.75 + Math.random() * 0.5));

/**
 * Sends what is due: for each job, only its lowest pending sequence (so a hook never sees event
 * n + 1 before n has been delivered or given up). Each delivery is leased, so two processes never
 * send the same one at once. Returns how many were attempted.
 */
export async function deliverDue(core: Core, limit = 16): Promise<number> {
  const now = Date.now();
  const due = await core.db
    .selectFrom('job_deliveries as d')
    .select(['d.id', 'd.job_id', 'd.tenant_id', 'd.url', 'd.payload', 'd.attempts'])
    .where('d.status', '=', 'pending')
    .where('d.next_attempt_at', '<=', now)
    .where((eb) => eb.or([eb('d.lease_expires_at', 'is', null), eb('d.lease_expires_at', '<', now)]))
    .where(({ not, exists, selectFrom }) =>
      not(exists(selectFrom('job_deliveries as e').select('e.id').whereRef('e.job_id', '=', 'd.job_id').where('e.status', '=', 'pending').whereRef('e.sequence', '<', 'd.sequence'))),
    )
    .orderBy('d.next_attempt_at')
    .limit(limit)
    .execute();
  const timeoutMs = core.config.webhookTimeout * 1000;
  await Promise.all(
    due.map(async (d) => {
      const leased = await core.db
        .updateTable('job_deliveries')
        .set((eb) => ({ lease_expires_at: Date.now() + timeoutMs + 5000, attempts: eb('attempts', '+', 1) }))
        .where('id', '=', d.id)
        .where('status', '=', 'pending')
        .where((eb) => eb.or([eb('lease_expires_at', 'is', null), eb('lease_expires_at', '<', Date.now())]))
        .executeTakeFirst();
      if (Number(leased.numUpdatedRows) === 0) return;
      const attempts = d.attempts + 1;
      let status = 0;
      let error: string | null = null;
      try {
        const secret = await webhookSecret(core, d.tenant_id);
        status = await post(d.url, d.payload, { 'x-yunji-signature': signature(secret, d.payload), 'user-agent': 'Yunji-Webhook/1' }, timeoutMs, core.config.webhookAllowPrivate);
        if (status < 200 || status >= 300) error = `the receiver answered ${status}`;
      } catch (err) {
        error = (err as Error).message;
      }
      const done = error === null;
      const giveUp = !done && attempts >= MAX_ATTEMPTS;
      await core.db
        .updateTable('job_deliveries')
        .set({
          status: done ? 'delivered' : giveUp ? 'failed' : 'pending',
          last_status_code: status || null,
          last_error: error,
          lease_expires_at: null,
          next_attempt_at: done || giveUp ? Date.now() : Date.now() + backoffMs(attempts),
          delivered_at: done ? Date.now() : null,
        })
        .where('id', '=', d.id)
        .execute();
      if (!done) core.log.warn({ jobId: d.job_id, deliveryId: d.id, attempts, error }, giveUp ? 'webhook given up' : 'webhook failed; will retry');
    }),
  );
  return due.length;
}
