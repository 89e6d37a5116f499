import { randomUUID } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { sql } from 'kysely';
import type pg from 'pg';
import { pgDriver } from '../db/pgDriver.ts';
import type { Logger } from 'pino';
import type { Db } from '../db/index.ts';
import type { DialectName } from '../db/dialect.ts';
import { TurnBatch } from '../lib/turnBatch.ts';
import type { Job, JobEvent } from './models.ts';

const CHANNEL = 'yunji_jobs';
// NOTIFY payloads must stay under 8,000 bytes; a bigger event goes as a reference and is read back.
const MAX_PAYLOAD = 7500;

type Message =
  | { o: string; k: 'event'; event: JobEvent }
  | { o: string; k: 'eventRef'; type: JobEvent['type']; jobId: number }
  | { o: string; k: 'wake' }
  | { o: string; k: 'cancel'; jobId: number };

/**
 * Job events within a process, and between processes on PostgreSQL (LISTEN/NOTIFY). Three kinds:
 * job events (for WebSocket and SSE subscribers), "a job is due" (wakes idle workers at once
 * instead of at their next poll) and "cancel job N" (reaches the process running it). On SQLite
 * everything stays in the process; other processes notice by polling.
 */
export class JobEvents {
  private readonly emitter = new EventEmitter();
  private readonly origin = randomUUID();
  private listener: pg.Client | undefined;
  private closed = false;
  /** Notifications of one turn, sent as one statement; a failed send is logged, not thrown. */
  private readonly notifications = new TurnBatch<string, void>(
    async (batch) => {
      await sql`select pg_notify(${CHANNEL}, m) from unnest(${batch}::text[]) with ordinality as t(m, n) order by n`
        .execute(this.db)
        .catch((err: unknown) => this.log.warn({ err }, 'job events: notify failed'));
      return batch.map(() => undefined);
    },
    { max: Number.MAX_SAFE_INTEGER },
  );

  constructor(
    private readonly db: Db,
    private readonly dialect: DialectName,
    private readonly databaseUrl: string,
    private readonly log: Logger,
    /** Reads a job back when its event was too big to travel whole. */
    private readonly load: (jobId: number) => Promise<Job | undefined>,
  ) {
    this.emitter.setMaxListeners(0);
  }

  /** Starts listening to other processes (PostgreSQL); reconnects when the connection drops. */
  async listen(): Promise<void> {
    if (this.dialect !== 'postgres' || this.listener || this.closed) return;
    const client = new (pgDriver().Client)({ connectionString: this.databaseUrl });
    this.listener = client;
    const retry = () => {
      if (this.listener !== client) return;
      this.listener = undefined;
      client.end().catch(() => undefined);
      if (!this.closed)
        setTimeout(() => void this.listen().catch((err: unknown) => this.log.warn({ err }, 'job events: reconnect failed')), 1000).unref();
    };
    client.on('error', (err) => {
      this.log.warn({ err }, 'job events: listener connection lost');
      retry();
    });
    client.on('end', retry);
    client.on('notification', (n) => {
      if (n.channel === CHANNEL && n.payload) void this.receive(n.payload);
    });
    try {
      await client.connect();
      await client.query(`listen ${CHANNEL}`);
    } catch (err) {
      retry();
      throw err;
    }
    // Whatever was announced while reconnecting: workers look for due jobs now.
    this.emitter.emit('wake');
  }

  private async receive(payload: string): Promise<void> {
    let m: Message;
    try {
      m = JSON.parse(payload) as Message;
    } catch {
      return;
    }
    if (m.o === this.origin) return;
    if (m.k === 'wake') this.emitter.emit('wake');
    else if (m.k === 'cancel') this.emitter.emit('cancel', m.jobId);
    else if (m.k === 'event') {
      this.emitter.emit('event', m.event);
      if (m.event.type === 'created' || m.event.type === 'retry') this.emitter.emit('wake');
    } else if (m.k === 'eventRef') {
      const job = await this.load(m.jobId).catch(() => undefined);
      if (job) this.emitter.emit('event', { type: m.type, job } satisfies JobEvent);
      if (m.type === 'created' || m.type === 'retry') this.emitter.emit('wake');
    }
  }

  /**
   * Queues a notification; everything queued in the same turn of the event loop goes in one
   * statement (`pg_notify` over an array), so a burst of job events costs one round trip.
   */
  private notify(m: Message): Promise<void> {
    if (this.dialect !== 'postgres' || this.closed) return Promise.resolve();
    let payload = JSON.stringify(m);
    if (payload.length > MAX_PAYLOAD && m.k === 'event') {
      payload = JSON.stringify({ o: this.origin, k: 'eventRef', type: m.event.type, jobId: m.event.job.id } satisfies Message);
    }
    return this.notifications.submit(payload);
  }

  publish(event: JobEvent): Promise<void> {
    this.emitter.emit('event', event);
    return this.notify({ o: this.origin, k: 'event', event });
  }

  /**
   * A job became due: idle workers here look now. Other processes' workers wake on the job's
   * `created` or `retry` event; `notifyOthers` is for changes that have no such event.
   */
  wake(notifyOthers = false): Promise<void> {
    this.emitter.emit('wake');
    return notifyOthers ? this.notify({ o: this.origin, k: 'wake' }) : Promise.resolve();
  }

  /** A running job should stop, wherever it runs. */
  cancel(jobId: number): Promise<void> {
    this.emitter.emit('cancel', jobId);
    return this.notify({ o: this.origin, k: 'cancel', jobId });
  }

  on(kind: 'event', fn: (e: JobEvent) => void): () => void;
  on(kind: 'wake', fn: () => void): () => void;
  on(kind: 'cancel', fn: (jobId: number) => void): () => void;
  on(kind: string, fn: Parameters<EventEmitter['on']>[1]): () => void {
    this.emitter.on(kind, fn);
    return () => this.emitter.off(kind, fn);
  }

  async close(): Promise<void> {
    this.closed = true;
    const client = this.listener;
    this.listener = undefined;
    this.emitter.removeAllListeners();
    await client?.end().catch(() => undefined);
  }
}
