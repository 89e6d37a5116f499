import { Readable } from 'node:stream';
import { AppError, badRequest } from '../lib/errors.ts';

/**
 * A streaming reader of `multipart/form-data` (RFC 7578) request bodies: parts come one at a time,
 * fields whole, files as streams that pause the request while their reader is behind. It does the
 * little the upload routes need and nothing else, in one pass with `Buffer.indexOf` (a native
 * search) over each chunk as it arrives, which costs a small upload less CPU than a general-purpose
 * parser (docs/DECISIONS.md, "Storage surface").
 */
export type FormPart = { kind: 'field'; name: string; value: string } | { kind: 'file'; name: string; filename: string; content: Readable };

export interface FormLimits {
  /** Parts in one body, fields and files together. */
  parts: number;
  /** Bytes of one field's value. */
  fieldSize: number;
  /** Bytes of one part's header block. */
  headerSize?: number;
}

const CRLF = Buffer.from('\r\n');
const HEADERS_END = Buffer.from('\r\n\r\n');
const DEFAULT_HEADER_SIZE = 64 * 1024;

/** The boundary of a `multipart/form-data` content type, or undefined if it is not one. */
export function formBoundary(contentType: string | undefined): string | undefined {
  if (!contentType) return undefined;
  const m = /^\s*multipart\/form-data\s*;(.*)$/i.exec(contentType);
  if (!m) return undefined;
  const param = /(?:^|;)\s*boundary\s*=\s*(?:"([^"]{1,70})"|([^\s;"]{1,70}))\s*(?:;|$)/i.exec(m[1]!);
  return param ? (param[1] ?? param[2]) : undefined;
}

