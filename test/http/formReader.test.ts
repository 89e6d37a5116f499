import { randomBytes } from 'node:crypto';
import { PassThrough, Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { formBoundary, FormReader, type FormPart } from '../../src/http/formReader.ts';

const BOUNDARY = 'b0und4ry-x';
const LIMITS = { parts: 100, fieldSize: 64 * 1024 };

function body(parts: { headers: string; content: Buffer | string }[], { preamble = '', epilogue = '', boundary = BOUNDARY } = {}): Buffer {
  const out: Buffer[] = [Buffer.from(preamble ? `${preamble}\r\n` : '')];
  for (const p of parts) out.push(Buffer.from(`--${boundary}\r\n${p.headers}\r\n\r\n`), Buffer.from(p.content), Buffer.from('\r\n'));
  out.push(Buffer.from(`--${boundary}--${epilogue}`));
  return Buffer.concat(out);
}

const field = (name: string, value: string) => ({ headers: `Content-Disposition: form-data; name="${name}"`, content: value });
const file = (name: string, filename: string, content: Buffer) => ({
  headers: `content-disposition: form-data; name="${name}"; filename="${filename}"\r\nContent-Type: application/octet-stream`,
  content,
});

/** Every part, files read whole; the body arrives in `chunks`. */
async function readAll(chunks: Buffer[], limits = LIMITS, boundary = BOUNDARY) {
  const reader = new FormReader(Readable.from(chunks), boundary, limits);
  const out: { kind: string; name: string; filename?: string; bytes: Buffer }[] = [];
  for await (const part of reader) out.push(await collect(part));
  return out;
}

async function collect(part: FormPart) {
  if (part.kind === 'field') return { kind: 'field', name: part.name, bytes: Buffer.from(part.value) };
  const chunks: Buffer[] = [];
  for await (const c of part.content) chunks.push(c as Buffer);
  return { kind: 'file', name: part.name, filename: part.filename, bytes: Buffer.concat(chunks) };
}

function splitAt(buf: Buffer, cuts: number[]): Buffer[] {
  const out: Buffer[] = [];
  let from = 0;
  for (const c of [...cuts].sort((a, b) => a - b)) {
    out.push(buf.subarray(from, c));
    from = c;
  }
  out.push(buf.subarray(from));
  return out.filter((b) => b.length > 0);
}

describe('formBoundary', () => {
  it('reads a token or quoted boundary of multipart/form-data only', () => {
    expect(formBoundary('multipart/form-data; boundary=abc')).toBe('abc');
    expect(formBoundary('Multipart/Form-Data; charset=utf-8; BOUNDARY="a b;c"')).toBe('a b;c');
    expect(formBoundary('multipart/form-data; boundary=----formdata-undici-0123')).toBe('----formdata-undici-0123');
    expect(formBoundary('multipart/form-data')).toBeUndefined();
    expect(formBoundary('multipart/form-data; boundary=')).toBeUndefined();
    expect(formBoundary(`multipart/form-data; boundary=${'x'.repeat(71)}`)).toBeUndefined();
    expect(formBoundary('multipart/mixed; boundary=abc')).toBeUndefined();
    expect(formBoundary('application/json')).toBeUndefined();
    expect(formBoundary(undefined)).toBeUndefined();
  });
});

describe('FormReader', () => {
  // Contents full of near-boundaries: CR LF, dashes and the boundary itself without its line break.
  const tricky = Buffer.concat([
    Buffer.from(`\r\n--${BOUNDARY.slice(0, 5)}\r\r\n-`),
    randomBytes(300),
    Buffer.from(`--${BOUNDARY}\r`),
    Buffer.from('\r\n--'),
  ]);
  const parts = [
    field('info', '{"packageID":1}'),
    file('files', 'a%2Fb.bin', tricky),
    file('files', 'empty', Buffer.alloc(0)),
    field('note', ''),
  ];
  const expected = [
    { kind: 'field', name: 'info', bytes: Buffer.from('{"packageID":1}') },
    { kind: 'file', name: 'files', filename: 'a%2Fb.bin', bytes: tricky },
    { kind: 'file', name: 'files', filename: 'empty', bytes: Buffer.alloc(0) },
    { kind: 'field', name: 'note', bytes: Buffer.alloc(0) },
  ];

  it('reads fields and files whole, however the body is cut into chunks', async () => {
    const whole = body(parts, { preamble: 'ignored preamble', epilogue: '\r\nignored epilogue' });
    expect(await readAll([whole])).toEqual(expected);
    // Every single cut, then many random cuts into small pieces.
    for (let cut = 1; cut < whole.length; cut++) expect(await readAll(splitAt(whole, [cut])), `cut at ${cut}`).toEqual(expected);
    for (let round = 0; round < 200; round++) {
      const cuts = Array.from({ length: 1 + (round % 40) }, () => 1 + Math.floor(Math.random() * (whole.length - 1)));
      expect(await readAll(splitAt(whole, cuts)), `cuts ${cuts.join(',')}`).toEqual(expected);
    }
    // One byte at a time.
    expect(
      await readAll(
        splitAt(
          whole,
          Array.from({ length: whole.length - 1 }, (_, i) => i + 1),
        ),
      ),
    ).toEqual(expected);
  });

  it('finds every delimiter when a short body is cut at every pair of places', async () => {
    const content = Buffer.from(`\r\n--${BOUNDARY.slice(0, 5)}\r\r\n-XYZ--${BOUNDARY}\r\r\n--`);
    const whole = body([file('f', 'x', content), field('n', '')]);
    const want = [
      { kind: 'file', name: 'f', filename: 'x', bytes: content },
      { kind: 'field', name: 'n', bytes: Buffer.alloc(0) },
    ];
    for (let a = 1; a < whole.length; a++) {
      for (let b = a + 1; b < whole.length; b++) expect(await readAll(splitAt(whole, [a, b])), `cuts ${a}, ${b}`).toEqual(want);
    }
  });

  it('takes transport padding after a boundary, headers in any case, escaped quotes and RFC 5987 names', async () => {
    const raw = Buffer.from(
      `--${BOUNDARY} \t\r\nCONTENT-DISPOSITION: form-data; name="f"; filename="q\\"uote"\r\n\r\nx\r\n` +
        `--${BOUNDARY}\r\ncontent-disposition: form-data; name=g; filename*=UTF-8''%E2%82%AC%20rate\r\n\r\ny\r\n--${BOUNDARY}--`,
    );
    const out = await readAll([raw]);
    expect(out.map((p) => [p.name, p.filename, p.bytes.toString()])).toEqual([
      ['f', 'q"uote', 'x'],
      ['g', '€ rate', 'y'],
    ]);
  });

  it('a large file flows with the request paused while its reader is behind', async () => {
    const source = new PassThrough({ highWaterMark: 64 * 1024 });
    const content = randomBytes(8 * 1024 * 1024);
    const whole = body([field('info', '{}'), file('files', 'big', content)]);
    const reader = new FormReader(source, BOUNDARY, LIMITS);
    let offset = 0;
    const feed = () => {
      while (offset < whole.length) {
        const more = source.write(whole.subarray(offset, offset + 65536));
        offset += 65536;
        if (!more) return void source.once('drain', feed);
      }
      source.end();
    };
    feed();
    expect((await reader.next()).value).toMatchObject({ kind: 'field', name: 'info' });
    const part = (await reader.next()).value as FormPart & { kind: 'file' };
    let got = 0;
    const hash: Buffer[] = [];
    let maxAhead = 0;
    for await (const chunk of part.content) {
      // A slow reader: the request must not run ahead of it by more than a few chunks.
      maxAhead = Math.max(maxAhead, offset - got);
      got += (chunk as Buffer).length;
      hash.push(chunk as Buffer);
      await new Promise((r) => setImmediate(r));
    }
    expect(Buffer.concat(hash).equals(content)).toBe(true);
    expect(maxAhead).toBeLessThan(1024 * 1024);
    expect((await reader.next()).done).toBe(true);
  });

  const failures: [string, Buffer | Buffer[], RegExp, string][] = [
    ['no closing boundary', body([field('info', '{}')]).subarray(0, -4), /ended before its closing boundary/, 'bad_request'],
    ['no boundary at all', [Buffer.from('just some bytes')], /ended before its closing boundary/, 'bad_request'],
    [
      'a part without Content-Disposition',
      body([{ headers: 'Content-Type: text/plain', content: 'x' }]),
      /no Content-Disposition/,
      'bad_request',
    ],
    [
      'a disposition that is not form-data',
      body([{ headers: 'Content-Disposition: attachment; name="x"', content: 'x' }]),
      /no Content-Disposition/,
      'bad_request',
    ],
    ['a boundary line not ending in CR LF', [Buffer.from(`--${BOUNDARY}xx\r\n\r\n--${BOUNDARY}--`)], /malformed/, 'bad_request'],
    [
      'headers without end',
      [Buffer.from(`--${BOUNDARY}\r\nContent-Disposition: form-data; name="a"${'x'.repeat(70 * 1024)}`)],
      /headers are larger/,
      'too_large',
    ],
    ['too many parts', body(Array.from({ length: 101 }, (_, i) => field(`f${i}`, 'v'))), /more than 100 parts/, 'too_large'],
    ['a field too large', body([field('info', 'x'.repeat(64 * 1024 + 1))]), /larger than 65536 bytes/, 'too_large'],
  ];
  for (const [what, input, message, kind] of failures) {
    it(`refuses ${what}`, async () => {
      await expect(readAll(Array.isArray(input) ? input : [input])).rejects.toMatchObject({
        message: expect.stringMatching(message),
        kind,
      });
    });
  }

  it('a request that breaks off fails the file being read, and the next part', async () => {
    const source = new PassThrough();
    const reader = new FormReader(source, BOUNDARY, LIMITS);
    source.write(body([field('info', '{}'), file('files', 'f', randomBytes(1000))]).subarray(0, 500));
    expect((await reader.next()).value).toMatchObject({ name: 'info' });
    const part = (await reader.next()).value as FormPart & { kind: 'file' };
    const reading = (async () => {
      for await (const _ of part.content) void _;
    })();
    source.destroy();
    await expect(reading).rejects.toThrow(/ended before its last byte/);
    await expect(reader.next()).rejects.toThrow(/ended before its last byte/);
  });

  it('a body that ends too soon after a file part was handed over fails that file quietly, and next() says why', async () => {
    const reader = new FormReader(
      Readable.from([body([field('info', '{}'), file('files', 'f', Buffer.from('abc'))]).subarray(0, -14)]),
      BOUNDARY,
      LIMITS,
    );
    await new Promise((r) => setTimeout(r, 20));
    expect((await reader.next()).value).toMatchObject({ name: 'info' });
    // Nobody listens to this file yet when the end of the body is found missing.
    const part = (await reader.next()).value as FormPart & { kind: 'file' };
    await new Promise((r) => setTimeout(r, 20));
    expect(part.content.destroyed).toBe(true);
    await expect(reader.next()).rejects.toThrow(/closing boundary/);
  });

  it('return() stops reading and drops the rest of the body', async () => {
    const source = new PassThrough();
    const reader = new FormReader(source, BOUNDARY, LIMITS);
    source.write(body([field('info', '{}'), file('files', 'f', randomBytes(200_000))]).subarray(0, 100_000));
    expect((await reader.next()).value).toMatchObject({ name: 'info' });
    const part = (await reader.next()).value as FormPart & { kind: 'file' };
    await reader.return();
    expect(part.content.destroyed).toBe(true);
    // The rest is drained: the source can end.
    const ended = new Promise((r) => source.once('end', r));
    source.end(randomBytes(500_000));
    await ended;
  });
});
