import { AppError } from '../lib/errors.ts';

/**
 * Reads a manifest's entries as its bytes arrive: the top-level JSON array, or the `files` array
 * of a top-level object, is cut into its values, and each value is parsed alone (`JSON.parse`) once
 * its last byte is in. So what is held at any time is one value, never the manifest: a value (an
 * entry, another member of the object, a key) longer than `maxValueBytes` is refused as soon as it
 * gets there, and so is the entry after the `maxEntries`th. Any malformed JSON is refused as well.
 */

const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;

const isSpace = (b: number) => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;

/** What the scanner expects next, outside a value. */
type Expect =
  | 'top'
  /** In the entries array: an entry or its `]` (`entry` after a comma: an entry only). */
  | 'entryOrEnd'
  | 'entry'
  | 'entryCommaOrEnd'
  /** In the top-level object. */
  | 'keyOrEnd'
  | 'key'
  | 'colon'
  | 'member'
  | 'memberCommaOrEnd'
  | 'done';

/** What the value being read is. */
type ValueRole = 'entry' | 'key' | 'member' | 'top';

export interface ManifestLimits {
  maxEntries: number;
  maxValueBytes: number;
}

const NEITHER = 'the manifest is neither a JSON array nor an object with a "files" array';

export class ManifestScanner {
  private expect: Expect = 'top';
  /** Bytes seen before the current chunk. */
  private offset = 0;
  private entries = 0;
  private key: string | undefined;
  private sawFiles = false;
  private topIsObject = false;
  /** The value being read, if any: its role, its bytes so far (earlier chunks) and where it stands. */
  private role: ValueRole | undefined;
  private parts: Buffer[] = [];
  private partsLength = 0;
  private depth = 0;
  private inString = false;
  private escaped = false;
  private scalar = false;
  private startedAt = 0;
  /**
   * Entries complete in the current chunk, not parsed yet: where each starts and ends in it. They
   * are parsed together (one `JSON.parse` per chunk instead of one per entry).
   */
  private batch: number[] = [];
  private batchFirst = 0;

  constructor(
    private readonly limits: ManifestLimits,
    /** Names the manifest in errors. */
    private readonly what: string,
  ) {}

  private notJson(at: number, why: string): AppError {
    return new AppError('bad_request', `${this.what} is not JSON (${why} at byte ${at})`);
  }

  private tooLarge(): AppError {
    const which =
      this.role === 'entry'
        ? `entry ${this.entries}`
        : this.role === 'key'
          ? 'a key'
          : this.role === 'member'
            ? `member "${this.key?.slice(0, 100)}"`
            : 'the value';
    return new AppError('bad_request', `${which} of ${this.what} is larger than ${this.limits.maxValueBytes} bytes`);
  }

  /** The values completed in `chunk`, in order (entries only: keys and other members are checked, not returned). */
  push(chunk: Buffer): unknown[] {
    const out: unknown[] = [];
    let start = 0;
    let i = 0;
    const n = chunk.length;
    while (i < n) {
      if (this.role !== undefined) {
        // Inside a value: find where it ends.
        const end = this.valueEnd(chunk, i);
        if (end < 0) {
          if (this.partsLength + (n - start) > this.limits.maxValueBytes) throw this.tooLarge();
          this.parts.push(chunk.subarray(start, n));
          this.partsLength += n - start;
          break;
        }
        if (this.partsLength + (end - start) > this.limits.maxValueBytes) throw this.tooLarge();
        if (this.role === 'entry' && this.parts.length === 0) {
          if (this.batch.length === 0) this.batchFirst = this.entries;
          this.batch.push(start, end);
          this.role = undefined;
          this.expect = 'entryCommaOrEnd';
        } else {
          this.flush(chunk, out);
          const value = this.finish(chunk.subarray(start, end));
          if (value !== undefined) out.push(value.entry);
        }
        i = end;
        continue;
      }
      const b = chunk[i]!;
      if (isSpace(b)) {
        i++;
        continue;
      }
      const at = this.offset + i;
      switch (this.expect) {
        case 'top':
          if (b === OPEN_BRACKET) this.expect = 'entryOrEnd';
          else if (b === OPEN_BRACE) {
            this.topIsObject = true;
            this.expect = 'keyOrEnd';
          } else this.begin('top', b);
          break;
        case 'entryOrEnd':
        case 'entry':
          if (b === CLOSE_BRACKET && this.expect === 'entryOrEnd') this.expect = this.topIsObject ? 'memberCommaOrEnd' : 'done';
          else {
            if (++this.entries > this.limits.maxEntries)
              throw new AppError('bad_request', `${this.what} lists more than ${this.limits.maxEntries} files`);
            this.begin('entry', b);
          }
          break;
        case 'entryCommaOrEnd':
          if (b === COMMA) this.expect = 'entry';
          else if (b === CLOSE_BRACKET) this.expect = this.topIsObject ? 'memberCommaOrEnd' : 'done';
          else throw this.notJson(at, "expected ',' or ']'");
          break;
        case 'keyOrEnd':
        case 'key':
          if (b === CLOSE_BRACE && this.expect === 'keyOrEnd') this.expect = 'done';
          else if (b === QUOTE) this.begin('key', b);
          else throw this.notJson(at, 'expected a key');
          break;
        case 'colon':
          if (b !== COLON) throw this.notJson(at, "expected ':'");
          this.expect = 'member';
          break;
        case 'member':
          if (this.key === 'files') {
            if (this.sawFiles) throw new AppError('bad_request', `${this.what} has "files" more than once`);
            this.sawFiles = true;
            if (b !== OPEN_BRACKET) throw new AppError('bad_request', NEITHER);
            this.expect = 'entryOrEnd';
          } else this.begin('member', b);
          break;
        case 'memberCommaOrEnd':
          if (b === COMMA) this.expect = 'key';
          else if (b === CLOSE_BRACE) this.expect = 'done';
          else throw this.notJson(at, "expected ',' or '}'");
          break;
        case 'done':
          throw this.notJson(at, 'more after the end');
      }
      if (this.role !== undefined) {
        // A value begins here: read from its first byte.
        this.startedAt = at;
        start = i;
      } else i++;
    }
    this.flush(chunk, out);
    this.offset += n;
    return out;
  }

