import WebSocket from 'ws';

/** Clients of the two event streams, `/ws` and `/api/events`, for tests that open, watch and lose them. */

/** How a stream presents its token. */
export type TokenVia = 'header' | 'query' | 'cookie';

export interface StreamOptions {
  token: string;
  via?: TokenVia;
  /** Sent as the `Origin` header when given. */
  origin?: string;
  headers?: Record<string, string>;
}

export interface EventStream {
  /** Every event received, parsed (`{cmd, code, msg, data}`). */
  messages: { cmd: string; data: { id: number } }[];
  /** Settles when the server ends the stream: a WebSocket's close code and reason; SSE: code 0, the last comment. */
  ended: Promise<{ code: number; reason: string }>;
  close(): void;
}

/** A refused stream: the HTTP status and body the server answered instead of a stream. */
export interface Refusal {
  status: number;
  body: any;
}

function withToken(url: string, path: string, o: StreamOptions): { url: string; headers: Record<string, string> } {
  const headers: Record<string, string> = { ...o.headers };
  const via = o.via ?? 'header';
  if (via === 'header') headers.authorization = `Bearer ${o.token}`;
  if (via === 'cookie') headers.cookie = `yunji_session=${o.token}`;
  if (o.origin !== undefined) headers.origin = o.origin;
  return { url: `${url}${path}${via === 'query' ? `?token=${encodeURIComponent(o.token)}` : ''}`, headers };
}

/** Opens `/ws`; resolves once it is open, or with the refusal. */
export function openWs(base: string, o: StreamOptions): Promise<EventStream | Refusal> {
  const { url, headers } = withToken(base.replace(/^http/, 'ws'), '/ws', o);
  const ws = new WebSocket(url, { headers });
  const messages: EventStream['messages'] = [];
  ws.on('message', (m) => messages.push(JSON.parse(m.toString()) as EventStream['messages'][number]));
  const ended = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })),
  );
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve({ messages, ended, close: () => ws.close() }));
    ws.once('unexpected-response', (_req, res) => {
      let text = '';
      res.on('data', (d: Buffer) => (text += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text ? JSON.parse(text) : undefined }));
      res.on('error', reject);
    });
    ws.once('error', reject);
  });
}

/** Opens `/api/events`; resolves once the stream has begun, or with the refusal. */
export async function openSse(base: string, o: StreamOptions): Promise<EventStream | Refusal> {
  const { url, headers } = withToken(base, '/api/events', o);
  const controller = new AbortController();
  const res = await fetch(url, { headers, signal: controller.signal });
  if (res.status !== 200) return { status: res.status, body: await res.json() };
  const messages: EventStream['messages'] = [];
  let buffer = '';
  let lastComment = '';
  const ended = (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk);
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = /^data: (.*)$/m.exec(block);
        if (data) messages.push(JSON.parse(data[1]!) as EventStream['messages'][number]);
        else if (block.startsWith(': ')) lastComment = block.slice(2);
      }
    }
    return { code: 0, reason: lastComment };
  })().catch(() => ({ code: -1, reason: 'aborted by the client' }));
  return { messages, ended, close: () => controller.abort() };
}

export function isRefusal(s: EventStream | Refusal): s is Refusal {
  return 'status' in s;
}

export function asStream(s: EventStream | Refusal): EventStream {
  if (isRefusal(s)) throw new Error(`stream refused: ${s.status} ${JSON.stringify(s.body)}`);
  return s;
}

/** Whether `stream` got an event of job `id`. */
export const sawJob = (stream: EventStream, id: number) => stream.messages.some((m) => m.data.id === id);
