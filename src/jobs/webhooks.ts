import { createHmac, randomBytes } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import type { Kysely } from 'kysely';
import type { Core } from './core.ts';
import type { Database } from '../db/schema.ts';
import { notFound } from '../lib/errors.ts';
import { checkOutboundUrl, OutboundBlockedError, outboundPolicy, unreachable, type OutboundPolicy } from '../lib/outbound.ts';
import type { JobEvent } from './models.ts';

/**
 * Webhooks: every state change and progress step of a job is POSTed to its `notifyHook` (or the
 * tenant's default), signed `X-Yunji-Signature: sha256=<HMAC of the body>` with the tenant's
 * secret. Deliveries are rows: each job's are sent one at a time in `sequence` order, retried with
 * backoff, and kept (with their attempts) for `GET /api/jobs/{id}/deliveries`.
 */

const MAX_ATTEMPTS = 8;

/** A hook must be an http(s) URL outbound requests may reach (src/lib/outbound.ts). */
export function checkHookUrl(core: Core, raw: string, field: string): Promise<URL> {
  return checkOutboundUrl(outboundPolicy(core.config.outboundAllow), raw, field);
}

/** The tenant's webhook secret, made on first use. */
export async function webhookSecret(core: Core, tenantId: number): Promise<string> {
  const row = await core.db.selectFrom('tenants').select('webhook_secret_sealed').where('id', '=', tenantId).executeTakeFirst();
  if (!row) throw notFound(`tenant ${tenantId}`);
  if (row.webhook_secret_sealed) return core.sealer.open(row.webhook_secret_sealed);
  const secret = `whsec_${randomBytes(24).toString('base64url')}`;
  await core.db
    .updateTable('tenants')
    .set({ webhook_secret_sealed: core.sealer.seal(secret) })
    .where('id', '=', tenantId)
    .where('webhook_secret_sealed', 'is', null)
    .execute();
  return webhookSecret(core, tenantId);
}

/** Sets (or clears, with null) the tenant's default hook; a new secret when asked. */
export async function setTenantWebhook(
  core: Core,
  tenantId: number,
  url: string | null,
  rotateSecret: boolean,
): Promise<{ url: string | null; secret: string }> {
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

/**
 * How a job event is named and shaped for its hook. These are wire shapes: the composition root
 * gives them from http/ (jobViews.ts), and the engine posts what they make.
 */
export interface HookShapes {
  eventName(event: JobEvent): string;
  payload(event: JobEvent): Record<string, unknown>;
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
      event: core.jobs.hooks.eventName(event),
      url,
      payload: JSON.stringify(core.jobs.hooks.payload(event)),
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
    .select([
      'id',
      'sequence',
      'event',
      'url',
      'status',
      'attempts',
      'next_attempt_at',
      'last_status_code',
      'last_error',
      'created_at',
      'delivered_at',
    ])
    .where('job_id', '=', jobId)
    .orderBy('sequence')
    .execute();
}

/**
 * POSTs `body` through the outbound guard; the receiver's status. A failure before an answer says
 * only that the receiver is unreachable (or not allowed); a redirect is not followed.
 */
function post(policy: OutboundPolicy, url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<number> {
  const target = new URL(url);
  const client = target.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = client.request(
      target,
      {
        method: 'POST',
        agent: policy.sharedAgent(target.protocol),
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...headers },
        timeout: timeoutMs,
      },
      (res) => {
        answered = true;
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)));
    req.on('error', (err) =>
      reject(answered || err instanceof OutboundBlockedError ? err : unreachable(`the receiver at ${target.origin}`, err)),
    );
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
      not(
        exists(
          selectFrom('job_deliveries as e')
            .select('e.id')
            .whereRef('e.job_id', '=', 'd.job_id')
            .where('e.status', '=', 'pending')
            .whereRef('e.sequence', '<', 'd.sequence'),
        ),
      ),
    )
    .orderBy('d.next_attempt_at')
    .limit(limit)
    .execute();
  const timeoutMs = core.config.webhookTimeout * 1000;
  const policy = outboundPolicy(core.config.outboundAllow);
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
      let cause: unknown;
      try {
        const secret = await webhookSecret(core, d.tenant_id);
        status = await post(
          policy,
          d.url,
          d.payload,
          { 'x-yunji-signature': signature(secret, d.payload), 'user-agent': 'Yunji-Webhook/1' },
          timeoutMs,
        );
        if (status < 200 || status >= 300) error = `the receiver answered ${status}`;
      } catch (err) {
        error = (err as Error).message;
        cause = (err as Error).cause ?? err;
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
      // The operator's log keeps the cause the tenant is not told (refused, timed out...).
      if (!done)
        core.log.warn(
          { jobId: d.job_id, deliveryId: d.id, attempts, error, cause: cause === undefined ? undefined : String(cause) },
          giveUp ? 'webhook given up' : 'webhook failed; will retry',
        );
    }),
  );
  return due.length;
}
