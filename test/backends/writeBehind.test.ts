import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { pump } from '../../src/lib/streams.ts';
import { WRITE_BEHIND_STEP, WriteBehindStream } from '../../src/backends/writeBehind.ts';

const dir = mkdtempSync(join(tmpdir(), 'yunji-write-behind-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const openFds = () => readdirSync('/proc/self/fd').length;
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

/** Chunks of 1 byte to 5 MiB, as a network stream delivers them, over `size` bytes of random content. */
function chunksOf(size: number): Buffer[] {
  const content = randomBytes(size);
  const chunks: Buffer[] = [];
  for (let at = 0, i = 0; at < size; i++) {
    const length = Math.min(size - at, [1, 65_536, 300_001, 5 * 1024 * 1024, 17][i % 5]!);
    chunks.push(content.subarray(at, at + length));
    at += length;
  }
  return chunks;
}

describe('write-behind file stream', () => {
  it('writes every byte in order and flushes each step while the stream goes on', async () => {
    const chunks = chunksOf(3 * WRITE_BEHIND_STEP + 12_345);
    const path = join(dir, 'big.bin');
    const out = new WriteBehindStream(path, { flags: 'wx', highWaterMark: 1024 * 1024 });
    await pump(Readable.from(chunks), out);
    expect(out.bytesWritten).toBe(3 * WRITE_BEHIND_STEP + 12_345);
    expect(sha(readFileSync(path))).toBe(sha(Buffer.concat(chunks)));
    // Three steps written; a flush is skipped while another is still running, so at least one ran.
    expect(out.flushes).toBeGreaterThanOrEqual(1);
    expect(out.flushes).toBeLessThanOrEqual(3);
  });

  it('leaves a file smaller than one step to the page cache', async () => {
    const chunks = chunksOf(WRITE_BEHIND_STEP - 1);
    const out = new WriteBehindStream(join(dir, 'small.bin'), { flags: 'wx', highWaterMark: 1024 * 1024 });
    await pump(Readable.from(chunks), out);
    expect(out.flushes).toBe(0);
    expect(sha(readFileSync(join(dir, 'small.bin')))).toBe(sha(Buffer.concat(chunks)));
  });

  it('closes its file when the source fails while a flush may be running', async () => {
    const before = openFds();
    for (let i = 0; i < 5; i++) {
      const chunks = chunksOf(2 * WRITE_BEHIND_STEP);
      async function* failing() {
        yield* chunks;
        throw new Error('the client went away');
      }
      const out = new WriteBehindStream(join(dir, `failed-${i}.bin`), { flags: 'wx', highWaterMark: 1024 * 1024 });
      await expect(pump(Readable.from(failing()), out)).rejects.toThrow('the client went away');
      await new Promise<void>((resolve) => (out.closed ? resolve() : out.once('close', () => resolve())));
    }
    expect(openFds()).toBe(before);
  });

  it('reports a file it cannot create', async () => {
    const out = new WriteBehindStream(join(dir, 'big.bin'), { flags: 'wx', highWaterMark: 1024 * 1024 });
    await expect(pump(Readable.from(chunksOf(10)), out)).rejects.toMatchObject({ code: 'EEXIST' });
  });
});