/** `form-data; name="…"; filename="…"` → its parameters (quoted strings unescaped; `filename*` as RFC 5987 UTF-8). */
function dispositionOf(value: string): Map<string, string> | undefined {
  const m = /^\s*form-data\s*(;.*)?$/is.exec(value);
  if (!m) return undefined;
  const params = new Map<string, string>();
  const re = /;\s*([^\s=;]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;]*))/gs;
  for (let p = re.exec(m[1] ?? ''); p; p = re.exec(m[1] ?? '')) {
    const key = p[1]!.toLowerCase();
    let v = p[2] !== undefined ? p[2].replace(/\\(.)/gs, '$1') : p[3]!.trim();
    if (key.endsWith('*')) {
      const ext = /^([^']*)'[^']*'(.*)$/s.exec(v);
      if (!ext) continue;
      try {
        v = decodeURIComponent(ext[2]!);
      } catch {
        continue;
      }
      params.set(key.slice(0, -1), v);
    } else if (!params.has(key)) params.set(key, v);
  }
  return params;
}

interface Waiter {
  resolve: (r: IteratorResult<FormPart>) => void;
  reject: (err: unknown) => void;
}

type State = 'preamble' | 'delimiter' | 'headers' | 'body' | 'done';

export class FormReader implements AsyncIterableIterator<FormPart> {
  private readonly delimiter: Buffer;
  private state: State = 'preamble';
  /** Bytes received and not yet parsed (outside a part's body), or held back in a body because they may begin a delimiter. */
  private held: Buffer;
  /** Received while parsing waits for the consumer to take the part before. */
  private unread: Buffer[] = [];
  private ready: FormPart[] = [];
  private waiter: Waiter | undefined;
  private failure: unknown;
  private ended = false;
  private parts = 0;
  private field: { name: string; chunks: Buffer[]; size: number } | undefined;
  private file: Readable | undefined;

  constructor(
    private readonly source: Readable,
    boundary: string,
    private readonly limits: FormLimits,
  ) {
    this.delimiter = Buffer.from(`\r\n--${boundary}`);
    // The first delimiter may open the body without a line break before it.
    this.held = Buffer.from(CRLF);
    source.on('data', this.onData);
    source.once('end', this.onEnd);
    source.once('error', this.onError);
    source.once('close', this.onClose);
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<FormPart> {
    return this;
  }

  next(): Promise<IteratorResult<FormPart>> {
    const part = this.ready.shift();
    if (part) {
      // Taken: parsing goes on (a file's bytes wait in its stream until it is read).
      this.continue();
      return Promise.resolve({ done: false, value: part });
    }
    if (this.failure !== undefined) return Promise.reject(this.failure);
    if (this.state === 'done') return Promise.resolve({ done: true, value: undefined });
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
      this.continue();
    });
  }

  /** Stops reading: what is left of the body is read and dropped, so the connection can serve its next request. */
  async return(): Promise<IteratorResult<FormPart>> {
    this.stop();
    this.file?.destroy();
    return { done: true, value: undefined };
  }

  private readonly onData = (chunk: Buffer) => {
    if (this.ready.length > 0 || this.unread.length > 0) {
      this.unread.push(chunk);
      this.source.pause();
      return;
    }
    this.parse(chunk);
  };

  private readonly onEnd = () => {
    this.ended = true;
    if (this.unread.length === 0) this.finish();
  };

  private readonly onError = (err: Error) => this.fail(err);

  private readonly onClose = () => {
    if (!this.ended && this.state !== 'done') this.fail(new Error('the upload ended before its last byte'));
  };

  /** The consumer took a part: parse what waited, then read on. */
  private continue(): void {
    while (this.unread.length > 0 && this.ready.length === 0 && this.failure === undefined) this.parse(this.unread.shift()!);
    if (this.unread.length === 0) {
      if (this.ended) this.finish();
      else if (!this.file || this.file.readableLength < this.file.readableHighWaterMark) this.source.resume();
    }
  }

  private finish(): void {
    if (this.state !== 'done') this.fail(badRequest('the multipart body ended before its closing boundary'));
  }

  private stop(): void {
    this.source.off('data', this.onData);
    this.source.off('end', this.onEnd);
    this.source.off('error', this.onError);
    this.source.off('close', this.onClose);
    this.source.on('error', () => undefined);
    this.source.resume();
  }

  private fail(err: unknown): void {
    if (this.failure !== undefined || this.state === 'done') return;
    this.failure = err;
    this.stop();
    this.file?.destroy(err as Error);
    this.file = undefined;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(err);
  }

  private emit(part: FormPart): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve({ done: false, value: part });
    } else this.ready.push(part);
  }

  private parse(chunk: Buffer): void {
    try {
      let data: Buffer | undefined = chunk;
      while (data && this.failure === undefined) {
        // A part handed over and not yet taken: the rest waits (with the source paused).
        if (this.ready.length > 0) {
          if (data.length > 0) this.unread.unshift(data);
          this.source.pause();
          return;
        }
        data = this.state === 'preamble' || this.state === 'body' ? this.scanBody(data) : this.scanHead(data);
      }
    } catch (err) {
      this.fail(err);
    }
  }

  /**
   * Body bytes up to the next delimiter go to the current part (or nowhere, before the first);
   * returns what follows the delimiter, or undefined when the chunk ended inside the body.
   */
  private scanBody(input: Buffer): Buffer | undefined {
    const d = this.delimiter;
    let data = input;
    if (this.held.length > 0 && data.length < d.length - 1) {
      // Too short to tell whether a delimiter begun in the held bytes goes on: scanned together.
      data = Buffer.concat([this.held, data]);
      this.held = Buffer.alloc(0);
    } else if (this.held.length > 0) {
      // A delimiter may have begun in the bytes held back from the chunk before.
      const heldLength = this.held.length;
      const at = Buffer.concat([this.held, data.subarray(0, d.length - 1)]).indexOf(d);
      if (at !== -1 && at < heldLength) {
        this.deliver(this.held.subarray(0, at));
        this.held = Buffer.alloc(0);
        this.endPart();
        return data.subarray(at + d.length - heldLength);
      }
      const heldBack = this.held;
      this.held = Buffer.alloc(0);
      this.deliver(heldBack);
    }
    const at = data.indexOf(d);
    if (at !== -1) {
      this.deliver(data.subarray(0, at));
      this.endPart();
      return data.subarray(at + d.length);
    }
    // Hold back a tail that could be the start of a delimiter.
    let keep = data.length;
    for (let i = Math.max(0, data.length - d.length + 1); i < data.length; i++) {
      if (data[i] === 0x0d && d.subarray(0, data.length - i).equals(data.subarray(i))) {
        keep = i;
        break;
      }
    }
    this.deliver(data.subarray(0, keep));
    this.held = data.subarray(keep);
    return undefined;
  }

  private deliver(bytes: Buffer): void {
    if (bytes.length === 0 || this.state === 'preamble') return;
    if (this.field) {
      this.field.size += bytes.length;
      if (this.field.size > this.limits.fieldSize)
        throw new AppError('too_large', `field '${this.field.name}' is larger than ${this.limits.fieldSize} bytes`);
      this.field.chunks.push(bytes);
    } else if (this.file && !this.file.push(bytes)) this.source.pause();
  }

  private endPart(): void {
    if (this.field) {
      const { name, chunks } = this.field;
      this.field = undefined;
      this.emit({ kind: 'field', name, value: Buffer.concat(chunks).toString('utf8') });
    } else if (this.file) {
      this.file.push(null);
      this.file = undefined;
    }
    this.state = 'delimiter';
  }

  /** After a delimiter: `--` ends the body, else the line ends and a part's headers follow. */
  private scanHead(data: Buffer): Buffer | undefined {
    const buf = this.held.length > 0 ? Buffer.concat([this.held, data]) : data;
    this.held = Buffer.alloc(0);
    if (this.state === 'delimiter') {
      if (buf.length < 2) return this.wait(buf);
      if (buf[0] === 0x2d && buf[1] === 0x2d) {
        this.state = 'done';
        this.stop();
        const waiter = this.waiter;
        this.waiter = undefined;
        waiter?.resolve({ done: true, value: undefined });
        return undefined;
      }
      // Transport padding (spaces and tabs) may precede the line break.
      let i = 0;
      while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x09)) i++;
      if (buf.length - i < 2) return buf.length > 1024 ? this.malformed() : this.wait(buf);
      if (buf[i] !== 0x0d || buf[i + 1] !== 0x0a) return this.malformed();
      this.state = 'headers';
      return buf.subarray(i + 2);
    }
    const limit = this.limits.headerSize ?? DEFAULT_HEADER_SIZE;
    // A part without headers: its block is just the blank line.
    const end = buf.length >= 2 && buf[0] === 0x0d && buf[1] === 0x0a ? -2 : buf.indexOf(HEADERS_END);
    if (end === -1) {
      if (buf.length > limit) throw new AppError('too_large', `a part's headers are larger than ${limit} bytes`);
      return this.wait(buf);
    }
    if (end > limit) throw new AppError('too_large', `a part's headers are larger than ${limit} bytes`);
    this.startPart(end === -2 ? '' : buf.subarray(0, end).toString('utf8'));
    return buf.subarray(end === -2 ? 2 : end + 4);
  }

  private wait(buf: Buffer): undefined {
    this.held = buf;
    return undefined;
  }

  private malformed(): never {
    throw badRequest('the multipart body is malformed: a boundary line does not end with a line break');
  }

  private startPart(headerBlock: string): void {
    if (++this.parts > this.limits.parts) throw new AppError('too_large', `more than ${this.limits.parts} parts in one request`);
    let disposition: Map<string, string> | undefined;
    for (const line of headerBlock.split('\r\n')) {
      const colon = line.indexOf(':');
      if (colon > 0 && line.slice(0, colon).trim().toLowerCase() === 'content-disposition')
        disposition = dispositionOf(line.slice(colon + 1));
    }
    const name = disposition?.get('name');
    if (name === undefined) throw badRequest('a multipart part has no Content-Disposition: form-data with a name');
    this.state = 'body';
    const filename = disposition!.get('filename');
    if (filename === undefined) {
      this.field = { name, chunks: [], size: 0 };
      return;
    }
    const file = new Readable({ read: () => this.source.resume() });
    // A failure destroys the file with it, read or not; its reader hears it, and so does next().
    file.on('error', () => undefined);
    this.file = file;
    this.emit({ kind: 'file', name, filename, content: file });
  }
}
