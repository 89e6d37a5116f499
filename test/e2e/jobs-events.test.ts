import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { databaseKinds } from '../helpers/databases.ts';
import { call, client, login, startServer, type RunningServer } from '../helpers/server.ts';
import { eventually, startWorker, type RunningWorker } from '../helpers/workers.ts';

const kinds = await databaseKinds();

interface Message {
  cmd: string;
  code: number;
  msg: string;
  data: { id: number; status: string; sequence: number; event: string };
}

/** A WebSocket client that keeps every message. */
async function listen(url: string, token: string): Promise<{ messages: Message[]; close(): void }> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}`);
  const messages: Message[] = [];
  ws.on('message', (m) => messages.push(JSON.parse(m.toString()) as Message));
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  return { messages, close: () => ws.close() };
}

function refused(url: string, token: string): Promise<number> {
  const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/ws?token=${encodeURIComponent(token)}`);
  return new Promise((resolve) => {
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('open', () => resolve(101));
    ws.once('error', () => resolve(0));
  });
}

const forJob = (messages: Message[], id: number) => messages.filter((m) => m.data.id === id);

describe.each(kinds)('job events on %s', (kind) => {
  let server: RunningServer;
  let token: string;
  let strangerToken: string;
  const workers: RunningWorker[] = [];

  beforeAll(async () => {
    server = await startServer(kind);
    token = await login(server.url);
    const admin = client(server.url, token);
    const invite = await admin.post('/api/users/invitations', { email: 'stranger@example.com', role: 'member' });
    const accepted = await call(server.url, 'POST', '/api/auth/invitations/accept', {
      body: { token: invite.body.invitation_token, password: 'stranger-pass' },
    });
    await client(server.url, accepted.body.token).post('/api/tenants', { name: 'Elsewhere' });
    await admin.delete(`/api/users/${accepted.body.user.id}`);
    strangerToken = await login(server.url, 'stranger@example.com', 'stranger-pass');
  });
  afterAll(async () => {
    for (const w of workers) await w.stop();
    await server?.dispose();
  });

  it('streams a job from created to end over WebSocket, in order, to its tenant only', async () => {
    const mine = await listen(server.url, token);
    const theirs = await listen(server.url, strangerToken);
    const job = (await client(server.url, token).post('/api/jobs', { action: 'noop', params: { ms: 300 } })).body;
    const events = await eventually(async () => {
      const got = forJob(mine.messages, job.id);
      return got.some((m) => m.cmd === 'jobEnd') ? got : undefined;
    }, 'jobEnd');
    expect(events[0]).toMatchObject({ cmd: 'jobCreated', code: 0, msg: '', data: { id: job.id, status: 'pending', event: 'jobCreated' } });
    expect(events.map((m) => m.cmd)).toEqual(expect.arrayContaining(['jobCreated', 'jobBegin', 'jobLog', 'jobProgress', 'jobEnd']));
    expect(events[events.length - 1]!.data.status).toBe('succeeded');
    const sequences = events.filter((m) => m.cmd !== 'jobLog').map((m) => m.data.sequence);
    expect(sequences).toEqual([...sequences].sort((a, b) => a - b));
    expect(new Set(sequences).size).toBe(sequences.length);
    expect(events.find((m) => m.cmd === 'jobLog')!.msg).toBe('attempt 1');
    expect(forJob(theirs.messages, job.id)).toEqual([]);
    mine.close();
    theirs.close();
  });

  it('refuses a WebSocket without a valid token', async () => {
    expect(await refused(server.url, 'ys_not-a-token')).toBe(401);
    expect(await refused(server.url, '')).toBe(401);
  });

  it('streams the same events as Server-Sent Events', async () => {
    const controller = new AbortController();
    const res = await fetch(`${server.url}/api/events`, { headers: { authorization: `Bearer ${token}` }, signal: controller.signal });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
    let text = '';
    const reading = (async () => {
      const decoder = new TextDecoder();
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) text += decoder.decode(chunk);
    })().catch(() => undefined);
    const job = (await client(server.url, token).post('/api/jobs', { action: 'noop' })).body;
    await eventually(async () => (text.includes('event: jobEnd') && text.includes(`"id":${job.id}`) ? true : undefined), 'jobEnd over SSE');
    const first = /event: jobCreated\nid: (\d+)-(\d+)\ndata: (.*)\n\n/.exec(text)!;
    expect(Number(first[1])).toBe(job.id);
    expect(JSON.parse(first[3]!)).toMatchObject({ cmd: 'jobCreated', code: 0, data: { id: job.id } });
    controller.abort();
    await reading;
    expect((await fetch(`${server.url}/api/events`)).status).toBe(401);
  });

  it.runIf(kind === 'postgres')('carries events from a worker process to a client of another process', async () => {
    workers.push(await startWorker(server, { YUNJI_WORKERS: '4' }));
    // A second API process on the same database that runs no jobs: every event it sends came from another process.
    const api = await startServer(kind, { dataDir: server.dataDir, databaseUrl: server.databaseUrl, env: { YUNJI_WORKERS: '0' } });
    try {
      const apiToken = await login(api.url);
      const ws = await listen(api.url, apiToken);
      const job = (await client(api.url, apiToken).post('/api/jobs', { action: 'noop', params: { ms: 200 } })).body;
      const events = await eventually(async () => {
        const got = forJob(ws.messages, job.id);
        return got.some((m) => m.cmd === 'jobEnd') ? got : undefined;
      }, 'jobEnd from the worker process');
      expect(events.map((m) => m.cmd)).toContain('jobBegin');
      ws.close();
    } finally {
      await api.stop();
    }
  });
});