  /** Parses the batch of entries complete in `chunk` into `out`. */
  private flush(chunk: Buffer, out: unknown[]): void {
    const batch = this.batch;
    if (batch.length === 0) return;
    this.batch = [];
    let values: unknown;
    try {
      // The bytes between two entries are a comma and spaces: the batch is a JSON array's inside.
      values = JSON.parse(`[${chunk.toString('utf8', batch[0], batch[batch.length - 1])}]`);
    } catch {
      values = undefined;
    }
    if (Array.isArray(values) && values.length === batch.length / 2) {
      for (const v of values) out.push(v);
      return;
    }
    // Which entry is malformed: each parsed alone.
    for (let k = 0; k < batch.length; k += 2) {
      try {
        out.push(JSON.parse(chunk.toString('utf8', batch[k], batch[k + 1])));
      } catch {
        throw this.notJson(this.offset + batch[k]!, `a malformed entry ${this.batchFirst + k / 2}`);
      }
    }
  }

  /** Checks the manifest ended where it may, and was the shape of one. */
  end(): void {
    if (this.role !== undefined && this.scalar && this.depth === 0 && !this.inString) this.finish(Buffer.alloc(0));
    if (this.role !== undefined || this.expect !== 'done') throw this.notJson(this.offset, 'it ends early');
    if (this.topIsObject && !this.sawFiles) throw new AppError('bad_request', NEITHER);
  }

  private begin(role: ValueRole, first: number): void {
    this.role = role;
    this.depth = 0;
    this.inString = false;
    this.escaped = false;
    this.scalar = first !== OPEN_BRACE && first !== OPEN_BRACKET && first !== QUOTE;
  }

  /** Where the current value ends in `chunk` (the index after its last byte), reading from `from`; -1: not in this chunk. */
  private valueEnd(chunk: Buffer, from: number): number {
    for (let i = from; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.scalar) {
        // A number, true, false, null (or not JSON at all): up to the next delimiter.
        if (isSpace(b) || b === COMMA || b === CLOSE_BRACKET || b === CLOSE_BRACE) return i;
        continue;
      }
      if (this.inString) {
        if (this.escaped) this.escaped = false;
        else if (b === BACKSLASH) this.escaped = true;
        else if (b === QUOTE) {
          this.inString = false;
          if (this.depth === 0) return i + 1;
        }
        continue;
      }
      if (b === QUOTE) this.inString = true;
      else if (b === OPEN_BRACE || b === OPEN_BRACKET) this.depth++;
      else if (b === CLOSE_BRACE || b === CLOSE_BRACKET) {
        if (--this.depth === 0) return i + 1;
      }
    }
    return -1;
  }

  /** Parses the value now complete (its earlier bytes and `last`); an entry is returned, a key remembered. */
  private finish(last: Buffer): { entry: unknown } | undefined {
    const bytes = this.parts.length === 0 ? last : Buffer.concat([...this.parts, last]);
    const role = this.role!;
    const at = this.startedAt;
    this.role = undefined;
    this.parts = [];
    this.partsLength = 0;
    let value: unknown;
    try {
      value = JSON.parse(bytes.toString('utf8'));
    } catch {
      throw this.notJson(at, `a malformed ${role === 'entry' ? `entry ${this.entries}` : 'value'}`);
    }
    switch (role) {
      case 'entry':
        this.expect = 'entryCommaOrEnd';
        return { entry: value };
      case 'key':
        this.key = value as string;
        this.expect = 'colon';
        return undefined;
      case 'member':
        this.expect = 'memberCommaOrEnd';
        return undefined;
      case 'top':
        // A string, number, true, false or null: JSON, but not a manifest.
        throw new AppError('bad_request', NEITHER);
    }
  }
}
