import { setFlagsFromString } from 'node:v8';

/**
 * Turns off V8's incremental marking, so a full collection runs in one pause when one is due.
 *
 * A large transfer makes a stream of short-lived buffers (the HTTP parser copies each body chunk
 * into a new one), and V8 starts incremental marking whenever such external memory has grown by
 * 64 MB. In about one server start in four (5 of 22 measured) it then never left that cycle: a
 * full collection every 64 MB, 35 for a 1 GiB upload, which took 4.5-5 s of server CPU instead of
 * 2.2. With the flag, 0 of 26 uploads did (docs/BENCHMARKS.md). The price is that a full
 * collection's marking happens inside its pause rather than in steps; on this server's heap of
 * about 25 MB that pause measured a few milliseconds, and such collections are rare outside the
 * cycle above.
 */
export function tuneGc(): void {
  setFlagsFromString('--no-incremental-marking');
}
