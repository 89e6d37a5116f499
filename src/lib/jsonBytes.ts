/**
 * The elements of a JSON array, as UTF-8 bytes joined by ',', written as they come: the bytes
 * live outside V8's heap, so a page of them costs the garbage collector nothing while it is built.
 */
export class JsonArrayBytes {
  private buffer: Buffer;
  private length = 0;
  private count = 0;

  /** `expected`: bytes to make room for at first (it grows as needed). */
  constructor(expected: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(expected, 64));
  }

  /** Appends one element, which must be JSON already. */
  push(json: string): void {
    // UTF-8 takes at most 3 bytes per UTF-16 unit; one more for the comma.
    const room = this.length + 1 + json.length * 3;
    if (room > this.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(room, this.buffer.length * 2));
      this.buffer.copy(grown, 0, 0, this.length);
      this.buffer = grown;
    }
    if (this.count++ > 0) this.buffer[this.length++] = 0x2c;
    this.length += this.buffer.write(json, this.length);
  }

  /** The elements so far (a view of the bytes, not a copy). */
  bytes(): Buffer {
    return this.buffer.subarray(0, this.length);
  }
}
