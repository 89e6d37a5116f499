import { describe, expect, it } from 'vitest';
import { AppError } from '../../src/lib/errors.ts';
import { ManifestScanner } from '../../src/sync/manifestEntries.ts';

const limits = { maxEntries: 100, maxValueBytes: 1000 };

/** The entries the scanner reads from `text` cut into chunks of `size` bytes. */
function scan(text: string | Buffer, size = 1 << 16, l = limits): unknown[] {
  const bytes = Buffer.isBuffer(text) ? text : Buffer.from(text);
  const scanner = new ManifestScanner(l, 'the manifest');
  const out: unknown[] = [];
  for (let i = 0; i < bytes.length; i += size) out.push(...scanner.push(bytes.subarray(i, i + size)));
  scanner.end();
  return out;
}

function refusal(text: string, size?: number, l = limits): string {
  try {
    scan(text, size, l);
  } catch (err) {
    expect(err).toBeInstanceOf(AppError);
    expect((err as AppError).kind).toBe('bad_request');
    return (err as AppError).message;
  }
  throw new Error(`not refused: ${text}`);
}

describe('ManifestScanner', () => {
  const manifests = [
    '[]',
    ' [ ] ',
    '[{"path":"a","url":"u"}]',
    '[{"path":"a","url":"u"},{"path":"b\\"]}[{","url":"\\\\","size":12,"mtime":1.5e3,"x":[1,{"y":null}],"z":true}]',
    '[1, -2.5e-3 ,"s", null,true,false,[],{}]',
    '\n{"files": [{"path":"é/😀","url":"u"}], "other": {"files": "not these"}, "n": [1,2,3]}\n',
    '{"before": "x", "files": []}',
    '{"files":[null]}',
  ];

  it.each(manifests)('reads %j as JSON.parse does, whatever the chunks', (text) => {
    const parsed = JSON.parse(text);
    const want = Array.isArray(parsed) ? parsed : parsed.files;
    for (const size of [1, 2, 3, 7, 1 << 16]) expect(scan(text, size), `chunks of ${size}`).toEqual(want);
  });

  it('refuses what is not JSON, saying so', () => {
    for (const text of [
      '',
      '<html>not json</html>',
      '[',
      '[{"path":"a"}',
      '[{"path":"a"} {"path":"b"}]',
      '[1,]',
      '[,1]',
      '[1] 2',
      '{"files":[] "x":1}',
      '{"files" []}',
      '{files:[]}',
      '[{"a":1,}]',
      '[tru]',
      '{"files":[],}',
    ]) {
      for (const size of [1, 1 << 16]) expect(refusal(text, size), `${JSON.stringify(text)} in chunks of ${size}`).toMatch(/is not JSON/);
    }
  });

  it('names the malformed entry among entries read together', () => {
    expect(refusal('[{"a":1}, {"b":2},\n{"c":tru}, {"d":4}]')).toMatch(/a malformed entry 3 at byte 19/);
    expect(refusal('[{"a":1}, {"b":2},\n{"c":tru}, {"d":4}]', 4)).toMatch(/a malformed entry 3 at byte 19/);
  });

  it('refuses JSON that is not a manifest', () => {
    for (const text of ['{"entries": []}', '{}', '"files"', '42', 'null', '{"files": {"a": 1}}', '{"files": "x"}']) {
      expect(refusal(text), text).toMatch(/neither a JSON array nor an object with a "files" array/);
    }
    expect(refusal('{"files": [], "files": []}')).toMatch(/"files" more than once/);
  });

  it('refuses the entry after the limit, and any value larger than the limit, as they arrive', () => {
    const entries = (n: number) => `[${Array.from({ length: n }, () => '{}').join(',')}]`;
    expect(scan(entries(100))).toHaveLength(100);
    expect(refusal(entries(101))).toMatch(/lists more than 100 files/);
    // Refused before the rest arrives: the scanner throws on the chunk that passes the limit.
    const scanner = new ManifestScanner(limits, 'the manifest');
    expect(scanner.push(Buffer.from(`[{"path":"a","url":"${'x'.repeat(900)}"},`))).toHaveLength(1);
    expect(() => scanner.push(Buffer.from(`{"path":"b","url":"${'x'.repeat(500)}`))).not.toThrow();
    expect(() => scanner.push(Buffer.from('x'.repeat(500)))).toThrow(/entry 2 of the manifest is larger than 1000 bytes/);
    expect(refusal(`{"files": [], "big": "${'x'.repeat(1000)}"}`)).toMatch(/member "big" of the manifest is larger than 1000 bytes/);
    expect(refusal(`{"${'k'.repeat(1000)}": 1, "files": []}`)).toMatch(/a key of the manifest is larger than 1000 bytes/);
    expect(refusal(`[${'1'.repeat(1001)}]`, 64)).toMatch(/entry 1 of the manifest is larger/);
  });
});
